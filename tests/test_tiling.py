"""Tile grids: cover the image, keep the overlap, and (fit=True) waste less on overlap."""

from __future__ import annotations

import numpy as np
import pytest

from advseg_sdk.tiling import fitted_tile, tile_grid, tile_starts


@pytest.mark.parametrize("length", [256, 300, 513, 1000, 1536, 2048, 4000])
@pytest.mark.parametrize("align", [1, 4])
def test_fitted_tiles_cover_with_same_count_and_overlap(length: int, align: int):
    length = -(-length // align) * align  # the Colorizer pads to the alignment first
    tile, overlap = 512, 32
    fitted = fitted_tile(length, tile, overlap, align)
    assert fitted <= min(tile, length) and fitted % align == 0 or fitted == length
    starts = tile_starts(length, fitted, overlap, align)
    assert len(starts) == len(tile_starts(length, tile, overlap, align))
    assert starts[0] == 0 and starts[-1] + fitted == length
    assert all(s % align == 0 for s in starts)
    assert all(b - a <= fitted - overlap for a, b in zip(starts, starts[1:]))  # neighbours overlap >= 32
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + fitted] = True
    assert covered.all()


def test_fit_computes_fewer_pixels_on_large_images():
    fixed = tile_grid(1536, 1536, 512, 32, 4)
    fitted = tile_grid(1536, 1536, 512, 32, 4, fit=True)
    assert len(fitted) == len(fixed) == 16
    assert {(t.h, t.w) for t in fitted} == {(408, 408)}
    area = lambda grid: sum(t.h * t.w for t in grid)  # noqa: E731
    assert area(fitted) / area(fixed) == pytest.approx(0.635, abs=1e-3)


def test_rectangular_images_fit_each_axis():
    grid = tile_grid(600, 1536, 512, 32, 1, fit=True)
    assert {(t.h, t.w) for t in grid} == {(316, 408)}
    assert len(grid) == 2 * 4
