#!/usr/bin/env bash
# The GPU check in one call on a GPU machine: install advseg over the machine's torch, then run
# the time-boxed steps of scripts/gpu/session.py (training smoke matrix, training throughput,
# inference latency/throughput, a final training run), writing JSON + markdown under $OUT.
#
# Prepare on the CPU side first (once; the pack is ignored by git and travels with the tree):
#     .venv/bin/python scripts/make_gpu_pack.py            # -> gpu-pack/ (<= 40 MB)
# Then run on the GPU machine (9 minutes):
#     command:   bash scripts/gpu_session.sh
#     carry:     ["gpu-pack"]
#     timeout_s: 540
# Results come back under the call's files (gpu_session.json / .md / .log, install.log,
# final_generator.safetensors, final_samples.png).
#
# Options: --dry-run (CPU, tiny sizes, no install: what the test suite runs), --pack DIR,
# --out DIR (default $OUT, else out/gpu-session), --budget-s N (seconds for the whole script,
# install included; default 480), --steps a,b (a subset, e.g. to rerun one that broke:
# train_smoke, train_throughput, inference, final_training; the environment always runs).
set -uo pipefail
start=$(date +%s)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
PACK=gpu-pack
DEST="${OUT:-out/gpu-session}"
BUDGET=480
DRY=""
STEPS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY="--dry-run" ;;
    --pack) PACK="$2"; shift ;;
    --out) DEST="$2"; shift ;;
    --budget-s) BUDGET="$2"; shift ;;
    --steps) STEPS=(--steps "$2"); shift ;;
    *) echo "gpu_session.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$DEST"
if [ ! -f "$PACK/manifest.json" ]; then
  echo "gpu_session.sh: no asset pack at $PACK (build it with: python scripts/make_gpu_pack.py; carry it)" >&2
  exit 2
fi

if [ -z "$DRY" ]; then
  # advseg over the machine's torch: no dependencies, no index (there is no network), the
  # machine's setuptools (no build isolation)
  if ! "$PY" -m pip install --no-deps --no-index --no-build-isolation -e . >"$DEST/install.log" 2>&1; then
    # fall back to the import names as links to the source folders (what the editable install maps)
    echo "pip install failed (see install.log); importing from links to the source folders" | tee -a "$DEST/install.log"
    SHIM=/tmp/advseg-src
    mkdir -p "$SHIM"
    for pkg in advseg_sdk advseg_train advseg_eval advseg_export advseg_bench; do
      ln -sfn "$PWD/$pkg" "$SHIM/$pkg"
    done
    export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"
  fi
  # pure-Python packages a segmenter needs that the machine lacks (e.g. tflite for deeplab-voc)
  if compgen -G "$PACK/wheels/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/advseg-wheels "$PACK"/wheels/*.whl \
      >>"$DEST/install.log" 2>&1 && export PYTHONPATH="/tmp/advseg-wheels${PYTHONPATH:+:$PYTHONPATH}"
  fi
  "$PY" -c "import torch, advseg_train, advseg_bench; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
    2>&1 | tee -a "$DEST/install.log"
  nvidia-smi >>"$DEST/install.log" 2>&1 || true
fi

left=$(( BUDGET - ($(date +%s) - start) ))
PYTHONUNBUFFERED=1 "$PY" -m scripts.gpu.session --pack "$PACK" --out "$DEST" --budget-s "$left" $DRY ${STEPS[@]+"${STEPS[@]}"} 2>&1 \
  | tee "$DEST/gpu_session.log"
exit "${PIPESTATUS[0]}"
