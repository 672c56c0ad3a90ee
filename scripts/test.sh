#!/usr/bin/env bash
# Set up (venv + offline assets), check lint, format and types, and run the whole test suite.
# Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/_env.sh"
cd "$REPO"
echo "[advseg] fetching offline assets used by the tests (cached in ${ADVSEG_HOME:-~/.cache/advseg})"
advseg assets fetch hed-bsds500 photos isnet-fp16 imgsim-resnet50 fid-inception efficientnet-lite0
echo "[advseg] lint (ruff), format (ruff format --check) and types (mypy)"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy"
echo "[advseg] running the test suite"
exec "$PY" -m pytest "$@"
