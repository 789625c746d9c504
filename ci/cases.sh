#!/usr/bin/env bash
# Set up everything (system packages, .venv, kernels) and run the BPF cases on
# Debian's 6.1 and 6.12 kernels, one VM per kernel side by side.
# Extra arguments go to pytest, e.g. ci/cases.sh -k verifier
set -uo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh || exit 1
.venv/bin/python -m pytest --kernel 6.1 --kernel 6.12 -n 2 cases/ -rs "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "ci/cases.sh: pytest collected no tests; that is a failure, not a pass" >&2
    exit 1
fi
exit "$rc"
