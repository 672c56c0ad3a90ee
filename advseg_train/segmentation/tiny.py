"""A tiny random frozen convnet segmenter for fast tests of the training code."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import coco_panoptic
from .base import Segmenter, map_dtype, probabilities


class TinySegmenter(Segmenter):
    """Small seeded random convnet producing C class probabilities at any input size.

    With the default ``num_classes=133`` the classes are the COCO-panoptic ones (80 things +
    53 stuff), so the maps use the official 3- and 135-channel layouts. Any other
    ``num_classes`` gets generic names, the first ``num_things`` of them things (default half).
    Weights come from a private ``torch.Generator`` seeded with ``seed``: building one does not
    touch the global RNG, and the same seed always gives the same network.
    """

    def __init__(
        self,
        num_classes: int = 133,
        num_things: int | None = None,
        width: int = 16,
        seed: int = 0,
        sharpness: float = 4.0,
    ) -> None:
        if num_classes == len(coco_panoptic.CLASS_NAMES) and num_things in (None, 80):
            names = list(coco_panoptic.CLASS_NAMES)
            things = list(coco_panoptic.IS_THING)
        else:
            if num_classes < 2:
                raise ValueError(f"tiny segmenter needs num_classes >= 2, got {num_classes}")
            n_th = num_classes // 2 if num_things is None else int(num_things)
            if not 0 <= n_th <= num_classes:
                raise ValueError(f"num_things must lie in 0..{num_classes}, got {num_things}")
            names = [f"thing_{i}" for i in range(n_th)]
            names += [f"stuff_{i}" for i in range(num_classes - n_th)]
            things = [True] * n_th + [False] * (num_classes - n_th)
        super().__init__(name="tiny", class_names=names, is_thing=things)
        with torch.random.fork_rng(devices=[]):  # nn.Conv2d's default init uses the global RNG
            self.conv1 = nn.Conv2d(3, width, 3, padding=1)
            self.conv2 = nn.Conv2d(width, width, 3, stride=2, padding=1)
            self.conv3 = nn.Conv2d(width, width, 3, padding=1)
            self.head = nn.Conv2d(2 * width, num_classes, 1)
        self.sharpness = float(sharpness)
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for conv in (self.conv1, self.conv2, self.conv3, self.head):
                fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) / math.sqrt(fan_in))
                assert conv.bias is not None
                conv.bias.copy_(0.1 * torch.randn(conv.bias.shape, generator=gen))
        self.freeze()

    def _probs(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        f1 = torch.tanh(self.conv1(x))
        f2 = torch.tanh(self.conv3(torch.tanh(self.conv2(f1))))
        f2 = F.interpolate(f2, size=(h, w), mode="bilinear", align_corners=False)
        logits = self.head(torch.cat([f1, f2], dim=1))
        return probabilities(self.sharpness * logits.to(map_dtype(x)), "softmax", dtype=map_dtype(x))
