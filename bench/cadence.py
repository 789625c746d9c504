"""A pytest plugin for bench/warm.py: the time between consecutive tests' ends, the per-test cost.

``-p bench.cadence`` prints ``CADENCE <ms> <n>`` at the end of the session: the
mean time from one test's end to the next one's over n tests, so start-up,
collection and the first test do not count. Plain pytest in a guest and
``pytest --kernel`` on the host are measured the same way.
"""

from __future__ import annotations

import sys
import time

_ends: list[float] = []


def pytest_runtest_logfinish(nodeid, location):
    _ends.append(time.perf_counter())


def pytest_sessionfinish(session):
    if len(_ends) > 1:
        mean = (_ends[-1] - _ends[0]) / (len(_ends) - 1) * 1000
        print(f"\nCADENCE {mean:.2f} {len(_ends)}", file=sys.stderr, flush=True)
