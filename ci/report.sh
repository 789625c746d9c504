#!/usr/bin/env bash
# The CI report job: merge every kernel job's results into one matrix, as
# Markdown for the step summary and as an HTML page, and decide the verdict.
#
#   ci/report.sh DIR_WITH_RESULTS OUT_DIR
#
# Verdict: with a committed ci/baseline.json, exit 1 on a regression against
# it (passed/skipped/xfailed -> failed/error/vm-lost on the same kernel);
# without one, exit 1 on any failing cell. Refresh the baseline from a good
# run's artifact: python -m harness report merge results-*.json --json ci/baseline.json
set -uo pipefail
cd "$(dirname "$0")/.."
in=${1:?usage: ci/report.sh RESULTS_DIR OUT_DIR}
out=${2:?usage: ci/report.sh RESULTS_DIR OUT_DIR}
mkdir -p "$out"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv || exit 1
    .venv/bin/python -m pip install -q -e . || exit 1
fi
shopt -s nullglob
runs=("$in"/results-*.json)
if [ ${#runs[@]} -eq 0 ]; then
    echo "ci/report.sh: no results-*.json under $in; did every kernel job fail before writing one?" >&2
    exit 1
fi
summary=${GITHUB_STEP_SUMMARY:-$out/summary.md}
verdict=(--fail-on-failures)
[ -f ci/baseline.json ] && verdict=(--baseline ci/baseline.json)
# --allow-incomplete: a job that timed out still shows what it did; its
# missing cells stay empty and the page says the run did not finish
.venv/bin/python -m harness report merge "${runs[@]}" --allow-incomplete "${verdict[@]}" \
    --markdown "$summary" --html "$out/matrix.html" --json "$out/merged.json"
