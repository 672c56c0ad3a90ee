#!/usr/bin/env bash
# Set up (venv + offline assets) and run the main job on the embedded default:
# real photos -> HED sketches -> colour images, written under ./out/demo.
set -euo pipefail
source "$(dirname "$0")/_env.sh"
cd "$REPO"
OUT="${1:-$REPO/out/demo}"
HOME_DIR="$("$PY" -c 'from advseg_sdk.assets import advseg_home; print(advseg_home())')"
HED_BUNDLE="$HOME_DIR/bundles/hed.advseg"

echo "[advseg] fetching offline assets: HED weights and the real photo set"
advseg assets fetch hed-bsds500 photos

if [ ! -f "$HED_BUNDLE/manifest.json" ]; then
  echo "[advseg] exporting the real HED network to an ONNX bundle: $HED_BUNDLE"
  advseg-export hed -o "$HED_BUNDLE"
fi

# The embedded default input: the first 8 real photos of the cached set (scikit-image + scikit-learn).
mapfile -t PHOTOS < <("$PY" -c 'from advseg_sdk.assets import photo_paths; print("\n".join(map(str, photo_paths(8))))')
mkdir -p "$OUT/photos"
for p in "${PHOTOS[@]}"; do ln -sf "$p" "$OUT/photos/"; done

echo "[advseg] photo -> sketch (HED + official post-processing)"
advseg sketch "$OUT/photos" -o "$OUT/sketches" --method hed --size 512 --bundle "$HED_BUNDLE"
