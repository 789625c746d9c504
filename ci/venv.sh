#!/usr/bin/env bash
# The harness's virtualenv without system packages or kernels, for the CI jobs
# that only read the catalog or merge results (the plan and merge jobs).
# Idempotent; ci/setup.sh makes the same .venv with everything else.
#
#   ci/venv.sh        # then: .venv/bin/python (in the harness's directory)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
if ! .venv/bin/python -c 'import harness.kernels.catalog, harness.report.matrix' 2>/dev/null; then
    .venv/bin/python -m pip install -q -e .
fi
