"""Colour hints drawn from the real photo during training, as a user would place them.

Following Zhang et al. 2017 ("Real-Time User-Guided Image Colorization"): a random number of
hints (none at all in a fixed share of samples, so the same generator is the automatic
colouriser), each a small square or a short stroke filled with the photo's mean colour over
it. With ``p_region`` a hint is instead a whole enclosed region of the sketch (or, in a region
over half the image, a disc around a point of it) in the photo's mean colour there: what the SDK
sends when it spreads a user's dot over its region (:mod:`advseg_sdk.hint_spread`), so the
generator learns to paint a region hint without repainting the rest.

The result is the generator's extra input: 4 channels, hint RGB in [-1, 1] times the mask, then
the mask, exactly what the SDK renders from a user's points or scribble.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["HintSampler", "HINT_CHANNELS"]

HINT_CHANNELS = 4


@dataclass(frozen=True)
class HintSampler:
    """Draws hints for one (3, H, W) photo in [-1, 1] with a given numpy generator.

    ``p_none``: share of samples without hints. Otherwise the count is geometric with mean
    ``mean_count`` (capped at ``max_count``); each hint is, with probability ``p_region`` (when the
    sketch is given), an enclosed region of it, else a square of side 3–7 px or, with probability
    ``p_stroke``, a 3-px-wide stroke of 6–24 px."""

    p_none: float = 0.5
    mean_count: float = 8.0
    max_count: int = 40
    p_stroke: float = 0.3
    p_region: float = 0.0

    def __call__(
        self, photo: torch.Tensor, rng: np.random.Generator, sketch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Hints for ``photo``; ``sketch`` ((C, H, W) in [-1, 1], dark lines) enables region hints."""
        _, h, w = photo.shape
        hints = torch.zeros(HINT_CHANNELS, h, w)
        if rng.random() < self.p_none:
            return hints
        count = min(self.max_count, int(rng.geometric(1.0 / self.mean_count)))
        regions = _Regions(sketch) if sketch is not None and self.p_region > 0 else None
        for _ in range(count):
            if regions is not None and rng.random() < self.p_region:
                mask = regions.sample(rng)
            elif rng.random() < self.p_stroke:
                mask = self._stroke(rng, h, w)
            else:
                mask = self._square(rng, h, w)
            if not mask.any():
                continue
            m = torch.from_numpy(mask)
            colour = photo[:, m].mean(dim=1)
            hints[:3, m] = colour[:, None]
            hints[3, m] = 1.0
        return hints

    @staticmethod
    def _square(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        side = int(rng.integers(3, 8))
        y, x = int(rng.integers(0, max(1, h - side + 1))), int(rng.integers(0, max(1, w - side + 1)))
        mask = np.zeros((h, w), dtype=bool)
        mask[y : y + side, x : x + side] = True
        return mask

    @staticmethod
    def _stroke(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        """A gently curving 3-px-wide path."""
        length = int(rng.integers(6, 25))
        y, x = float(rng.integers(0, h)), float(rng.integers(0, w))
        angle = float(rng.uniform(0, 2 * np.pi))
        mask = np.zeros((h, w), dtype=bool)
        for _ in range(length):
            yi, xi = int(round(y)), int(round(x))
            mask[max(0, yi - 1) : yi + 2, max(0, xi - 1) : xi + 2] = True
            angle += float(rng.normal(0, 0.25))
            y = min(h - 1.0, max(0.0, y + np.sin(angle)))
            x = min(w - 1.0, max(0.0, x + np.cos(angle)))
        return mask


class _Regions:
    """The enclosed regions of one training sketch, as the SDK finds them for spreading hints."""

    def __init__(self, sketch: torch.Tensor):
        from advseg_sdk.hint_spread import line_regions

        grey = ((sketch.float().mean(0) + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
        self.labels, _ = line_regions(grey)
        self.areas = np.bincount(self.labels.ravel())
        self.free = np.flatnonzero(self.labels.ravel() > 0)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A random region (chosen by a random pixel off the lines); in a region over half the
        image, the disc of radius short side / 10 around that pixel, within the region."""
        h, w = self.labels.shape
        if self.free.size == 0:
            return np.zeros((h, w), dtype=bool)
        flat = int(self.free[int(rng.integers(0, self.free.size))])
        y, x, region = flat // w, flat % w, self.labels.flat[flat]
        mask = self.labels == region
        if self.areas[region] > 0.5 * h * w:
            yy, xx = np.ogrid[:h, :w]
            mask &= (yy - y) ** 2 + (xx - x) ** 2 <= max(4, min(h, w) // 10) ** 2
        return mask
