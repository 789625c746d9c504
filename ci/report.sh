#!/usr/bin/env bash
# The merge job: every kernel job's results into one cases x kernels matrix
# (Markdown for the step summary, an HTML page, merged JSON), one annotation
# per failing cell with its reproduce line, and the verdict by the policy.
#
#   ci/report.sh RESULTS_DIR OUT_DIR
#
# RESULTS_DIR is searched for results-*.json at any depth (one artifact
# directory per kernel job). Settings come from the environment:
#   HARNESS_POLICY            any-failure (default), regressions-only, never
#   HARNESS_BASELINE          a results file of a good run (required by regressions-only)
#   HARNESS_EXPECTED_KERNELS  the plan's kernels as JSON: a kernel without results is named
# The summary goes to $GITHUB_STEP_SUMMARY, or OUT_DIR/summary.md outside Actions.
# Exit status: 0 the policy passes, 1 it fails, 2 an input cannot be used.
set -uo pipefail
in=${1:?usage: ci/report.sh RESULTS_DIR OUT_DIR}
out=${2:?usage: ci/report.sh RESULTS_DIR OUT_DIR}
harness=$(cd "$(dirname "$0")/.." && pwd)
py=$harness/.venv/bin/python
policy=${HARNESS_POLICY:-any-failure}
baseline=${HARNESS_BASELINE:-}
summary=${GITHUB_STEP_SUMMARY:-$out/summary.md}

"$harness/ci/venv.sh" || exit 2
mkdir -p "$out" || exit 2
runs=()
[ -d "$in" ] && mapfile -d '' -t runs < <(find "$in" -type f -name 'results-*.json' -print0 | sort -z)
if [ ${#runs[@]} -eq 0 ]; then
    echo "ci/report.sh: no results-*.json under $in; did every kernel job fail before writing one?" >&2
    echo "**No results**: no kernel job wrote a results file; open the kernel jobs' logs." >>"$summary"
    exit 2
fi
if [ -n "$baseline" ] && [ ! -f "$baseline" ]; then
    echo "ci/report.sh: baseline $baseline does not exist (relative to $PWD); commit one (docs/github-actions.md) or leave the input empty" >&2
    exit 2
fi
compare=()
[ -n "$baseline" ] && compare=(--baseline "$baseline")
# --allow-incomplete: a job that timed out still shows what it did; its
# missing cells stay empty and the page says the run did not finish.
# Exit 1 (a regression) is the verdict's to judge; 2 is an unusable input.
"$py" -m harness report merge "${runs[@]}" --allow-incomplete "${compare[@]}" \
    --markdown "$summary" --html "$out/matrix.html" --json "$out/merged.json"
[ $? -ge 2 ] && exit 2
"$py" "$harness/ci/verdict.py" "$out/merged.json" --policy "$policy" "${compare[@]}" \
    --expected "${HARNESS_EXPECTED_KERNELS:-}" --summary "$summary"
