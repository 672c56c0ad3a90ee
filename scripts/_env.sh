#!/usr/bin/env bash
# Shared set-up for scripts/demo.sh and scripts/test.sh: create or reuse .venv and install advseg.
# Sourced, not run. Honours:
#   ADVSEG_VENV    virtual environment path (default: <repo>/.venv)
#   ADVSEG_TORCH   pip requirement(s) for torch when the venv has none (default: see below)
#   ADVSEG_HOME    asset cache (default: ~/.cache/advseg)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ADVSEG_VENV:-$REPO/.venv}"
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
  echo "[advseg] creating virtual environment $VENV"
  python3 -m venv "$VENV"
fi

# torch: keep whatever the venv already has (a GPU user's CUDA build stays). Otherwise install
# the CPU build: these machines serve torch==2.13.0 (CPU) from a local wheel; elsewhere, on a
# machine without an NVIDIA GPU, PyTorch's CPU index avoids several GB of CUDA packages.
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  if [ -n "${ADVSEG_TORCH:-}" ]; then
    echo "[advseg] installing torch: $ADVSEG_TORCH"
    # shellcheck disable=SC2086
    "$PY" -m pip install -q $ADVSEG_TORCH
  elif "$PY" -m pip download -q --no-deps --no-index -d "$(mktemp -d)" torch==2.13.0 >/dev/null 2>&1; then
    echo "[advseg] installing torch==2.13.0 (CPU) from the local wheel"
    "$PY" -m pip install -q torch==2.13.0
  elif command -v nvidia-smi >/dev/null 2>&1; then
    echo "[advseg] installing torch (CUDA build, NVIDIA GPU found)"
    "$PY" -m pip install -q torch
  else
    echo "[advseg] installing torch (CPU build)"
    "$PY" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi

# advseg itself, editable, with every extra; skipped when pyproject.toml has not changed.
STAMP="$VENV/.advseg-installed"
WANT="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "[advseg] installing advseg and its dependencies into $VENV"
  "$PY" -m pip install -q -e "$REPO[dev]"
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
