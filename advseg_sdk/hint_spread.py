"""Spreading colour hints over the sketch region they fall in, before the network sees them.

The shipped hint generator puts a hint's colour where the hint is and little further: a few red
dots in an empty square give red dots on a darker square. Given the same colour over the whole
square it paints the square that colour. So the SDK does the spreading a user means by "this is
red": each hint fills the enclosed region of the line drawing it falls in (the lines' white
areas, split where the lines are; small gaps in the lines are closed first). Where several hints
fall in one region, each pixel takes the colour of the nearest one. A region larger than
``max_share`` of the image (the background, or an area the lines do not close) is filled only
within ``radius`` pixels of its hints, so one dot does not flood a whole photo's sketch.
"""

from __future__ import annotations

import cv2
import numpy as np

from .hints import HintSet

__all__ = ["spread_hints", "line_regions"]


def line_regions(sketch: np.ndarray, close_px: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(labels, lines) of a sketch (uint8 (H, W) or (H, W, 3), dark lines on light): ``lines`` is
    the line mask, ``labels`` numbers the 4-connected areas between the lines after dilating them
    by ``close_px`` (0 on lines)."""
    grey = sketch if sketch.ndim == 2 else cv2.cvtColor(sketch, cv2.COLOR_RGB2GRAY)
    lines = grey < 128
    walls: np.ndarray = lines.astype(np.uint8)
    if close_px > 0:
        k = 2 * close_px + 1
        walls = cv2.dilate(walls, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    _, labels = cv2.connectedComponents((walls == 0).astype(np.uint8), connectivity=4)
    return labels.astype(np.int32), lines


def _seeds(hints: HintSet, size: tuple[int, int], point_radius: int) -> np.ndarray:
    """The hints as one RGBA seed image of ``size`` (points as small discs, the scribble as drawn)."""
    h, w = size
    seeds = np.zeros((h, w, 4), np.uint8)
    if hints.scribble is not None:
        on = hints.scribble[..., 3] > 127
        seeds[on, :3] = hints.scribble[on, :3]
        seeds[on, 3] = 255
    for p in hints.points:
        centre = (int(round(p.x)), int(round(p.y)))
        cv2.circle(seeds, centre, point_radius, (*p.rgb, 255), thickness=-1)
    return seeds


def _nearest_seed_colours(seed_mask: np.ndarray, seeds_rgb: np.ndarray) -> np.ndarray:
    """For every pixel of the crop, the RGB of its nearest seed pixel."""
    _, nearest = cv2.distanceTransformWithLabels(
        (~seed_mask).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    ys, xs = np.nonzero(seed_mask)  # labels number the seed pixels in this (row-major) order
    palette = np.zeros((len(ys) + 1, 3), np.uint8)
    palette[1:] = seeds_rgb[ys, xs]
    return palette[nearest]


def spread_hints(
    sketch: np.ndarray,
    hints: HintSet | None,
    max_share: float = 0.5,
    radius: int | None = None,
    close_px: int = 1,
) -> HintSet | None:
    """``hints`` spread over their regions of ``sketch`` (same size), as a scribble; see the
    module docstring. ``radius`` (default: a tenth of the short side) bounds the fill in regions
    over ``max_share`` of the image. Line pixels stay unhinted; the hints themselves are kept."""
    if hints is None or hints.empty:
        return hints
    h, w = sketch.shape[:2]
    if tuple(hints.size) != (h, w):
        raise ValueError(f"hints are for a {hints.size[1]}x{hints.size[0]} image, the sketch is {w}x{h}")
    radius = max(4, min(h, w) // 10) if radius is None else radius
    labels, lines = line_regions(sketch, close_px)
    seeds = _seeds(hints, (h, w), max(1, min(h, w) // 128))
    seeded = seeds[..., 3] > 0
    out = seeds.copy()
    areas = np.bincount(labels.ravel())
    for region in np.unique(labels[seeded & (labels > 0)]):
        ys, xs = np.nonzero(labels == region)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        inside = labels[y0:y1, x0:x1] == region
        crop_seeds = seeded[y0:y1, x0:x1] & inside
        fill = inside.copy()
        if areas[region] > max_share * h * w:
            dist = cv2.distanceTransform((~crop_seeds).astype(np.uint8), cv2.DIST_L2, 5)
            fill &= dist <= radius
        colours = _nearest_seed_colours(crop_seeds, seeds[y0:y1, x0:x1, :3])
        block = out[y0:y1, x0:x1]
        block[fill, :3] = colours[fill]
        block[fill, 3] = 255
    out[lines & ~seeded] = 0
    return HintSet((h, w), scribble=out)
