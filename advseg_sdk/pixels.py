"""Pixel values <-> network values: the one linear map between 0..255 image values and a
network's value range (``[-1, 1]`` for generators, ``[0, 1]`` for HED), in float32.

>>> x = to_network_range(rgb_uint8, (-1, 1))   # 0 -> -1, 255 -> 1
>>> img = to_uint8(y, (-1, 1))                 # rounded and clipped back to uint8
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["to_network_range", "from_network_range", "to_uint8"]


def _bounds(value_range: Sequence[float]) -> tuple[float, float]:
    lo, hi = float(value_range[0]), float(value_range[1])
    if hi <= lo:
        raise ValueError(f"value range must rise, got {list(value_range)}")
    return lo, hi


def to_network_range(image: np.ndarray, value_range: Sequence[float] = (-1.0, 1.0)) -> np.ndarray:
    """Image values 0..255 (any shape and dtype) -> float32 in ``value_range``."""
    lo, hi = _bounds(value_range)
    return np.asarray(image).astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)


def from_network_range(x: np.ndarray, value_range: Sequence[float] = (-1.0, 1.0)) -> np.ndarray:
    """Network values in ``value_range`` -> float32 image values 0..255 (not rounded or clipped)."""
    lo, hi = _bounds(value_range)
    return (np.asarray(x, np.float32) - lo) * np.float32(255.0 / (hi - lo))


def to_uint8(x: np.ndarray, value_range: Sequence[float] = (-1.0, 1.0)) -> np.ndarray:
    """Network values in ``value_range`` -> uint8 image values (rounded half to even, clipped)."""
    return np.clip(np.rint(from_network_range(x, value_range)), 0, 255).astype(np.uint8)
