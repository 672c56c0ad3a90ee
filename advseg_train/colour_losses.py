"""Generator losses that keep colour: a feature (perceptual) loss and a chroma-weighted ab loss.

L1 in RGB rewards the mean of all plausible colours, which for an ambiguous region is a
desaturated brown-grey. Two terms push back:

* :class:`PerceptualLoss` compares frozen ImageNet EfficientNet-Lite0 features of the generated
  and real images (strides 4, 8 and 16). It is not the network the colour figures are judged
  with (that is FID's Inception-v3).
* :func:`chroma_loss` is an L1 on CIELAB a*b* weighted up where the real colour is saturated, the
  regression form of Zhang et al. 2016's class rebalancing: rare, vivid colours count more than
  the common greys, so predicting grey everywhere stops being the cheap answer.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .effnet_unet import EfficientNetLite0Encoder, load_lite0_weights

__all__ = ["rgb_to_lab", "chroma_loss", "PerceptualLoss"]

# sRGB D65 -> XYZ, and the D65 white point
_RGB_TO_XYZ = torch.tensor(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_WHITE = torch.tensor([0.950456, 1.0, 1.088754])


def rgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [-1, 1] -> CIELAB (L in [0, 100], a* and b* about [-110, 110]); differentiable."""
    rgb = ((x.float() + 1) / 2).clamp(0, 1)
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055).clamp_min(1e-8) ** 2.4, rgb / 12.92)
    xyz = torch.einsum("ij,njhw->nihw", _RGB_TO_XYZ.to(x.device), linear) / _WHITE.to(x.device)[None, :, None, None]
    eps = 216 / 24389
    f = torch.where(xyz > eps, xyz.clamp_min(1e-8) ** (1 / 3), (24389 / 27 * xyz + 16) / 116)
    L = 116 * f[:, 1] - 16
    a = 500 * (f[:, 0] - f[:, 1])
    b = 200 * (f[:, 1] - f[:, 2])
    return torch.stack([L, a, b], dim=1)


def chroma_loss(fake: torch.Tensor, real: torch.Tensor, saturation_weight: float = 1.0 / 20.0) -> torch.Tensor:
    """Mean |ab(fake) - ab(real)| / 100, each pixel weighted by ``1 + C*(real) · saturation_weight``
    (C* the real chroma: 0 for grey, ~60 for a strong green), the weights normalised to mean 1."""
    lab_f, lab_r = rgb_to_lab(fake), rgb_to_lab(real)
    ab_r = lab_r[:, 1:]
    weight = 1 + ab_r.detach().norm(dim=1, keepdim=True) * saturation_weight
    weight = weight / weight.mean()
    return (weight * (lab_f[:, 1:] - ab_r).abs()).mean() / 100.0


class PerceptualLoss(nn.Module):
    """L1 between frozen EfficientNet-Lite0 features of two images in [-1, 1], each level
    divided by the real features' mean magnitude so the levels count alike."""

    def __init__(self, weights: str | Path) -> None:
        super().__init__()
        self.encoder = EfficientNetLite0Encoder(3)
        load_lite0_weights(self.encoder, weights)
        self.encoder.eval()
        for p in self.encoder.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.encoder.eval()  # frozen statistics, always
        return self

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        feats_f = self.encoder(fake)[1:4]
        with torch.no_grad():
            feats_r = self.encoder(real)[1:4]
        total = fake.new_zeros(())
        for f, r in zip(feats_f, feats_r, strict=True):
            total = total + F.l1_loss(f.float(), r.float()) / (r.float().abs().mean() + 1e-6)
        return total / len(feats_r)
