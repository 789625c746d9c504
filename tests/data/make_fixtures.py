"""Regenerate the saved results files under tests/data/runs/ from real VM runs (about 5 minutes under TCG).

    .venv/bin/python tests/data/make_fixtures.py

Three runs of the same cases: 6.1 alone, 6.12 alone, and both kernels in one
run with two xdist workers. tests/test_report.py checks that merging the first
two gives the same matrix as the third. The files are real harness output;
never edit them by hand.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "runs"
CASES = ["cases/test_maps.py", "tests/data/reportcases/demo_cases.py"]
RUNS = {
    "run-6.1.json": ["--kernel", "6.1"],
    "run-6.12.json": ["--kernel", "6.12"],
    "run-both.json": ["--kernel", "6.1", "--kernel", "6.12", "-n", "2"],
}


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, kernel_args in RUNS.items():
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
               "--results-dir", str(OUT / "logs"), "--results-json", str(OUT / name),
               "--results-label", name.removesuffix(".json"), *kernel_args, *CASES]
        print("+", " ".join(cmd), flush=True)
        r = subprocess.run(cmd, cwd=ROOT)
        # the demo cases fail on purpose: exit 1 is expected, anything else is not
        if r.returncode not in (0, 1):
            print(f"{name}: pytest exited {r.returncode}; expected 1 (the demo's failures)", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
