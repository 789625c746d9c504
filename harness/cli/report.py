"""`python -m harness report merge|compare ...`: turn results files into one matrix page, or diff two of them.

    python -m harness report merge results/*.json --markdown "$GITHUB_STEP_SUMMARY" --html matrix.html
    python -m harness report merge a.json b.json --json merged.json --baseline ci/baseline.json
    python -m harness report compare BASELINE.json CURRENT.json      # exit 1 on a regression

Exit status: 0 fine, 1 a regression against the baseline (or, with
--fail-on-failures, any failing cell), 2 an input could
not be used (unreadable, wrong schema, or an incomplete run without
--allow-incomplete).
"""

from __future__ import annotations

import argparse
import datetime
import socket
import sys
from pathlib import Path

from harness.report import matrix, records
from harness.report.records import ResultsError, RunMeta, RunRecord


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="merge results files into a matrix, compare two runs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="report_command", metavar="ACTION", required=True)

    merge = sub.add_parser(
        "merge",
        help="combine runs (one per CI job, say) into one cases x kernels matrix",
        description="Combine RUN.json files into one matrix; print it, and write "
        "HTML, Markdown ($GITHUB_STEP_SUMMARY) and merged JSON on request.",
    )
    merge.add_argument("runs", nargs="+", type=Path, metavar="RUN.json")
    # what merge writes on request, each to a path of its own
    for flag, text in (
        ("--html", "one self-contained HTML page"),
        ("--markdown", "Markdown, appended when OUT exists (as $GITHUB_STEP_SUMMARY wants)"),
        ("--json", "the merged results, same schema"),
    ):
        merge.add_argument(flag, type=Path, metavar="OUT", help=text)
    merge.add_argument(
        "--baseline",
        type=Path,
        metavar="B.json",
        help="compare the merged matrix against this results file; exit 1 on a regression",
    )
    merge.add_argument(
        "--fail-on-failures",
        action="store_true",
        help="exit 1 if any cell failed, errored or lost its VM (for CI without a baseline)",
    )
    merge.add_argument("--title", default="BPF cases x kernels")
    _common(merge)
    merge.set_defaults(func=cmd_merge)

    cmp = sub.add_parser(
        "compare",
        help="regressions, fixes, new and removed cases between two runs",
        description="Compare CURRENT against BASELINE cell by cell (case, kernel). "
        "A regression is passed/skipped/xfailed -> failed/error/vm-lost on "
        "the same kernel; exit 1 if there is one.",
    )
    cmp.add_argument("baseline", type=Path, metavar="BASELINE.json")
    cmp.add_argument(
        "current", type=Path, nargs="+", metavar="CURRENT.json", help="one or more runs, merged first"
    )
    _common(cmp)
    cmp.set_defaults(func=cmd_compare)


def _common(p) -> None:
    p.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="use runs that did not finish (interrupted, -x); their missing cells stay empty",
    )


def _load(paths: list[Path], allow_incomplete: bool) -> list[RunRecord]:
    runs = []
    for path in paths:
        run = records.load(path)
        if not run.complete and not allow_incomplete:
            raise ResultsError(
                f"{path} is from a run that did not finish (exit status {run.meta.exit_status}, "
                f"started {run.meta.started}); its matrix would show missing tests as absent, not "
                "failed. Rerun it, or pass --allow-incomplete to use it anyway"
            )
        runs.append(run)
    return runs


def merged_record(m: matrix.Matrix, runs: list[RunRecord]) -> RunRecord:
    """The merged matrix as one results file of the same schema."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    meta = RunMeta(
        started=min(r.meta.started for r in runs),
        finished=now,
        host=socket.gethostname(),
        host_kernel="",
        harness_version=runs[0].meta.harness_version,
        git_commit=runs[0].meta.git_commit,
        args=["report", "merge"],
        mode=runs[0].meta.mode,
        exit_status=None,
        label="merged: " + ", ".join(r.meta.label or r.meta.started for r in runs),
    )
    cells = [m.cells[(c, k.name)] for c in m.cases for k in m.kernels if (c, k.name) in m.cells]
    return RunRecord(
        schema=records.SCHEMA,
        complete=all(r.complete for r in runs),
        meta=meta,
        kernels=list(m.kernels),
        cases=cells,
    )


def cmd_merge(args: argparse.Namespace) -> int:
    try:
        runs = _load(args.runs, args.allow_incomplete)
        baseline = _load([args.baseline], args.allow_incomplete) if args.baseline else None
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    m = matrix.merge(runs)
    diff = matrix.compare(matrix.merge(baseline), m) if baseline else None
    print(matrix.render_text(m))
    for f in m.failures():
        print(f"{f.outcome.upper():8} {f.nodeid}: {(f.message or '').splitlines()[0] if f.message else ''}")
        print(f"         reproduce: {f.reproduce}")
    for w in m.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.markdown:
        with open(args.markdown, "a") as out:  # GITHUB_STEP_SUMMARY is appended to
            out.write(matrix.render_markdown(m, diff))
    if args.html:
        records.write_atomic(args.html, matrix.render_html(m, diff, title=args.title))
    if args.json:
        records.dump(merged_record(m, runs), args.json)
    if diff is not None:
        print(matrix.render_comparison_text(diff))
        if diff.regressions:
            return 1
    failing = [f for f in m.failures() if f.outcome in matrix.FAILING]
    if args.fail_on_failures and failing:
        print(f"{len(failing)} failing cell(s)", file=sys.stderr)
        return 1
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        base = _load([args.baseline], args.allow_incomplete)
        cur = _load(args.current, args.allow_incomplete)
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    diff = matrix.compare(matrix.merge(base), matrix.merge(cur))
    print(matrix.render_comparison_text(diff))
    return 1 if diff.regressions else 0
