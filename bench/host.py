"""What runs on the host alone: B5 (cases/ natively on the host kernel) and a profile of host start-up.

B5 is the floor no VM can beat. The profile is cProfile over the host pytest
up to the point where it would boot (``--collect-only``: no VM).
"""

from __future__ import annotations

import platform
import statistics
from pathlib import Path

from bench.measure import PYTHON, Bench


def b5(bench: Bench) -> None:
    reps = 1 if bench.quick else 3
    runs = [
        bench.host(f"b5-host-{i}", [PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "cases/"])
        for i in range(reps)
    ]
    med = statistics.median(r["wall"] for r in runs)
    bench.row(
        "B5",
        f"cases/ natively on the host kernel {platform.release()} ({runs[0]['summary']})",
        med,
        "s",
        n=reps,
        labels=tuple(f"b5-host-{i}" for i in range(reps)),
    )


def host_profile(bench: Bench) -> None:
    """cProfile of the host pytest up to the point where it would boot (collect-only: no VM)."""
    prof = bench.out / "host-collect.prof"
    cmd = [PYTHON, "-m", "cProfile", "-o", str(prof), "-m", "pytest", "-p", "no:cacheprovider"]
    cmd += ["--collect-only", "-q", "--kernel", bench.boot_kernel, "bench/case_one.py"]
    r = bench.host("host-profile-collect", cmd)
    bench.breakdown["host pytest --collect-only --kernel 6.1 (cProfile)"] = {
        "wall (under cProfile)": r["wall"],
        "top cumulative": top_cumulative(prof, 12),
    }


def top_cumulative(prof: Path, count: int) -> list[str]:
    import pstats  # noqa: PLC0415 - only for this report

    stats = pstats.Stats(str(prof))
    rows = []
    for (file, line, func), (_, _, _, cum, _) in sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda kv: -kv[1][3],
    ):
        if func.startswith("<") and func != "<module>":
            continue
        rows.append(f"{cum:6.2f} s  {Path(file).name}:{line} {func}")
        if len(rows) == count:
            break
    return rows
