"""Overlapping tiles and feathered blending, so large images run in bounded memory.

A grid of equal tiles covers the image; neighbours overlap by at least ``overlap`` pixels. Each
tile's output is weighted by a separable ramp across the overlap and the weighted sum is
normalised. The ramp is zero in the outer quarter of the overlap, rises linearly through its
middle half and is one beyond it, so a pixel near a tile edge (where the network saw padding
instead of image) never contributes while a neighbour has a clean view of it.

Exactness bound: for a network whose output at a pixel depends only on inputs within radius
``r`` (its receptive-field radius) and is shift-equivariant under the tile alignment (tile
starts are multiples of ``align``, e.g. the generator's total stride), the tiled output equals
the untiled output when ``r <= overlap // 4``. Global operations (InstanceNorm statistics) see
per-tile statistics instead, so tiled and untiled differ for such networks; larger tiles
bring them closer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["Tile", "tile_starts", "fitted_tile", "tile_grid", "ramp", "TileBlender"]


@dataclass(frozen=True)
class Tile:
    y: int
    x: int
    h: int
    w: int
    first_row: bool
    last_row: bool
    first_col: bool
    last_col: bool

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles of size ``min(tile, length)`` covering ``[0, length)``.

    Neighbours overlap by at least ``overlap``; every start is a multiple of ``align`` when
    ``length - tile`` is (the caller pads the image so that it is).
    """
    if tile < 1 or overlap < 0 or align < 1:
        raise ValueError(f"bad tiling: tile={tile}, overlap={overlap}, align={align}")
    if length <= tile:
        return [0]
    if overlap >= tile:
        raise ValueError(f"tile overlap ({overlap}) must be smaller than the tile ({tile})")
    step_max = ((tile - overlap) // align) * align
    if step_max < 1:
        raise ValueError(
            f"tile {tile} minus overlap {overlap} leaves no step that is a multiple of {align}; "
            "use a larger tile or a smaller overlap"
        )
    span = length - tile
    n = math.ceil(span / step_max) + 1
    starts = [align * round(i * span / (n - 1) / align) for i in range(n)]
    starts[-1] = span
    return starts


def fitted_tile(length: int, tile: int, overlap: int, align: int = 1) -> int:
    """The smallest tile size (a multiple of ``align``, at most ``tile``) that covers ``length``
    with as few tiles as ``tile`` does.

    With fixed 512-pixel tiles and a 32-pixel overlap, a 1536-pixel side needs four tiles, which
    compute 2048 pixels. Four 408-pixel tiles cover it too and compute 1632, so a
    fully convolutional network does 1.6x less work on a 1536² image (2048²: 1.4x).
    """
    n = len(tile_starts(length, tile, overlap, align))
    if n == 1:
        return min(tile, length)
    best = -(-(length + (n - 1) * overlap) // n)  # ceil: n tiles overlapping by `overlap` span length
    best = -(-best // align) * align
    while best < tile and (best - overlap < align or len(tile_starts(length, best, overlap, align)) > n):
        best += align
    return min(best, tile)


def tile_grid(height: int, width: int, tile: int, overlap: int, align: int = 1, fit: bool = False) -> list[Tile]:
    """The tiles covering an ``height`` x ``width`` image, row by row.

    ``fit``: shrink the tile along each axis to :func:`fitted_tile` (same tile count, less
    overlap waste); use it when cost grows with tile area (fully convolutional networks).
    """
    th = fitted_tile(height, tile, overlap, align) if fit else min(tile, height)
    tw = fitted_tile(width, tile, overlap, align) if fit else min(tile, width)
    ys = tile_starts(height, th, overlap, align)
    xs = tile_starts(width, tw, overlap, align)
    return [
        Tile(y, x, th, tw, i == 0, i == len(ys) - 1, j == 0, j == len(xs) - 1)
        for i, y in enumerate(ys)
        for j, x in enumerate(xs)
    ]


def ramp(n: int, overlap: int, rise_start: bool, rise_end: bool) -> np.ndarray:
    """1-D weights of length ``n``: ramps over ``overlap`` pixels at the requested ends."""
    w = np.ones(n, dtype=np.float32)
    if overlap <= 0:
        return w
    o = min(overlap, n)
    margin = o // 4
    width = max(o - 2 * margin, 1)
    t = np.arange(o, dtype=np.float32) + 0.5
    r = np.clip((t - margin) / width, 0.0, 1.0)
    if rise_start:
        w[:o] = np.minimum(w[:o], r)
    if rise_end:
        w[n - o :] = np.minimum(w[n - o :], r[::-1])
    return w


class TileBlender:
    """Accumulates weighted tile outputs into a (H, W, C) float32 canvas."""

    def __init__(self, height: int, width: int, channels: int, overlap: int):
        self.acc = np.zeros((height, width, channels), dtype=np.float32)
        self.wsum = np.zeros((height, width), dtype=np.float32)
        self.overlap = overlap

    def add(self, tile: Tile, out: np.ndarray) -> None:
        """Add one tile's output, (h, w, C) float, at its place."""
        wy = ramp(tile.h, self.overlap, not tile.first_row, not tile.last_row)
        wx = ramp(tile.w, self.overlap, not tile.first_col, not tile.last_col)
        w = wy[:, None] * wx[None, :]
        ys, xs = tile.slices
        self.acc[ys, xs] += out * w[..., None]
        self.wsum[ys, xs] += w

    def result(self) -> np.ndarray:
        if (self.wsum <= 0).any():
            raise RuntimeError("tiling left pixels without weight (tile/overlap combination too small)")
        return self.acc / self.wsum[..., None]


def iter_chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
