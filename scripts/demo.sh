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

# The embedded default input: the first 8 real photos of the cached set (scikit-image and
# scikit-learn), scaled to 256 px on the long side, the scale the embedded demo model was trained at.
"$PY" - "$OUT/photos" <<'PYEOF'
import sys
from pathlib import Path
import cv2
from advseg_sdk.assets import photo_paths
from advseg_sdk.imageio import read_image, write_image
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
for path in photo_paths(8):
    target = out / (path.stem + ".png")
    if target.exists():
        continue
    rgb = read_image(path)
    scale = 256 / max(rgb.shape[:2])
    size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
    write_image(target, cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
PYEOF

echo "[advseg] photo -> sketch (real HED weights + the official post-processing)"
advseg sketch "$OUT/photos" -o "$OUT/sketches" --method hed --bundle "$HED_BUNDLE"

echo "[advseg] sketch -> colour (embedded demo bundle: advseg_sdk/data/demo-sketch2color.advseg)"
advseg colorize "$OUT/sketches" -o "$OUT/colour"

echo
echo "[advseg] done. Results:"
echo "  photos    $OUT/photos"
echo "  sketches  $OUT/sketches"
echo "  colour    $OUT/colour"
