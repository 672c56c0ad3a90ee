"""Colour quality of a photo → sketch → colour pipeline, measured against the original photos.

A sketch holds no colour, so a colouriser is judged on how close its guess comes to the photo
the sketch was drawn from, and against two baselines that any model must beat on the same
sketches:

* ``lines``: the bare line drawing (black on white);
* ``flat``: the lines over one flat colour, the mean colour of all evaluated photos (one colour
  for the whole set; it knows the set's average, which a model has to learn).

Per image, at the evaluation size (long side ``eval_size``):

* ``feature_cosine``: cosine of FID's Inception-v3 pool3 features (ResNet-50 features when the
  Inception weights are not available; the report names the network);
* ``ssim_l``: SSIM of the CIELAB lightness channel;
* ``ciede2000``: mean CIEDE2000 colour difference per pixel;
* ``chroma_ratio``: mean CIELAB chroma of the output over that of the photo (1 = as colourful).

Over the set: KID (and FID where the set is large enough) of each method's images against the
photos. Outputs: ``per_image.csv``, ``summary.json``, ``report.md``, ``contact_sheet.png`` and
``index.html`` with the images under ``images/``.

Colour hints: a pipeline wrapped in :class:`HintedPipeline` gets ``count`` hint points per photo
(:func:`sample_hints`: positions drawn at random, seeded by the photo's file name; colour the
photo's mean over the 5x5 patch at the pipeline's working scale). A model whose bundle takes no
hints is scored unhinted and the report says so; ``hints_sheet.png`` shows the hints (sketch |
hints | colour per model | photo).
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import structural_similarity

from advseg_sdk.files import atomic_path
from advseg_sdk.imageio import read_image, write_image

__all__ = [
    "GOALS",
    "ColourEvalResult",
    "HintedPipeline",
    "sample_hints",
    "colour_metrics",
    "evaluate_colour",
    "flat_baseline",
    "lines_baseline",
    "set_scores_of",
]

# What "a model that colours" means here, relative to the flat-colour baseline on the same sketches.
GOALS: dict[str, Any] = {
    "ciede2000_vs_flat": 0.80,  # colour error at most 80 % of the flat baseline's
    "feature_cosine_over_flat": 0.05,  # feature cosine at least 0.05 above the flat baseline's
    "chroma_ratio": (0.6, 1.4),
}
FID_MIN_IMAGES = 200  # below this a Fréchet distance is dominated by its bias: KID only
METRICS = ("feature_cosine", "ssim_l", "ciede2000", "chroma_ratio")


def set_scores_of(features: np.ndarray, photo_features: np.ndarray) -> dict[str, float]:
    """Set-level distances of one method's outputs to the photos: KID from two images on, FID
    only from :data:`FID_MIN_IMAGES` on (below that its bias dominates)."""
    from .fid import frechet_distance_from_features, gaussian_stats, kid

    n = len(features)
    scores: dict[str, float] = {}
    if n >= 2:
        k = kid(features, photo_features, subset_size=min(100, n))
        scores["kid"], scores["kid_std"] = k.mean, k.std
    if n >= FID_MIN_IMAGES:
        scores["fid"] = float(
            frechet_distance_from_features(
                features, gaussian_stats(features), photo_features, gaussian_stats(photo_features)
            )
        )
    return scores


def _lab(rgb: np.ndarray) -> np.ndarray:
    return rgb2lab(rgb.astype(np.float32) / 255.0)


def colour_metrics(photo: np.ndarray, image: np.ndarray) -> dict[str, float]:
    """SSIM of lightness, mean CIEDE2000 and the chroma ratio of ``image`` against ``photo``
    (uint8 RGB arrays of one size)."""
    if photo.shape != image.shape:
        raise ValueError(f"photo {photo.shape} and image {image.shape} differ in size")
    lab_p, lab_i = _lab(photo), _lab(image)
    chroma_p = float(np.hypot(lab_p[..., 1], lab_p[..., 2]).mean())
    chroma_i = float(np.hypot(lab_i[..., 1], lab_i[..., 2]).mean())
    return {
        "ssim_l": float(structural_similarity(lab_p[..., 0], lab_i[..., 0], data_range=100.0)),
        "ciede2000": float(deltaE_ciede2000(lab_p, lab_i).mean()),
        "chroma_ratio": chroma_i / max(chroma_p, 1e-6),
    }


def lines_baseline(sketch: np.ndarray) -> np.ndarray:
    """The bare line drawing as RGB."""
    return np.repeat(sketch[..., None], 3, axis=2)


def flat_baseline(sketch: np.ndarray, colour: Sequence[float]) -> np.ndarray:
    """Black lines over one flat colour."""
    out = np.empty(sketch.shape + (3,), np.uint8)
    out[:] = np.clip(np.round(np.asarray(colour, np.float64)), 0, 255).astype(np.uint8)
    out[sketch < 128] = 0
    return out


def _fit_long_side(rgb: np.ndarray, long_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = long_side / max(h, w)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


class _Features:
    """FID's Inception-v3 when its weights are available, else the offline ResNet-50."""

    def __init__(self, device: str | None) -> None:
        from .features import get_extractor

        try:
            self.extractor = get_extractor("inception-fid", device=device)
            self.network = "Inception-v3 pool3 (FID's network)"
        except (FileNotFoundError, ValueError, OSError):
            self.extractor = get_extractor("imgsim-resnet50", device=device)
            self.network = "ResNet-50 (imgsim weights; FID's Inception weights were not available)"
        self.label = getattr(self.extractor, "weights_label", "")

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        feats = []
        for img in images:
            x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255.0
            feats.append(self.extractor(x)[0])
        return np.stack(feats).astype(np.float64)


