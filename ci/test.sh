#!/usr/bin/env bash
# Set up everything (system packages, .venv, kernels), check the code (ruff, mypy) and run the
# harness's own tests. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh || exit 1
.venv/bin/ruff check . || exit 1
.venv/bin/ruff format --check . || exit 1
.venv/bin/mypy || exit 1
.venv/bin/python -m pytest tests/ -p no:cacheprovider -rs "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "ci/test.sh: pytest collected no tests; that is a failure, not a pass" >&2
    exit 1
fi
exit "$rc"
