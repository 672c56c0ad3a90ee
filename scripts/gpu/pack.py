"""The asset pack the GPU check carries: real photos, their HED sketches, HED and segmenter weights.

The GPU machine has no network and takes little besides the working tree, so what the GPU check
needs from the asset cache is prepared here, on the CPU side, into one ignored folder that travels
with it. The folder is laid out like ``$ADVSEG_HOME`` where that helps (``photos/`` +
``photos.json``, so :func:`advseg_sdk.assets.photo_paths` works with ``ADVSEG_HOME=<pack>``)::

    manifest.json            what is in the pack, what was left out and why, sizes, sha256
    photos/, photos.json     real photos (short side <= photo_side px) and their licences
    sketches/<stem>.png      HED line drawings of those photos (SketchCache.make)
    weights/hed_bsds500.fp16.safetensors   the real HED weights as an fp16 state dict
    wheels/*.whl             pure-Python packages a segmenter needs that the GPU image lacks

Items are added in priority order while the pack stays under ``budget_mb``; an item that does
not fit is listed under ``skipped`` with the reason.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PACK_VERSION",
    "DEFAULT_PACK_DIR",
    "build_pack",
    "read_pack",
    "pack_size_mb",
    "travelling_tree_mb",
    "default_budget_mb",
]

PACK_VERSION = 1
#: Where scripts/make_gpu_pack.py writes the pack (ignored by git; named in the run's carry).
DEFAULT_PACK_DIR = "gpu-pack"
HED_FILE = "weights/hed_bsds500.fp16.safetensors"

Log = Callable[[str], None]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: What the development tool's device call carries: the working tree plus the carried folders
#: (a property of that tool, not of advseg, which is why it lives here and not in a package).
CARRY_LIMIT_MB = 64.0


def travelling_tree_mb(repo: str | Path = ".") -> float:
    """MiB of what travels with a device call besides the carried folders: tracked files and
    untracked files git does not ignore."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.decode()
    files = [Path(repo) / f for f in out.split("\0") if f]
    return sum(f.stat().st_size for f in files if f.is_file()) / 2**20


def default_budget_mb(repo: str | Path = ".", margin_mb: float = 4.0) -> float:
    """40 MB, or less where the working tree leaves less of the 64 MiB a call carries."""
    return max(4.0, min(40.0, CARRY_LIMIT_MB - travelling_tree_mb(repo) - margin_mb))


def pack_size_mb(root: str | Path) -> float:
    """Bytes under ``root`` in MiB."""
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file()) / 2**20


def read_pack(root: str | Path) -> dict[str, Any]:
    """The pack's manifest; a clear error when the folder is not a pack."""
    m = Path(root) / "manifest.json"
    if not m.is_file():
        raise FileNotFoundError(
            f"{root} is not a GPU asset pack (no manifest.json); build one with python scripts/make_gpu_pack.py"
        )
    doc = json.loads(m.read_text())
    if doc.get("version") != PACK_VERSION:
        raise ValueError(f"{m}: pack version {doc.get('version')} != {PACK_VERSION}; rebuild the pack")
    return doc