def sample_hints(photo: np.ndarray, count: int, name: str, work_hw: tuple[int, int] | None = None) -> list[Any]:
    """``count`` hint points for ``photo`` (uint8 RGB), in its pixels: positions uniformly at random
    (seeded by ``name``, so every run and every model gets the same ones), colour the photo's mean
    over the 5x5 patch around the point at the working size ``work_hw`` (default: its own)."""
    from advseg_sdk.hints import Hint

    h, w = photo.shape[:2]
    wh, ww = work_hw or (h, w)
    work = photo
    if (wh, ww) != (h, w):
        shrink = wh * ww < h * w
        work = cv2.resize(photo, (ww, wh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    seed = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    xs, ys = rng.integers(0, w, count), rng.integers(0, h, count)
    hints = []
    for x, y in zip(xs.tolist(), ys.tolist()):
        cx = min(max(int(np.floor((x + 0.5) * ww / w)), 0), ww - 1)
        cy = min(max(int(np.floor((y + 0.5) * wh / h)), 0), wh - 1)
        patch = work[max(cy - 2, 0) : cy + 3, max(cx - 2, 0) : cx + 3].reshape(-1, 3).astype(np.float64)
        r, g, b = (int(v) for v in np.clip(np.rint(patch.mean(0)), 0, 255))
        hints.append(Hint(x, y, (r, g, b)))
    return hints


@dataclass(frozen=True)
class HintedPipeline:
    """A :class:`~advseg_sdk.colorizer.Pipeline` evaluated with ``count`` sampled hints per photo
    (unhinted when its bundle takes none: ``takes_hints`` is then False)."""

    pipeline: Any
    count: int

    @property
    def takes_hints(self) -> bool:
        return bool(self.count) and bool(getattr(self.pipeline.colorizer, "accepts_hints", False))

    def run(self, photo: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, list[Any] | None]:
        """(sketch, colour, the hints given or None) for one photo."""
        if not self.takes_hints:
            sketch, colour = self.pipeline.run(photo)
            return sketch, colour, None
        hints = sample_hints(photo, self.count, name, self.pipeline.work_size(photo.shape[:2]))
        sketch, colour = self.pipeline.run(photo, hints=hints)
        return sketch, colour, hints

    def __call__(self, photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sketch, colour, _ = self.run(photo, "")
        return sketch, colour


def _hints_summary(hinted: dict[str, HintedPipeline], names: Sequence[str]) -> dict[str, Any]:
    """What the report says about hints: how many per photo, who took them and how they were spread."""
    return {
        "per_photo": max(p.count for p in hinted.values()),
        "hinted": [n for n, p in hinted.items() if p.takes_hints],
        "unhinted": [n for n in names if n not in hinted or not hinted[n].takes_hints],
        "spread": {n: getattr(p.pipeline.colorizer, "hint_spread", "none") for n, p in hinted.items() if p.takes_hints},
    }


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


@dataclass
class ColourEvalResult:
    """Per-image rows, per-method means, set-level scores and where the files are."""

    rows: list[dict[str, Any]]
    summary: dict[str, dict[str, float]]
    set_scores: dict[str, dict[str, Any]]
    goals: dict[str, dict[str, Any]]
    flat_colour: list[float]
    feature_network: str
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    hints: dict[str, Any] | None = None  # with HintedPipelines: per_photo, hinted, unhinted models


def _goals(summary: dict[str, dict[str, float]], method: str) -> dict[str, Any]:
    m, flat = summary[method], summary["flat"]
    lo, hi = GOALS["chroma_ratio"]
    ratio = m["ciede2000"] / max(flat["ciede2000"], 1e-9)
    return {
        "ciede2000_vs_flat": {
            "value": ratio,
            "goal": f"<= {GOALS['ciede2000_vs_flat']}",
            "met": ratio <= GOALS["ciede2000_vs_flat"],
        },
        "feature_cosine_over_flat": {
            "value": m["feature_cosine"] - flat["feature_cosine"],
            "goal": f">= {GOALS['feature_cosine_over_flat']}",
            "met": m["feature_cosine"] - flat["feature_cosine"] >= GOALS["feature_cosine_over_flat"],
        },
        "chroma_ratio": {"value": m["chroma_ratio"], "goal": f"{lo}-{hi}", "met": lo <= m["chroma_ratio"] <= hi},
    }


def evaluate_colour(
    photos: Sequence[str | os.PathLike],
    pipelines: dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]],
    out_dir: str | os.PathLike,
    *,
    eval_size: int = 512,
    device: str | None = None,
    sheet_rows: int = 12,
    title: str = "colour quality",
    progress: bool = True,
) -> ColourEvalResult:
    """Run each pipeline (photo uint8 RGB -> (sketch uint8 (H, W), colour uint8 RGB), or a
    :class:`HintedPipeline`) on every photo and score it and the baselines. The first pipeline's
    sketches make the baselines."""
    if not photos:
        raise ValueError("no photos to evaluate")
    if not pipelines:
        raise ValueError("no pipeline to evaluate")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    names = list(pipelines)
    feats = _Features(device)

    from tqdm import tqdm

    photo_arrays: list[np.ndarray] = []
    sketches: list[np.ndarray] = []
    outputs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    stems: list[str] = []
    hinted = {n: p for n, p in pipelines.items() if isinstance(p, HintedPipeline)}
    given: list[list[Any] | None] = []  # per photo: the first hinted model's hints
    for path in tqdm(list(photos), desc="colour", unit="img", disable=not progress):
        path = Path(path)
        rgb = _fit_long_side(read_image(path), eval_size)
        photo_arrays.append(rgb)
        stems.append(path.stem)
        given.append(None)
        for i, n in enumerate(names):
            pipe = pipelines[n]
            if isinstance(pipe, HintedPipeline):
                sketch, colour, hints = pipe.run(rgb, path.name)
                if given[-1] is None:
                    given[-1] = hints
            else:
                sketch, colour = pipe(rgb)
            if colour.shape != rgb.shape:
                raise ValueError(f"pipeline {n!r} returned {colour.shape} for a photo of {rgb.shape}")
            outputs[n].append(colour)
            if i == 0:
                sketches.append(sketch)
    flat_colour = np.concatenate([p.reshape(-1, 3) for p in photo_arrays]).astype(np.float64).mean(0)
    outputs["lines"] = [lines_baseline(s) for s in sketches]
    outputs["flat"] = [flat_baseline(s, flat_colour) for s in sketches]
    methods = names + ["lines", "flat"]

    photo_feats = feats(photo_arrays)
    method_feats = {m: feats(outputs[m]) for m in methods}
    rows: list[dict[str, Any]] = []
    for m in methods:
        cos = _cosine(method_feats[m], photo_feats)
        for i, stem in enumerate(stems):
            rows.append(
                {
                    "image": stem,
                    "method": m,
                    "feature_cosine": float(cos[i]),
                    **colour_metrics(photo_arrays[i], outputs[m][i]),
                }
            )
    summary = {m: {k: float(np.mean([r[k] for r in rows if r["method"] == m])) for k in METRICS} for m in methods}

    set_scores = {m: set_scores_of(method_feats[m], photo_feats) for m in methods}
    goals = {n: _goals(summary, n) for n in names}

    for i, stem in enumerate(stems):
        write_image(out / "images" / f"{i:03d}_{stem}_photo.png", photo_arrays[i])
        write_image(out / "images" / f"{i:03d}_{stem}_sketch.png", sketches[i])
        for n in names:
            write_image(out / "images" / f"{i:03d}_{stem}_{_slug(n)}.png", outputs[n][i])
    result = ColourEvalResult(
        rows=rows,
        summary=summary,
        set_scores=set_scores,
        goals=goals,
        flat_colour=[float(c) for c in flat_colour],
        feature_network=feats.network,
        out_dir=out,
    )
    if hinted and any(p.count for p in hinted.values()):
        result.hints = _hints_summary(hinted, names)
    result.files["per_image"] = _write_csv(out / "per_image.csv", rows)
    result.files["summary"] = _write_text(
        out / "summary.json",
        json.dumps(
            {
                "title": title,
                "images": len(stems),
                "eval_size": eval_size,
                "feature_network": feats.network,
                "feature_weights": feats.label,
                "flat_colour": result.flat_colour,
                "methods": summary,
                "set_scores": set_scores,
                "goals": goals,
                "fid_note": f"FID only with >= {FID_MIN_IMAGES} images; KID otherwise",
                **({"hints": result.hints} if result.hints else {}),
            },
            indent=1,
        ),
    )
    result.files["report"] = _write_text(out / "report.md", _markdown(result, title, len(stems), eval_size))
    result.files["contact_sheet"] = _contact_sheet(
        out / "contact_sheet.png", photo_arrays, sketches, [outputs[n] for n in names], sheet_rows
    )
    if result.hints and result.hints["hinted"]:
        shown = [_draw_points(s, g) for s, g in zip(sketches, given)]
        columns = [sketches, shown, *(outputs[n] for n in names), photo_arrays]
        result.files["hints_sheet"] = _sheet(out / "hints_sheet.png", columns, sheet_rows)
    result.files["html"] = _write_text(out / "index.html", _html(result, title, stems, names))
    return result


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _markdown(r: ColourEvalResult, title: str, n: int, eval_size: int) -> str:
    lines = [
        f"# {title}",
        "",
        f"{n} photos, long side ≤ {eval_size} px; features: {r.feature_network}; flat colour = mean of "
        f"the evaluated photos, RGB ({', '.join(f'{c:.0f}' for c in r.flat_colour)}).",
        "",
        "| method | feature cosine ↑ | SSIM (L) ↑ | CIEDE2000 ↓ | chroma ratio (→1) | KID ↓ |",
        "|---|---|---|---|---|---|",
    ]
    for m, s in r.summary.items():
        kid_v = r.set_scores.get(m, {}).get("kid")
        lines.append(
            f"| {m} | {s['feature_cosine']:.3f} | {s['ssim_l']:.3f} | {s['ciede2000']:.2f} | "
            f"{s['chroma_ratio']:.2f} | {'' if kid_v is None else f'{kid_v:.4f}'} |"
        )
    if r.hints:
        h = r.hints
        lines += [
            "",
            f"Colour hints: {h['per_photo']} points per photo (positions at random, seeded by the photo's "
            "name; colour the photo's mean over the 5x5 patch at the working scale)"
            + (f", given to {', '.join(h['hinted'])}" if h["hinted"] else "")
            + "."
            + "".join(
                f" {n}: hints spread over their sketch regions." if how == "region" else f" {n}: hints as given."
                for n, how in h.get("spread", {}).items()
            )
            + (
                f" {', '.join(h['unhinted'])}: takes no hints (its bundle has no hint input), scored unhinted."
                if h["unhinted"]
                else ""
            ),
        ]
    lines += ["", "Goals against the flat baseline:", ""]
    for name, g in r.goals.items():
        parts = [f"{k} {v['value']:.3f} (goal {v['goal']}: {'met' if v['met'] else 'missed'})" for k, v in g.items()]
        lines.append(f"- {name}: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def _contact_sheet(
    path: Path,
    photos: list[np.ndarray],
    sketches: list[np.ndarray],
    outputs: list[list[np.ndarray]],
    rows: int,
    cell: int = 256,
) -> Path:
    """Rows of photo | sketch | colour (one column per pipeline), each image ``cell`` px wide."""
    return _sheet(path, [photos, sketches, *outputs], rows, cell)


def _draw_points(sketch: np.ndarray, hints: list[Any] | None) -> np.ndarray:
    from advseg_sdk.hints import HintSet, draw_hints

    if not hints:
        return lines_baseline(sketch) if sketch.ndim == 2 else sketch
    return draw_hints(sketch, HintSet(sketch.shape[:2], tuple(hints)))


def _sheet(path: Path, columns: list[list[np.ndarray]], rows: int, cell: int = 256) -> Path:
    """Rows of one image per column, each ``cell`` px wide; ``rows`` picked evenly."""

    def fit(img: np.ndarray) -> np.ndarray:
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        h, w = img.shape[:2]
        return cv2.resize(img, (cell, max(1, round(h * cell / w))), interpolation=cv2.INTER_AREA)

    def pad(img: np.ndarray, height: int) -> np.ndarray:
        out = np.full((height, img.shape[1], 3), 255, np.uint8)
        out[: img.shape[0]] = img
        return out

    n = len(columns[0])
    picks = np.linspace(0, n - 1, min(rows, n)).round().astype(int)
    grid = []
    for i in picks:
        cells = [fit(col[i]) for col in columns]
        height = max(c.shape[0] for c in cells) + 4  # a white gap between rows
        grid.append(np.concatenate([pad(c, height) for c in cells], 1))
    write_image(path, np.concatenate(grid, 0))
    return path


def _html(r: ColourEvalResult, title: str, stems: list[str], names: list[str]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in ["photo", "sketch", *names])
    body = []
    for i, stem in enumerate(stems):
        cells = [
            f'<td><img src="images/{i:03d}_{esc(stem)}_photo.png"></td>',
            f'<td><img src="images/{i:03d}_{esc(stem)}_sketch.png"></td>',
        ]
        for n in names:
            row = next(x for x in r.rows if x["image"] == stem and x["method"] == n)
            cells.append(
                f'<td><img src="images/{i:03d}_{esc(stem)}_{esc(_slug(n))}.png"><br>'
                f"ΔE {row['ciede2000']:.1f} · cos {row['feature_cosine']:.2f} · "
                f"chroma {row['chroma_ratio']:.2f}</td>"
            )
        body.append(f"<tr><th>{esc(stem)}</th>{''.join(cells)}</tr>")
    summary_rows = "".join(
        f"<tr><td>{esc(m)}</td>" + "".join(f"<td>{s[k]:.3f}</td>" for k in METRICS) + "</tr>"
        for m, s in r.summary.items()
    )
    return f"""<!doctype html><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif}} img{{max-width:256px;max-height:256px}}
td,th{{padding:4px;vertical-align:top;font-size:12px}}</style>
<h1>{esc(title)}</h1>
<p>{len(stems)} photos; features: {esc(r.feature_network)}; flat colour = mean of the evaluated photos.</p>
<table border="1"><tr><th>method</th>{"".join(f"<th>{k}</th>" for k in METRICS)}</tr>{summary_rows}</table>
<h2>Images</h2><table><tr><th></th>{head}</tr>{"".join(body)}</table>
"""
