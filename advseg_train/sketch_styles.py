"""Sketch styles for training: the same photo's lines drawn the ways users draw them.

A model trained only on HED's thin, textured, post-processed edges meets a user's drawing (thick,
clean outlines with large empty regions, sometimes with gaps) as a foreign input. Each training
item picks one style, so the generator learns to fill regions whatever the line looks like:

========================  ==============================================================
``hed``                   the cached HED line drawing as the SDK makes it
``hed_thick``             HED lines dilated to 2–4 px
``hed_outline``           only HED's long edges (no texture strokes), thickened: a
                          colouring-book outline
``hed_gaps``              HED lines with short stretches erased
``xdog``                  XDoG lines of the photo (``advseg_sdk.line_drawing.xdog``)
``regions``               the borders of the photo's large colour regions (a graph
                          segmentation), half the time with HED's long edges: the
                          big, empty, enclosed areas of a colouring-book page, whose
                          colour the photo still knows
========================  ==============================================================
"""

from __future__ import annotations

import cv2
import numpy as np

from advseg_sdk import line_drawing as sk

__all__ = ["SKETCH_STYLES", "parse_styles", "stylise"]

SKETCH_STYLES = ("hed", "hed_thick", "hed_outline", "hed_gaps", "xdog", "regions")


def parse_styles(text: str | None) -> tuple[str, ...]:
    """``"hed,hed_thick"`` -> ``("hed", "hed_thick")``; ValueError naming an unknown style."""
    if not text:
        return ()
    styles = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in styles if s not in SKETCH_STYLES]
    if unknown:
        raise ValueError(f"unknown sketch style(s) {unknown}; choose from {list(SKETCH_STYLES)}")
    return styles


def _thicken(lines: np.ndarray, radius: int) -> np.ndarray:
    """Dilate black lines (uint8, black on white) by ``radius`` px."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.erode(lines, kernel)


def _outline(lines: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keep connected line pieces of at least ~1/12 of the short side, then thicken."""
    ink = lines < 128
    min_px = max(20, min(lines.shape) // 12)
    kept = sk.remove_small_edges(ink, min_px)
    out = np.where(kept, 0, 255).astype(np.uint8)
    return _thicken(out, int(rng.integers(1, 3)))


def _regions(lines: np.ndarray, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Borders of ~5-30 colour regions (Felzenszwalb on the half-size, edge-preserving smoothed
    photo), smoothed, 2-3 px wide; half the time joined by HED's long edges."""
    from skimage.segmentation import felzenszwalb, find_boundaries

    h, w = lines.shape
    half = cv2.resize(rgb, (max(8, w // 2), max(8, h // 2)), interpolation=cv2.INTER_AREA)
    half = cv2.bilateralFilter(half, 7, 60, 5)
    seg = felzenszwalb(half, scale=float(rng.uniform(150, 400)), sigma=0.8, min_size=half.size // (3 * 80))
    border = find_boundaries(seg, mode="inner").astype(np.float32)
    border = cv2.GaussianBlur(cv2.resize(border, (w, h), interpolation=cv2.INTER_LINEAR), (5, 5), 1.5)
    ink = border > 0.3
    if rng.random() < 0.5:
        ink |= sk.remove_small_edges(lines < 128, max(20, min(h, w) // 8))
    out = np.where(ink, 0, 255).astype(np.uint8)
    return _thicken(out, int(rng.integers(0, 2)))


def _gaps(lines: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Erase 10–40 small discs of line."""
    out = lines.copy()
    h, w = out.shape
    for _ in range(int(rng.integers(10, 41))):
        cv2.circle(out, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(2, 6)), 255, -1)
    return out


def stylise(style: str, hed_lines: np.ndarray, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The (H, W) uint8 sketch of ``style`` from the photo's HED lines and the photo itself."""
    if style == "hed":
        return hed_lines
    if style == "hed_thick":
        return _thicken(hed_lines, int(rng.integers(1, 3)))
    if style == "hed_outline":
        return _outline(hed_lines, rng)
    if style == "hed_gaps":
        return _gaps(hed_lines, rng)
    if style == "xdog":
        return sk.xdog(rgb, sigma=float(rng.uniform(0.7, 1.3)), binarize=True)
    if style == "regions":
        return _regions(hed_lines, rgb, rng)
    raise ValueError(f"unknown sketch style {style!r}; choose from {list(SKETCH_STYLES)}")
