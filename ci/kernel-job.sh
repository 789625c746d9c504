#!/usr/bin/env bash
# One kernel job of the matrix: set up the harness, then run the project's
# tests (the current directory's) on one kernel, results into RESULTS_DIR.
#
#   cd my-project && path/to/harness/ci/kernel-job.sh 6.12.117-1 results/6.12.117-1 [pytest args]
#
# Writes RESULTS_DIR/results-KERNEL.json (what the merge job reads),
# RESULTS_DIR/junit-KERNEL.xml and RESULTS_DIR/vm-logs/. The workflow's inputs
# arrive as environment variables, each split like a shell command line
# (quotes work, nothing is expanded):
#   HARNESS_TESTS         test paths (empty: the project's own testpaths)
#   HARNESS_PYTEST_ARGS   more pytest arguments, e.g. -k 'maps and not slow'
#   HARNESS_PIP_INSTALL   pip install arguments for the project, e.g. -e . or -r requirements.txt
# HARNESS_DEBIAN_MIRROR, HARNESS_CATALOG and HARNESS_CACHE_DIR reach the harness as they are.
#
# Failing tests do not fail this job (exit 0 with a warning): the merge job
# judges the whole matrix by the pass/fail policy. Anything else that goes
# wrong (set-up, no tests collected, an interrupted run, no results file)
# does fail it.
set -uo pipefail
kernel=${1:?usage: ci/kernel-job.sh KERNEL RESULTS_DIR [pytest args]}
out=${2:?usage: ci/kernel-job.sh KERNEL RESULTS_DIR [pytest args]}
shift 2
project=$PWD
harness=$(cd "$(dirname "$0")/.." && pwd)
py=$harness/.venv/bin/python

KERNELS="$kernel" "$harness/ci/setup.sh" || exit 1

words() {  # split one input string like a shell would, without expanding anything
    "$py" -c 'import shlex, sys; sys.stdout.write("\0".join(shlex.split(sys.argv[1])))' "$1"
}
for var in HARNESS_TESTS HARNESS_PYTEST_ARGS HARNESS_PIP_INSTALL; do
    if ! words "${!var-}" >/dev/null 2>&1; then
        echo "ci/kernel-job.sh: $var is not a valid command line (an unclosed quote?): ${!var}" >&2
        exit 1
    fi
done
mapfile -d '' -t tests < <(words "${HARNESS_TESTS-}") || exit 1
mapfile -d '' -t extra < <(words "${HARNESS_PYTEST_ARGS-}") || exit 1
mapfile -d '' -t install < <(words "${HARNESS_PIP_INSTALL-}") || exit 1
if [ ${#install[@]} -gt 0 ]; then
    echo "kernel-job: pip install ${install[*]} (in $project)"
    "$py" -m pip install -q "${install[@]}" || exit 1
fi

mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd)
json="$out/results-$kernel.json"
# --option=value for the harness's options: pytest picks its rootdir before
# plugins register their options, and a separate value would count as a path
# (results outside the project would move the rootdir and change every test id)
cmd=("$py" -m pytest "--kernel=$kernel" -rs -p no:cacheprovider
     "--results-dir=$out" "--results-json=$json" "--results-label=kernel $kernel"
     "--junitxml=$out/junit-$kernel.xml" "${extra[@]}" "$@" "${tests[@]}")
echo "kernel-job: (cd $project && ${cmd[*]})"
"${cmd[@]}"
rc=$?
case "$rc" in
    0) ;;
    1) echo "::warning title=tests failed on $kernel::the merge job judges the matrix by the pass/fail policy"
       rc=0 ;;
    5) echo "ci/kernel-job.sh: pytest collected no tests on $kernel; that is a failure, not a pass" >&2
       rc=1 ;;
    *) echo "ci/kernel-job.sh: pytest exited $rc on $kernel (interrupted, internal or usage error)" >&2 ;;
esac
if [ "$rc" -eq 0 ] && [ ! -s "$json" ]; then
    echo "ci/kernel-job.sh: pytest wrote no $json; the merge job would miss kernel $kernel" >&2
    rc=1
fi
exit "$rc"
