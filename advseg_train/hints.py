"""Colour hints drawn from the real photo during training, as a user would place them.

Following Zhang et al. 2017 ("Real-Time User-Guided Image Colorization"): a random number of
hints (none at all in a fixed share of samples, so the same generator is the automatic
colouriser), each a small square or a short stroke filled with the photo's mean colour over
it. The result is the generator's extra input: 4 channels, hint RGB in [-1, 1] times the mask,
then the mask, exactly what the SDK renders from a user's points or scribble.
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
    ``mean_count`` (capped at ``max_count``); each hint is a square of side 3–7 px or, with
    probability ``p_stroke``, a 3-px-wide stroke of 6–24 px."""

    p_none: float = 0.5
    mean_count: float = 8.0
    max_count: int = 40
    p_stroke: float = 0.3

    def __call__(self, photo: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        _, h, w = photo.shape
        hints = torch.zeros(HINT_CHANNELS, h, w)
        if rng.random() < self.p_none:
            return hints
        count = min(self.max_count, int(rng.geometric(1.0 / self.mean_count)))
        for _ in range(count):
            mask = self._stroke(rng, h, w) if rng.random() < self.p_stroke else self._square(rng, h, w)
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
