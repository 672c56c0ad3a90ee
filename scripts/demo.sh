#!/usr/bin/env bash
# Set up (venv + offline assets) and run the main job on the embedded default model:
# held-out real photos -> HED sketches -> colour images, plus a contact sheet, an HTML page and
# the colour-quality figures, and real hand-made line drawings (the lineart set) coloured with
# their fill figures, all under ./out/demo (or the folder given as $1).
set -euo pipefail
source "$(dirname "$0")/_env.sh"
cd "$REPO"
OUT="${1:-$REPO/out/demo}"
HOME_DIR="$("$PY" -c 'from advseg_sdk.assets import advseg_home; print(advseg_home())')"
HED_BUNDLE="$HOME_DIR/bundles/hed.advseg"
if [ -e "$OUT/colour" ] || [ -e "$OUT/eval" ] || [ -e "$OUT/lineart" ]; then
  echo "[advseg] $OUT already holds results; pass another folder: bash scripts/demo.sh OUT" >&2
  exit 2
fi

echo "[advseg] fetching offline assets: HED weights, FID's Inception, the scene datasets"
advseg assets fetch hed-bsds500 fid-inception
advseg data fetch landscapes animals interiors lineart

if [ ! -f "$HED_BUNDLE/manifest.json" ]; then
  echo "[advseg] exporting the real HED network to an ONNX bundle: $HED_BUNDLE"
  advseg-export hed -o "$HED_BUNDLE"
fi

# Held-out photos only: the test split of each scene dataset (never seen in training), 4 each,
# scaled to 512 px on the long side.
"$PY" - "$OUT/photos" <<'PYEOF'
import sys
from pathlib import Path
import cv2
from advseg_sdk.datasets import dataset_paths
from advseg_sdk.imageio import read_image, write_image
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
for name in ("landscapes", "animals", "interiors"):
    for path in dataset_paths(name, "test")[::3][:4]:
        rgb = read_image(path)
        scale = min(1.0, 512 / max(rgb.shape[:2]))
        size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        write_image(out / f"{name}-{path.stem}.png", cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
PYEOF

echo "[advseg] photo -> HED sketch -> colour (embedded default bundle)"
advseg colorize "$OUT/photos" -o "$OUT/colour" --from-photo --sketch-method hed --sketch-bundle "$HED_BUNDLE" --save-sketch

echo "[advseg] colour quality against the photos, beside the bare lines and a flat colour"
advseg-eval colour --photos "$OUT/photos" --hed-bundle "$HED_BUNDLE" --out "$OUT/eval" --threads 2

echo "[advseg] real line drawings (colouring-book pages, public domain / GPL) -> colour"
LINEART="$("$PY" -c 'from advseg_sdk.datasets import dataset_root; print(dataset_root("lineart"))')"
mkdir -p "$OUT/lineart/drawings"
for f in "$LINEART"/test/*.png "$LINEART"/train/tuxpaint-{frog,chicken,rocket,shipwreck}.png; do
  [ -f "$f" ] && cp "$f" "$OUT/lineart/drawings/"
done
advseg colorize "$OUT/lineart/drawings" -o "$OUT/lineart/colour"
advseg-eval lineart "$OUT/lineart/drawings" --out "$OUT/lineart/eval"

echo
echo "[advseg] done. Results:"
echo "  photos         $OUT/photos   (test splits: never trained on)"
echo "  colour         $OUT/colour   (<name>.png, sketches as <name>.sketch.png)"
echo "  contact sheet  $OUT/eval/contact_sheet.png"
echo "  HTML page      $OUT/eval/index.html"
echo "  figures        $OUT/eval/report.md"
echo "  line drawings  $OUT/lineart/colour   (sheet: $OUT/lineart/eval/contact_sheet.png)"
