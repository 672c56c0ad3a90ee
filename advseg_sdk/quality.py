"""PSNR: the one definition that evaluation, export parity checks and benchmarks share."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["psnr"]


def psnr(reference: np.ndarray, candidate: np.ndarray, value_range: Sequence[float] = (0.0, 255.0)) -> float:
    """PSNR in dB of ``candidate`` against ``reference``, both holding values in ``value_range``.

    The range is mapped to 0..255 first, so a figure means the same for [-1, 1] network outputs
    and uint8 images; identical inputs give ``inf``.
    """
    lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        raise ValueError(f"value_range must be (lo, hi) with lo < hi, got {tuple(value_range)}")
    ref = np.asarray(reference, np.float64)
    cand = np.asarray(candidate, np.float64)
    if ref.shape != cand.shape:
        raise ValueError(f"PSNR needs equal shapes, got {ref.shape} and {cand.shape}")
    diff = (cand - ref) * (255.0 / (hi - lo))
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0.0 else 10.0 * math.log10(255.0**2 / mse)
