#!/usr/bin/env bash
# Set up everything (system packages, .venv, kernels) and run the BPF cases on
# the newest Debian kernel of each series, 5.10 to 7.3, two VMs side by side,
# then write the matrix: results/cases-<UTC time>/{results.json,matrix.html,matrix.md}.
# Extra arguments go to pytest, e.g. ci/cases.sh -k verifier
set -uo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh || exit 1
out=results/cases-$(date -u +%Y%m%dT%H%M%SZ)
.venv/bin/python -m pytest --kernel 5.10 --kernel 6.1 --kernel 6.12 --kernel 7.2 --kernel 7.3 \
    -n 2 cases/ -rs --results-dir "$out" "$@"
rc=$?
if [ -f "$out/results.json" ]; then
    .venv/bin/python -m harness report merge "$out/results.json" --allow-incomplete \
        --html "$out/matrix.html" --markdown "$out/matrix.md" >/dev/null &&
        echo "ci/cases.sh: matrix in $out/matrix.html and $out/matrix.md"
fi
if [ "$rc" -eq 5 ]; then
    echo "ci/cases.sh: pytest collected no tests; that is a failure, not a pass" >&2
    exit 1
fi
exit "$rc"
