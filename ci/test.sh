#!/usr/bin/env bash
# Check the code (ruff, mypy) and run the harness's own tests. Extra arguments go to pytest.
#
#   ci/test.sh          set up everything (system packages, .venv, kernels), then every test:
#                       about 25 real boots, 16 min on a quiet 2-core machine (this is what CI runs)
#   ci/test.sh --fast   the developers' loop, under 3 minutes, no boot, no root: ruff, mypy and
#                       the tests marked neither `vm` (boots) nor `slow` (the fake vng, which needs
#                       root; headless Chromium; a local archive of real kernel packages; the real
#                       cases or CI's merge job in subprocesses)
set -uo pipefail
cd "$(dirname "$0")/.."
select=()
if [ "${1-}" = "--fast" ]; then
    shift
    # no apt and no kernels: only what a .venv made by ci/setup.sh already has
    [ -x .venv/bin/mypy ] || KERNELS= ci/setup.sh || exit 1
    select=(-m "not vm and not slow")
else
    ci/setup.sh || exit 1
fi
.venv/bin/ruff check . || exit 1
.venv/bin/ruff format --check . || exit 1
.venv/bin/mypy || exit 1
.venv/bin/python -m pytest tests/ -p no:cacheprovider -rs "${select[@]}" "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "ci/test.sh: pytest collected no tests; that is a failure, not a pass" >&2
    exit 1
fi
exit "$rc"
