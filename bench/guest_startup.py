"""Where a guest's Python start-up goes: run by bench/run.py inside a vng guest.

Prints one JSON line: the guest uptime when the interpreter got control,
then how long ``import pytest`` and a collect-only pytest session (with the
harness plugin, as the guest agent runs it) take. The host's root is shared
over 9p without cache, so every file Python looks up is a round trip.
"""

from __future__ import annotations

import contextlib
import io
import json
import time


def uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


at_start = uptime()
t0 = time.perf_counter()
import pytest  # noqa: E402 - the import is what is measured

t1 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    code = pytest.main(["-p", "no:cacheprovider", "--collect-only", "-q", "bench/case_one.py"])
t2 = time.perf_counter()
print(
    json.dumps(
        {
            "uptime_at_python": at_start,
            "import_pytest": t1 - t0,
            "pytest_main_collect_only": t2 - t1,
            "exit": int(code),
        }
    ),
    flush=True,
)
