"""B3 suite: cases/ on two kernels with ``-n 2`` against the loop a user would write and a VM per test.

The loop is one plain guest per kernel, one after the other, each running
``python -m pytest cases/`` (booted the harness's way); a VM per test is
extrapolated from a few sampled single-test runs.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from bench import logs
from bench.measure import PYTHON, Bench, collect_ids


def b3(bench: Bench, images: dict[str, Path]) -> None:
    kernel_args = [a for k in images for a in ("--kernel", k)]
    n2 = bench.harness_pytest("b3-harness-n2", [*kernel_args, "-n", "2", "cases/"])
    loops = b3_loops(bench, images)
    loop_wall = sum(r["wall"] for r in loops)
    tests = sum(logs.summary_counts(n2["summary"]).values())
    ratio = n2["wall"] / loop_wall
    kernels = " + ".join(images)
    bench.row(
        "B3",
        f"cases/ on {kernels}, harness `-n 2` ({n2['summary']})",
        n2["wall"],
        "s",
        baseline=loop_wall,
        baseline_what="sequential `vng -r K -- python -m pytest cases/` per kernel ("
        + "; ".join(r["summary"] for r in loops)
        + ")",
        ratio=ratio,
        target="ratio <= 0.7",
        met=ratio <= 0.7,
        labels=("b3-harness-n2", *(f"b3-vng-loop-{k}" for k in images)),
    )
    first = next(iter(images))
    nodeids = sample_ids(first, 1 if bench.quick else 3)
    singles = [
        bench.harness_pytest(f"b3-vm-per-test-{i}", ["--kernel", first, nodeid])
        for i, nodeid in enumerate(nodeids)
    ]
    per_vm = statistics.mean(r["wall"] for r in singles)
    extrapolated = per_vm * tests
    speedup = extrapolated / n2["wall"]
    bench.row(
        "B3",
        f"a VM per test: mean of {len(singles)} sampled runs x {tests} tests (extrapolated)",
        extrapolated,
        "s",
        baseline=n2["wall"],
        baseline_what="harness `-n 2`",
        ratio=speedup,
        target="harness >= 10x faster",
        met=speedup >= 10.0,
        n=len(singles),
        labels=tuple(f"b3-vm-per-test-{i}" for i in range(len(singles))),
    )
    if len(images) > 1:
        n1 = bench.harness_pytest("b3-harness-n1", [*kernel_args, "-n", "1", "cases/"])
        bench.row(
            "B3",
            f"cases/ on {kernels}, harness `-n 1` ({n1['summary']})",
            n1["wall"],
            "s",
            baseline=n2["wall"],
            baseline_what="harness `-n 2`",
            ratio=n1["wall"] / n2["wall"],
            target="-n 2 faster (ratio > 1)",
            met=n1["wall"] > n2["wall"],
            labels=("b3-harness-n1", "b3-harness-n2"),
        )
    bench.breakdown["B3 harness -n 2"] = {
        "wall": n2["wall"],
        "VM boots (host lines)": [
            line.split("bpf-harness: ", 1)[-1] for _, line in n2["lines"] if " up in " in line
        ],
    }


def b3_loops(bench: Bench, images: dict[str, Path]) -> list[dict]:
    """The loop a user would write: one plain guest per kernel, one after the other.

    The guest's root is read-only and the harness plugin writes a results file at
    session start, so it is pointed at the guest's tmpfs /tmp (else: usage error, no tests).
    """
    script = [
        PYTHON,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--results-dir",
        "/tmp/bench-results",
        "cases/",
    ]
    loops = [bench.vng(f"b3-vng-loop-{k}", image, script) for k, image in images.items()]
    for k, r in zip(images, loops, strict=True):
        bench.row(
            "B3",
            f"sequential loop, kernel {k}: `vng -r K -- python -m pytest cases/` ({r['summary']})",
            r["wall"],
            "s",
            labels=(f"b3-vng-loop-{k}",),
        )
    return loops


def sample_ids(kernel: str, count: int) -> list[str]:
    """``count`` test ids of cases/, evenly spread, so the sample is not one module's fixtures."""
    ids = collect_ids(kernel, "cases/")
    return [ids[(i * len(ids)) // count + len(ids) // (2 * count)] for i in range(count)]
