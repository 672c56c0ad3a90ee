"""Parity of an exported artefact against the PyTorch fp32 reference: max |error| and PSNR.

Convention (also written into every manifest as ``parity_convention``): outputs are mapped from
their value range ``[lo, hi]`` to ``[0, 255]`` (generators: ``[-1, 1]``, HED: ``[0, 1]``); PSNR is
``10 log10(255^2 / MSE)`` with the MSE pooled over every pixel, channel and image of the fixed
parity inputs; ``max_abs`` is the largest absolute difference in the output's own units (before
mapping). Identical outputs have an infinite PSNR, written as JSON ``null``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from advseg_sdk import quality

__all__ = [
    "PARITY_CONVENTION",
    "DEFAULT_THRESHOLDS",
    "Threshold",
    "ParityResult",
    "compare",
    "psnr",
]

PARITY_CONVENTION = (
    "reference: the PyTorch fp32 module on the same inputs (CPU). max_abs: largest |candidate - "
    "reference| in the output's own units. psnr: 10*log10(255^2/MSE) after mapping the output "
    "range [lo, hi] linearly to [0, 255], MSE pooled over all parity images; null = identical "
    "(infinite PSNR)."
)


@dataclass(frozen=True)
class Threshold:
    """What an artefact must reach: ``max_abs`` at most and/or ``min_psnr`` at least (dB)."""

    max_abs: float | None = None
    min_psnr: float | None = None

    def failures(self, result: ParityResult) -> list[str]:
        """Human-readable reasons ``result`` misses this threshold (empty when it passes)."""
        if result.nonfinite:
            return [f"{result.nonfinite} NaN/inf output values"]
        out = []
        if self.max_abs is not None and not result.max_abs <= self.max_abs:
            out.append(f"max_abs {result.max_abs:.3g} > {self.max_abs:.3g}")
        if self.min_psnr is not None and not result.psnr >= self.min_psnr:
            out.append(f"PSNR {result.psnr:.2f} dB < {self.min_psnr:.2f} dB")
        return out

    def to_dict(self) -> dict[str, float]:
        d: dict[str, float] = {}
        if self.max_abs is not None:
            d["max_abs"] = float(self.max_abs)
        if self.min_psnr is not None:
            d["min_psnr"] = float(self.min_psnr)
        return d

    @classmethod
    def from_any(cls, value: Threshold | Mapping[str, float]) -> Threshold:
        if isinstance(value, Threshold):
            return value
        unknown = set(value) - {"max_abs", "min_psnr"}
        if unknown:
            raise ValueError(f"unknown threshold key(s) {sorted(unknown)}; use max_abs and/or min_psnr")
        return cls(max_abs=value.get("max_abs"), min_psnr=value.get("min_psnr"))


#: The parity targets of an export: fp32 max|err| <= 1e-3 (an eighth of one 8-bit level on the
#: [-1, 1] output; deep BatchNorm encoders such as EfficientNet land near 3e-4 after onnxruntime's
#: fusions), fp16 >= 40 dB, int8 >= 30 dB.
DEFAULT_THRESHOLDS: dict[str, Threshold] = {
    "fp32": Threshold(max_abs=1e-3),
    "fp16": Threshold(min_psnr=40.0),
    "bf16": Threshold(min_psnr=35.0),
    "int8": Threshold(min_psnr=30.0),
}


@dataclass(frozen=True)
class ParityResult:
    """Agreement of one artefact with the reference on the parity inputs."""

    max_abs: float
    mean_abs: float
    psnr: float  # dB; math.inf when identical, -math.inf when the candidate is not finite
    nonfinite: int = 0  # NaN/inf values in the candidate's output

    def to_dict(self) -> dict[str, Any]:
        if self.nonfinite:
            return {"max_abs": None, "mean_abs": None, "psnr": None, "nonfinite": int(self.nonfinite)}
        return {
            "max_abs": float(self.max_abs),
            "mean_abs": float(self.mean_abs),
            "psnr": None if math.isinf(self.psnr) else round(float(self.psnr), 3),
        }

    def describe(self) -> str:
        if self.nonfinite:
            return f"{self.nonfinite} NaN/inf output values"
        p = "inf" if math.isinf(self.psnr) else f"{self.psnr:.2f}"
        return f"max_abs={self.max_abs:.3g}, PSNR={p} dB"


#: PSNR with network outputs' [-1, 1] range as the default (mapped to 0..255).
psnr = functools.partial(quality.psnr, value_range=(-1.0, 1.0))


def compare(reference: np.ndarray, candidate: np.ndarray, value_range: Sequence[float] = (-1.0, 1.0)) -> ParityResult:
    """Compare two output batches of the same shape (see the module docstring for the convention)."""
    ref = np.asarray(reference)
    cand = np.asarray(candidate)
    if ref.shape != cand.shape:
        raise ValueError(f"parity: output shapes differ: reference {ref.shape}, candidate {cand.shape}")
    bad = int((~np.isfinite(cand)).sum())
    if bad:
        return ParityResult(max_abs=math.inf, mean_abs=math.inf, psnr=-math.inf, nonfinite=bad)
    err = np.abs(cand.astype(np.float64) - ref.astype(np.float64))
    return ParityResult(
        max_abs=float(err.max()) if err.size else 0.0,
        mean_abs=float(err.mean()) if err.size else 0.0,
        psnr=quality.psnr(ref, cand, value_range),
    )
