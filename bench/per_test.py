"""B2 per-test overhead: 200 trivial tests in one VM against the same bodies in a plain loop in a guest.

Two ways to the per-test time: the median gap between consecutive result
lines of the 200-test run, and (wall of 200 tests - wall of 1 test) / 199.
The baseline is bench/guest_loop.py, the bodies of bench/cases_trivial.py
in a plain loop inside a guest booted the harness's way.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from bench import logs
from bench.measure import PYTHON, Bench, collect_ids, rounded


def b2(bench: Bench, image: Path) -> None:
    first = collect_ids(bench.boot_kernel, "bench/cases_trivial.py")[0]
    all_ = bench.harness_pytest("b2-harness-200", ["--kernel", bench.boot_kernel, "bench/cases_trivial.py"])
    one = bench.harness_pytest("b2-harness-1", ["--kernel", bench.boot_kernel, first])
    loop = bench.vng("b2-guest-loop", image, [PYTHON, "bench/guest_loop.py"])
    found = re.search(r'\{"tests".*\}', logs.text(loop["lines"]))
    loop_ms = json.loads(found.group(0))["loop_seconds"] * 1000 / 200 if found else None
    diff_ms = (all_["wall"] - one["wall"]) * 1000 / 199
    # second method: gaps between consecutive result lines of the 200-test run
    stamps = [t for t, line in all_["lines"] if re.search(r"::test_trivial\[.*(PASSED|FAILED)", line)]
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    gap_ms = statistics.median(gaps) * 1000 if gaps else None
    per_test = gap_ms if gap_ms is not None else diff_ms
    overhead = per_test - (loop_ms or 0.0)
    bench.row(
        "B2",
        "per-test time through the harness, median gap between result lines (200 tests)",
        gap_ms,
        "ms",
        baseline=loop_ms,
        baseline_what="same body, plain loop in a guest",
        target="overhead <= 10 ms",
        met=overhead <= 10.0,
        labels=("b2-harness-200", "b2-guest-loop"),
    )
    bench.row(
        "B2",
        "per-test time, (wall 200 tests - wall 1 test) / 199",
        diff_ms,
        "ms",
        baseline=loop_ms,
        baseline_what="same body, plain loop in a guest",
        target="overhead <= 10 ms",
        met=diff_ms - (loop_ms or 0.0) <= 10.0,
        labels=("b2-harness-200", "b2-harness-1"),
    )
    bench.breakdown["B2"] = {
        "wall 200 tests": all_["wall"],
        "wall 1 test": one["wall"],
        "result-line gaps: median ms": rounded(gap_ms),
        "result-line gaps: p90 ms": rounded(percentile(gaps, 0.9) * 1000 if gaps else None),
        "plain loop ms/test": rounded(loop_ms),
    }


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]
