"""The B2 baseline: the bodies of bench/cases_trivial.py in a plain loop, in one process.

bench/run.py runs this once inside a vng guest; only the loop is timed, so
the number is what the tests themselves cost without any test runner. Prints
one JSON line on standard output.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cases_trivial  # noqa: E402 - needs the path above

started = time.perf_counter()
for i in range(cases_trivial.COUNT):
    cases_trivial.test_trivial(i)
elapsed = time.perf_counter() - started
print(json.dumps({"tests": cases_trivial.COUNT, "loop_seconds": elapsed}), flush=True)
