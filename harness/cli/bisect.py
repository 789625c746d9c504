"""`python -m harness bisect --good K1 --bad K2 NODEID`: name the first kernel (or commit, with --source) where a case's outcome changes.

    python -m harness bisect --good 6.1.170-3 --bad 6.12.117-1 cases/test_maps.py::test_cgrp_storage_keyed_by_cgroup_fd
    python -m harness bisect --source ~/src/linux --good v6.1 --bad HEAD cases/test_x.py::test_y

Each step prints the kernel, the outcome and the command that reruns it. See
docs/bisect.md. Exit status: 0 an answer, 1 no change found or a step failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness.report import bisect
from harness.report.bisect import BisectError, StepResult


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bisect",
        help="find the first kernel where a case's outcome changes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "nodeid",
        metavar="NODEID",
        help="the case, with or without its kernel parameter: cases/test_x.py::test_y",
    )
    p.add_argument(
        "--good",
        required=True,
        metavar="K1",
        help="catalog kernel (or with --source a commit) where the case has its old outcome",
    )
    p.add_argument(
        "--bad", required=True, metavar="K2", help="catalog kernel (or commit) with the new outcome"
    )
    p.add_argument(
        "--good-outcome",
        metavar="OUTCOME",
        help="the outcome at --good (passed, skipped, ...); saves running it",
    )
    p.add_argument(
        "--catalog-source",
        choices=("debian", "ubuntu-mainline", "any"),
        default=None,
        help="which catalog kernels to step through (default: the source --good and --bad share)",
    )
    p.add_argument(
        "--source",
        type=Path,
        metavar="DIR",
        help="bisect this kernel git tree: build each commit with vng --build and boot it",
    )
    p.add_argument("--config", type=Path, metavar="FRAGMENT", help="config fragment for --source builds")
    p.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="keep each step's results and output here (default: a temporary directory)",
    )
    p.add_argument(
        "--pytest-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for each step's pytest, e.g. --pytest-arg=--accel=tcg",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="show each step's pytest output")
    p.set_defaults(func=cmd_bisect)


def _print_step(step: StepResult) -> None:
    target = step.target if step.target == step.kernel else f"{step.target[:12]} ({step.kernel})"
    print(f"bisect: {target:<24} {step.outcome:<8} rerun: {step.command}", flush=True)


def cmd_bisect(args: argparse.Namespace) -> int:
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="harness-bisect-"))
    runner = bisect.PytestStep(workdir, args.pytest_arg, verbose=args.verbose)
    print(f"bisect: step results and logs in {workdir}")
    try:
        if args.source:
            from harness.kernels import build  # noqa: PLC0415 - only for source bisects

            def build_tree(tree: Path) -> str:
                print(f"bisect: building {tree} (about 10 minutes on 2 cores) ...", flush=True)
                return build.build(tree, fragment=args.config, verbose=args.verbose).name

            result = bisect.bisect_git(
                args.source,
                args.good,
                args.bad,
                args.nodeid,
                runner,
                build_tree,
                _print_step,
                args.good_outcome,
            )
        else:
            result = bisect.bisect_catalog(
                args.good,
                args.bad,
                args.nodeid,
                runner,
                _print_step,
                good_outcome=args.good_outcome,
                source=args.catalog_source,
            )
    except BisectError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        from harness.kernels import KernelError  # noqa: PLC0415

        if isinstance(e, KernelError):
            print(f"error: {e}", file=sys.stderr)
            return 1
        raise
    print(result.summary())
    changed = next((s for s in result.steps if s.target == result.first_changed), None)
    if changed is not None:
        print(f"reproduce: {changed.command}")
    return 0
