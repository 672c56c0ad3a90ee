"""How a colouriser fills real line drawings, which have no photo to compare against.

A user's drawing is the product's main input, and the failure to catch is the one the eye sees
first: one pale wash everywhere, or colour only along the lines. Per drawing and model this
measures, over the drawing's enclosed regions (white areas bounded by lines, at least 0.5 % of
the picture):

* ``filled``: share of the regions' pixels that carry colour (CIELAB chroma C* > 12);
* ``chroma``: mean C* over the regions (a photo-like picture: ~15–30);
* ``distinct``: how many clearly different colours the regions get (region means more than
  ΔE 15 apart, greedily clustered), divided by the number of regions, capped at 1;
* ``uniform``: mean within-region a*b* standard deviation (low: regions filled evenly).

Whether the colours are *plausible* only a person can say: the contact sheet is the result;
the numbers say whether anything was filled at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from advseg_sdk.files import atomic_write_text
from advseg_sdk.imageio import read_image, write_image

__all__ = ["LineArtResult", "region_figures", "evaluate_lineart"]

_CHROMA_COLOURED = 12.0
_DISTINCT_DELTA_E = 15.0
_MIN_REGION_SHARE = 0.005


def _lab(rgb: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    return rgb2lab(rgb)


def _regions(drawing: np.ndarray) -> list[np.ndarray]:
    """Boolean masks of the enclosed white regions of a (H, W) uint8 drawing."""
    white: np.ndarray = (drawing > 200).astype(np.uint8)
    white = cv2.erode(white, np.ones((3, 3), np.uint8))  # regions touching through a 1-px gap stay apart
    n, labels, stats, _ = cv2.connectedComponentsWithStats(white, connectivity=4)
    min_area = _MIN_REGION_SHARE * drawing.size
    return [labels == i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area]


def region_figures(drawing: np.ndarray, colour: np.ndarray) -> dict[str, float]:
    """The figures above for one (H, W) uint8 drawing and its (H, W, 3) uint8 colouring."""
    lab = _lab(colour)
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    regions = _regions(drawing)
    if not regions:
        return {"regions": 0.0, "filled": 0.0, "chroma": 0.0, "distinct": 0.0, "uniform": 0.0}
    inside = np.any(regions, axis=0)
    means = [lab[m].mean(axis=0) for m in regions]
    centres: list[np.ndarray] = []
    for m in means:
        if all(np.linalg.norm(m - c) > _DISTINCT_DELTA_E for c in centres):
            centres.append(m)
    return {
        "regions": float(len(regions)),
        "filled": float((chroma[inside] > _CHROMA_COLOURED).mean()),
        "chroma": float(chroma[inside].mean()),
        "distinct": min(1.0, len(centres) / len(regions)) if len(regions) > 1 else float(len(centres) > 0),
        "uniform": float(np.mean([lab[m][:, 1:].std(axis=0).mean() for m in regions])),
    }


@dataclass
class LineArtResult:
    """Per model: mean figures; per drawing: the figures of each model; the files written."""

    summary: dict[str, dict[str, float]]
    per_drawing: list[dict[str, Any]]
    files: dict[str, Path] = field(default_factory=dict)


def _fit(img: np.ndarray, long_side: int, multiple: int = 32) -> np.ndarray:
    """Scale so the long side is at most ``long_side`` and both sides are multiples of ``multiple``."""
    h, w = img.shape[:2]
    scale = min(1.0, long_side / max(h, w))
    nh, nw = (
        max(multiple, round(h * scale / multiple) * multiple),
        max(multiple, round(w * scale / multiple) * multiple),
    )
    return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA) if (nh, nw) != (h, w) else img


def _sheet(path: Path, rows: Sequence[Sequence[np.ndarray]], cell: int = 256) -> Path:
    def cell_of(img: np.ndarray) -> np.ndarray:
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        h, w = img.shape[:2]
        return cv2.resize(img, (cell, max(1, round(h * cell / w))), interpolation=cv2.INTER_AREA)

    strips = []
    for row in rows:
        cells = [cell_of(c) for c in row]
        height = max(c.shape[0] for c in cells) + 4
        padded = []
        for c in cells:
            out = np.full((height, cell + 4, 3), 255, np.uint8)
            out[: c.shape[0], : c.shape[1]] = c
            padded.append(out)
        strips.append(np.concatenate(padded, 1))
    write_image(path, np.concatenate(strips, 0))
    return path


def evaluate_lineart(
    drawings: Sequence[Path],
    colorizers: Mapping[str, Any],
    out_dir: Path,
    long_side: int = 512,
    rows: int = 16,
) -> LineArtResult:
    """Colour each drawing with each ``colorizers`` entry (name -> anything with
    ``colorize(rgb) -> rgb``), score the regions, and write ``report.md``, ``summary.json`` and
    ``contact_sheet.png`` (drawing | one column per model) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(colorizers)
    per: list[dict[str, Any]] = []
    sheet_rows: list[list[np.ndarray]] = []
    picks = set(np.linspace(0, len(drawings) - 1, min(rows, len(drawings))).round().astype(int).tolist())
    for i, path in enumerate(drawings):
        rgb = _fit(read_image(path), long_side)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        clean = np.repeat(gray[..., None], 3, axis=2)
        row: dict[str, Any] = {"drawing": path.name}
        cells: list[np.ndarray] = [clean]
        for name in names:
            colour = colorizers[name].colorize(clean)
            row[name] = region_figures(gray, colour)
            cells.append(colour)
        per.append(row)
        if i in picks:
            sheet_rows.append(cells)
    keys = ("filled", "chroma", "distinct", "uniform")
    summary = {n: {k: float(np.mean([r[n][k] for r in per])) for k in keys} for n in names}
    files = {
        "contact_sheet": _sheet(out_dir / "contact_sheet.png", sheet_rows),
        "summary": atomic_write_text(
            out_dir / "summary.json", json.dumps({"summary": summary, "per_drawing": per}, indent=1)
        ),
        "report": atomic_write_text(out_dir / "report.md", _markdown(summary, len(per))),
    }
    return LineArtResult(summary, per, files)


def _markdown(summary: Mapping[str, Mapping[str, float]], n: int) -> str:
    lines = [
        f"# Line drawings: {n} drawings",
        "",
        "Over the drawings' enclosed regions: filled = share of pixels with chroma C* > 12; chroma = mean C*;",
        "distinct = different region colours (ΔE > 15) per region; uniform = within-region a*b* spread (lower = even).",
        "",
        "| model | filled | chroma | distinct | uniform |",
        "|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        lines.append(f"| {name} | {s['filled']:.3f} | {s['chroma']:.1f} | {s['distinct']:.3f} | {s['uniform']:.1f} |")
    return "\n".join(lines) + "\n"