def _fit_short_side(rgb: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    h, w = rgb.shape[:2]
    s = min(h, w)
    if s <= side:
        return rgb
    size = (max(1, round(w * side / s)), max(1, round(h * side / s)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def _segmenter_items(
    names: Sequence[str], log: Log, room_mb: float
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Segmenters the GPU check can build from the working tree (+ wheels), in order of use.
    ISNet's weights come from the asset cache: it is tried only if they fit in ``room_mb``."""
    from advseg_sdk import assets
    from advseg_train.segmentation import SEGMENTER_NAMES, build_segmenter

    usable, skipped = [], []
    for name in names:
        if name not in SEGMENTER_NAMES:
            skipped.append({"what": f"segmenter {name}", "reason": "not in this checkout (advseg_train.segmentation)"})
            continue
        if name == "isnet":
            asset = assets.ASSETS["isnet-fp16"]
            mb = asset.path.stat().st_size / 2**20 if asset.is_present() else None
            if mb is None or mb > room_mb:
                skipped.append(
                    {
                        "what": "segmenter isnet",
                        "reason": "asset isnet-fp16 not cached"
                        if mb is None
                        else f"weights {mb:.0f} MB (fp16 ONNX) do not fit in the {room_mb:.0f} MB left of the "
                        "pack budget",
                    }
                )
                continue
        try:
            seg = build_segmenter(name)
        except Exception as exc:
            skipped.append(
                {"what": f"segmenter {name}", "reason": f"cannot be built here: {type(exc).__name__}: {exc}"}
            )
            continue
        params = sum(p.numel() for p in seg.parameters())
        usable.append({"name": name, "kwargs": {}, "classes": len(seg.class_names), "params": params})
        log(f"segmenter {name}: {len(seg.class_names)} classes, {params / 1e6:.1f} M parameters")
    return usable, skipped


def _download_wheel(requirement: str, dest: Path) -> Path | None:
    """A pure-Python wheel of ``requirement`` (pip, no dependencies), or None if pip cannot."""
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-q",
            "-d",
            str(dest),
            requirement,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    wheels = sorted(dest.glob(requirement.split("==")[0].replace("-", "_") + "-*.whl"))
    return wheels[-1] if proc.returncode == 0 and wheels else None


class _Pack:
    """The pack being built in ``tmp``: what is in it (``items``), what was left out (``skipped``)."""

    def __init__(self, tmp: Path, budget_mb: float) -> None:
        self.tmp, self.budget_mb, self.budget = tmp, budget_mb, budget_mb * 2**20
        self.items: list[dict[str, Any]] = []
        self.skipped: list[dict[str, str]] = []

    def used(self) -> int:
        return sum(p.stat().st_size for p in self.tmp.rglob("*") if p.is_file())

    def add(self, path: Path, what: str) -> None:
        self.items.append(
            {
                "path": path.relative_to(self.tmp).as_posix(),
                "bytes": path.stat().st_size,
                "sha256": _sha256(path),
                "what": what,
            }
        )


def _add_photos(pack: _Pack, photos: int, photo_side: int, log: Log) -> list[dict[str, Any]]:
    """Real photos + their HED sketches, made with the training pipeline's own function, while
    they fit; the photos' records (licences) go to ``photos/photos.json``."""
    import torch
    from PIL import Image

    from advseg_sdk import assets
    from advseg_train.data import SketchCache

    tmp = pack.tmp
    records = {r["file"]: r for r in assets.photo_records()}
    cache = SketchCache(tmp / ".sketch-cache", "hed")
    kept: list[dict[str, Any]] = []
    for src in assets.photo_paths()[:photos]:
        rgb = _fit_short_side(np.asarray(Image.open(src).convert("RGB")), photo_side)
        photo = tmp / "photos" / f"{src.stem}.jpg"
        Image.fromarray(rgb).save(photo, quality=92)
        with torch.no_grad():
            sketch = cache.make(rgb)
        sk = tmp / "sketches" / f"{src.stem}.png"
        Image.fromarray(sketch).save(sk, optimize=True)
        if pack.used() > pack.budget:
            photo.unlink()
            sk.unlink()
            pack.skipped.append(
                {"what": f"photo {src.name} and later ones", "reason": f"pack budget {pack.budget_mb} MB reached"}
            )
            break
        pack.add(photo, f"real photo ({records[src.name].get('licence', '?')}), short side <= {photo_side}")
        pack.add(sk, f"HED line drawing of photos/{photo.name} (SketchCache.make: HED + NMS, threshold, thinning)")
        kept.append({**records[src.name], "file": photo.name, "source_file": src.name})
        log(f"photo {src.name}: {rgb.shape[1]}x{rgb.shape[0]}")
    shutil.rmtree(tmp / ".sketch-cache", ignore_errors=True)
    (tmp / "photos" / "photos.json").write_text(json.dumps({"photos": kept}, indent=1))
    return kept


def _add_segmenters(pack: _Pack, segmenters: Sequence[str], wheels: bool, log: Log) -> list[dict[str, Any]]:
    """Segmenters: code and weights in the working tree (deeplab-voc vendors its TFLite file, and
    needs the tflite wheel); weights from the asset cache only where they fit (ISNet does not:
    88 MB fp16)."""
    from advseg_sdk import assets

    tmp = pack.tmp
    usable, seg_skipped = _segmenter_items(segmenters, log, (pack.budget - pack.used()) / 2**20)
    pack.skipped += seg_skipped
    chosen = []
    for entry in usable:
        if entry["name"] == "isnet":
            src = assets.asset_path("isnet-fp16")
            size = src.stat().st_size
            if pack.used() + size > pack.budget:
                pack.skipped.append(
                    {
                        "what": "segmenter isnet",
                        "reason": f"weights {size / 2**20:.0f} MB (fp16 ONNX) exceed the pack budget of "
                        f"{pack.budget_mb} MB",
                    }
                )
                continue
            dest = tmp / "weights" / src.name
            shutil.copy2(src, dest)
            pack.add(dest, "ISNet fp16 ONNX (asset isnet-fp16)")
        if entry["name"] == "deeplab-voc":
            try:
                import tflite  # noqa: F401  (the reader deeplab-voc needs; not in the GPU image)
            except ImportError:
                pack.skipped.append(
                    {"what": "segmenter deeplab-voc", "reason": "the tflite package is not installed here"}
                )
                continue
            if wheels:
                from importlib.metadata import version

                whl = _download_wheel(f"tflite=={version('tflite')}", tmp / "wheels")
                if whl is None:
                    pack.skipped.append(
                        {"what": "segmenter deeplab-voc", "reason": "pip could not download the tflite wheel"}
                    )
                    continue
                pack.add(whl, "tflite (pure-Python TFLite reader) for deeplab-voc's vendored weights")
                entry["wheels"] = [whl.relative_to(tmp).as_posix()]
        chosen.append(entry)
    return chosen


def _add_hed(pack: _Pack, log: Log) -> str | None:
    """HED weights (fp16 state dict) if they fit: only the inference benchmark's HED needs them
    (without them it times a randomly initialised HED, and says so)."""
    from safetensors.torch import save_file

    from advseg_train.hed import load_hed

    hed_sd = {k: v.detach().half().contiguous() for k, v in load_hed().state_dict().items()}
    hed_mb = sum(v.numel() * 2 for v in hed_sd.values()) / 2**20
    if pack.used() / 2**20 + hed_mb > pack.budget_mb:
        pack.skipped.append(
            {
                "what": "HED weights",
                "reason": f"{hed_mb:.0f} MB (fp16) do not fit in the "
                f"{pack.budget_mb - pack.used() / 2**20:.0f} MB left of the pack budget",
            }
        )
        return None
    hed_path = pack.tmp / HED_FILE
    save_file(
        hed_sd,
        str(hed_path),
        metadata={"source": "advseg asset hed-bsds500 (Keras BSDS500 weights), stored as fp16"},
    )
    pack.add(hed_path, "HED BSDS500 weights, fp16 state dict of advseg_train.hed.HED")
    log(f"HED weights: {hed_path.stat().st_size / 2**20:.1f} MB")
    return HED_FILE


def build_pack(
    out: str | Path = DEFAULT_PACK_DIR,
    *,
    photos: int = 34,
    photo_side: int = 512,
    budget_mb: float = 40.0,
    segmenters: Sequence[str] = ("deeplab-voc", "isnet"),
    wheels: bool = True,
    log: Log = print,
) -> dict[str, Any]:
    """Build the pack in ``out`` (replaced) and return its manifest (see the module docstring).

    ``photos``: how many cached real photos (all 34 by default: the training steps sample them).
    ``photo_side``: their short side in px (512: enough for the 512² benchmarks).
    ``wheels``: fetch wheels a segmenter needs (``tflite`` for ``deeplab-voc``) with pip."""
    t0 = time.perf_counter()
    out = Path(out)
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "photos").mkdir(parents=True)
    (tmp / "sketches").mkdir()
    (tmp / "weights").mkdir()
    pack = _Pack(tmp, budget_mb)
    kept = _add_photos(pack, photos, photo_side, log)
    chosen = _add_segmenters(pack, segmenters, wheels, log)
    hed_file = _add_hed(pack, log)
    if pack.used() > pack.budget:
        raise RuntimeError(f"pack is {pack.used() / 2**20:.1f} MB, over its budget of {budget_mb} MB")
    manifest = {
        "version": PACK_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "budget_mb": budget_mb,
        "size_mb": round(pack.used() / 2**20, 2),
        "photo_side": photo_side,
        "hed": hed_file,
        "photos": [k["file"] for k in kept],
        "segmenters": chosen,
        "items": pack.items,
        "skipped": pack.skipped,
        "build_s": round(time.perf_counter() - t0, 1),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # the whole pack appears at once
    log(
        f"pack {out}: {manifest['size_mb']} MB, {len(kept)} photos, segmenters "
        f"{', '.join(e['name'] for e in chosen) or 'none'}; skipped: {len(pack.skipped)}"
    )
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        description="Build the asset pack the GPU check carries (see benchmarks/results/README.md)."
    )
    ap.add_argument("-o", "--out", default=DEFAULT_PACK_DIR)
    ap.add_argument("--photos", type=int, default=34)
    ap.add_argument("--photo-side", type=int, default=512)
    ap.add_argument(
        "--budget-mb",
        type=float,
        default=None,
        help="default: 40, or less where the working tree leaves less of the 64 MiB a call carries",
    )
    ap.add_argument("--segmenters", default="deeplab-voc,isnet")
    ap.add_argument("--no-wheels", action="store_true")
    a = ap.parse_args(argv)
    repo = Path(__file__).resolve().parents[2] if (Path(__file__).resolve().parents[2] / ".git").exists() else Path(".")
    budget = a.budget_mb if a.budget_mb is not None else default_budget_mb(repo)
    print(f"pack budget {budget:.1f} MB (working tree {travelling_tree_mb(repo):.1f} MB travels too)")
    build_pack(
        a.out,
        photos=a.photos,
        photo_side=a.photo_side,
        budget_mb=budget,
        segmenters=[s for s in a.segmenters.split(",") if s],
        wheels=not a.no_wheels,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
