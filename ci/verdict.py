#!/usr/bin/env python3
"""The merge job's verdict: annotate every failing cell with its reproduce line and decide pass or fail by the policy.

    ci/verdict.py merged.json --policy any-failure
    ci/verdict.py merged.json --policy regressions-only --baseline baseline.json
    ci/verdict.py merged.json --expected '["6.1.192-3", "6.12.117-1"]' --summary "$GITHUB_STEP_SUMMARY"

Policies:
  any-failure       fail when a cell failed, errored or lost its VM
  regressions-only  fail only on a regression against the baseline (a cell that
                    passed, skipped or xfailed there and fails now, same kernel)
  never             never fail for test outcomes
Under every policy but never, a kernel of the plan with no results (its job
died before writing them) fails the run too: missing cells are not passes.

Prints one GitHub workflow command per failing cell (`::error` when the cell
counts against the policy, `::warning` otherwise), appends the verdict to the
summary, and exits 1 when the run fails, 2 when an input cannot be used.
Runs in the harness's virtualenv (ci/venv.sh).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.report import matrix, records
from harness.report.records import CaseRecord, ResultsError

POLICIES = ("any-failure", "regressions-only", "never")


def escape_data(text: str) -> str:
    """A workflow command's message: GitHub decodes %25, %0D and %0A (and nothing else) there."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property (file=, title=): ':' and ',' would end it."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, cell: CaseRecord, why: str) -> str:
    path, _, name = cell.case.partition("::")
    first = (cell.message or "").strip().splitlines()[:1]
    lines = [*first, *([f"errno: {cell.errno}"] if cell.errno else []), f"reproduce: {cell.reproduce}"]
    if why:
        lines.append(why)
    title = f"{name or path} on {cell.kernel}: {cell.outcome}"
    return f"::{level} file={escape_property(path)},title={escape_property(title)}::" + escape_data(
        "\n".join(lines)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("merged", type=Path, metavar="MERGED.json", help="from `harness report merge --json`")
    p.add_argument("--policy", default="any-failure", choices=POLICIES)
    p.add_argument("--baseline", type=Path, metavar="B.json", help="a results file of a good run")
    p.add_argument("--expected", default="", metavar="JSON", help="the plan's kernels, a JSON list")
    p.add_argument("--summary", type=Path, metavar="FILE", help="append the verdict here (Markdown)")
    args = p.parse_args(argv)
    if args.policy == "regressions-only" and args.baseline is None:
        print(
            "ci/verdict.py: the policy regressions-only needs a baseline: a results file of a good run "
            "(see docs/github-actions.md, 'Making a baseline'), or choose the policy any-failure",
            file=sys.stderr,
        )
        return 2
    try:
        m = matrix.merge([records.load(args.merged)])
        diff = matrix.compare(matrix.merge([records.load(args.baseline)]), m) if args.baseline else None
        expected = json.loads(args.expected) if args.expected.strip() else []
    except (ResultsError, json.JSONDecodeError) as e:
        print(f"ci/verdict.py: {e}", file=sys.stderr)
        return 2

    regressed = {(ch.case, ch.kernel) for ch in diff.regressions} if diff else set()
    against = []
    for cell in m.failures():
        if args.policy == "any-failure":
            counts, why = cell.outcome in matrix.FAILING, ""
        elif args.policy == "regressions-only":
            counts = (cell.case, cell.kernel) in regressed
            why = "a regression against the baseline" if counts else "not a regression against the baseline"
        else:
            counts, why = False, "the policy is never: reported, not failing the run"
        print(annotation("error" if counts else "warning", cell, why))
        if counts:
            against.append(cell)
    seen = {k for _, k in m.cells}
    missing = [k for k in expected if k not in seen]
    for k in missing:
        level = "warning" if args.policy == "never" else "error"
        print(
            f"::{level} title={escape_property(f'no results from kernel {k}')}::"
            + escape_data(f"the job of kernel {k} wrote no results; open its log (set-up, boot or a timeout)")
        )

    fails = args.policy != "never" and bool(against or missing)
    failing = [c for c in m.failures() if c.outcome in matrix.FAILING]
    what = []
    if args.policy == "regressions-only":
        what.append(f"{len(against)} regression(s)")
        if len(failing) > len(against):
            what.append(f"{len(failing) - len(against)} failing cell(s) that are not regressions")
    elif failing:
        what.append(f"{len(failing)} failing cell(s)")
    if missing:
        what.append(f"no results from {', '.join(missing)}")
    verdict = (
        f"**Verdict: {'failed' if fails else 'passed'}** under the policy `{args.policy}`"
        + (f": {', '.join(what)}" if what else "")
        + (f" (against the baseline `{args.baseline}`)" if args.baseline else "")
        + "."
    )
    print(verdict.replace("**", ""), file=sys.stderr)
    if args.summary:
        with open(args.summary, "a") as out:
            out.write(f"\n{verdict}\n")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
