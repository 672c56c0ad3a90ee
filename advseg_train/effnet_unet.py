"""A sketch -> colour U-Net whose encoder is ImageNet EfficientNet-Lite0.

A generator trained from scratch on a few thousand photos cannot learn what sky, foliage or skin
look like; an encoder that has seen ImageNet already tells them apart. The decoder upsamples by
bilinear resize + 3×3 convolution (no transposed convolutions, which draw checkerboards) and
concatenates the encoder features at strides 16, 8, 4 and 2, then the input itself (sketch and
colour hints) at full resolution, so lines stay sharp and hints act where they are put.

Fully convolutional: any height and width that are multiples of 32. Symmetric padding throughout
(the TensorFlow original pads 'same'; fine-tuning absorbs the half-pixel difference) so the
graph exports to ONNX as plain convolutions. EfficientNet-Lite has no squeeze-excitation and uses
ReLU6, which keeps int8 quantisation accurate.

The encoder's parameter names follow the efficientnet-pytorch layout under ``encoder.``
(``_conv_stem``, ``_bn0``, ``_blocks.<i>.{_expand_conv,_bn0,_depthwise_conv,_bn1,_project_conv,_bn2}``),
so :func:`load_lite0_weights` copies the pretrained file key by key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .archs import GeneratorConfig
from .norms import make_norm

__all__ = ["LITE0_BLOCKS", "EfficientNetLite0Encoder", "EffnetUnetGenerator", "load_lite0_weights"]

#: (expand ratio, kernel, stride, output channels) of the 16 MBConv blocks of EfficientNet-Lite0
LITE0_BLOCKS: tuple[tuple[int, int, int, int], ...] = (
    (1, 3, 1, 16),
    (6, 3, 2, 24),
    (6, 3, 1, 24),
    (6, 5, 2, 40),
    (6, 5, 1, 40),
    (6, 3, 2, 80),
    (6, 3, 1, 80),
    (6, 3, 1, 80),
    (6, 5, 1, 112),
    (6, 5, 1, 112),
    (6, 5, 1, 112),
    (6, 5, 2, 192),
    (6, 5, 1, 192),
    (6, 5, 1, 192),
    (6, 5, 1, 192),
    (6, 3, 1, 320),
)
_STEM_CHANNELS = 32
_BN_EPS = 1e-3  # as the TensorFlow original
#: blocks whose outputs feed the decoder: strides 2, 4, 8, 16 and 32
_SKIP_BLOCKS = (0, 2, 4, 10, 15)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS)


class MBConv(nn.Module):
    """Inverted residual: 1×1 expand, k×k depthwise, 1×1 project (no squeeze-excitation)."""

    def __init__(self, c_in: int, expand: int, kernel: int, stride: int, c_out: int):
        super().__init__()
        mid = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0Encoder(nn.Module):
    """Stem and the 16 blocks of EfficientNet-Lite0 (no head, no classifier); returns the
    features at strides 2, 4, 8, 16, 32 (16, 24, 40, 112, 320 channels)."""

    skip_channels = tuple(LITE0_BLOCKS[i][3] for i in _SKIP_BLOCKS)

    def __init__(self, in_channels: int):
        super().__init__()
        self._conv_stem = nn.Conv2d(in_channels, _STEM_CHANNELS, 3, 2, 1, bias=False)
        self._bn0 = _bn(_STEM_CHANNELS)
        blocks, c = [], _STEM_CHANNELS
        for expand, kernel, stride, c_out in LITE0_BLOCKS:
            blocks.append(MBConv(c, expand, kernel, stride, c_out))
            c = c_out
        self._blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        skips = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in _SKIP_BLOCKS:
                skips.append(x)
        return skips


def _conv_act(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="reflect", bias=norm != "batch"),
        make_norm(norm, c_out),
        nn.ReLU(inplace=True),
    )


class UpBlock(nn.Module):
    """×2 bilinear resize, concatenate the skip, then 3×3 convolutions."""

    def __init__(self, c_in: int, c_skip: int, c_out: int, norm: str, convs: int = 2):
        super().__init__()
        layers = [_conv_act(c_in + c_skip, c_out, norm)]
        layers += [_conv_act(c_out, c_out, norm) for _ in range(convs - 1)]
        self.convs = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.convs(torch.cat([x, skip], dim=1))


class EffnetUnetGenerator(nn.Module):
    """EfficientNet-Lite0 encoder + resize-conv decoder; ``ngf`` sets the decoder widths
    (4·ngf, 2·ngf, 1.5·ngf, ngf at strides 16…2; ngf/2 at full resolution), ``norm`` its norms.
    Output: ``output_nc`` channels through tanh, in [-1, 1]."""

    size_multiple = 32

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        c_in, ngf, norm = cfg.in_channels, cfg.ngf, cfg.norm
        self.encoder = EfficientNetLite0Encoder(c_in)
        s2, s4, s8, s16, s32 = EfficientNetLite0Encoder.skip_channels
        widths = (4 * ngf, 2 * ngf, (3 * ngf) // 2, ngf, max(8, ngf // 2))
        self.up16 = UpBlock(s32, s16, widths[0], norm)
        self.up8 = UpBlock(widths[0], s8, widths[1], norm)
        self.up4 = UpBlock(widths[1], s4, widths[2], norm)
        self.up2 = UpBlock(widths[2], s2, widths[3], norm, convs=1)
        self.up1 = UpBlock(widths[3], c_in, widths[4], norm, convs=1)
        self.head = nn.Conv2d(widths[4], cfg.output_nc, 3, padding=1, padding_mode="reflect")

    def decoder_modules(self) -> list[nn.Module]:
        """The layers trained from scratch (everything but the encoder)."""
        return [self.up16, self.up8, self.up4, self.up2, self.up1, self.head]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.size_multiple or x.shape[-2] % self.size_multiple:
            raise ValueError(
                f"effnet_unet needs height and width that are multiples of {self.size_multiple}, "
                f"got {tuple(x.shape[-2:])}"
            )
        s2, s4, s8, s16, s32 = self.encoder(x)
        y = self.up16(s32, s16)
        y = self.up8(y, s8)
        y = self.up4(y, s4)
        y = self.up2(y, s2)
        y = self.up1(y, x)
        return torch.tanh(self.head(y))


def load_lite0_weights(encoder: EfficientNetLite0Encoder, source: str | Path | Mapping[str, torch.Tensor]) -> list[str]:
    """Copy ImageNet EfficientNet-Lite0 weights (efficientnet-pytorch key layout, loaded with
    ``weights_only=True``) into ``encoder``. The stem's RGB filters go to the first three
    input channels (a one-channel sketch gets their sum); hint channels start at zero, so an
    untrained hint input changes nothing. Returns the file's keys that were not used (the head
    and classifier). Raises ValueError naming the key on a missing or misshapen tensor."""
    sd = torch.load(source, map_location="cpu", weights_only=True) if isinstance(source, (str, Path)) else source
    own = encoder.state_dict()
    new: dict[str, torch.Tensor] = {}
    for key, target in own.items():
        if key not in sd:
            raise ValueError(f"EfficientNet-Lite0 weights: key {key!r} is missing from {source}")
        value = sd[key]
        if key == "_conv_stem.weight":
            value = _adapt_stem(value, target.shape[1])
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(
                f"EfficientNet-Lite0 weights: {key!r} has shape {tuple(value.shape)}, expected {tuple(target.shape)}"
            )
        new[key] = value.to(target.dtype)
    encoder.load_state_dict(new)
    return sorted(k for k in sd if k not in own)


def _adapt_stem(rgb: torch.Tensor, in_channels: int) -> torch.Tensor:
    """(32, 3, 3, 3) RGB stem filters -> (32, in_channels, 3, 3): sketch channels first, zeros after."""
    out = torch.zeros(rgb.shape[0], in_channels, *rgb.shape[2:], dtype=rgb.dtype)
    if in_channels == 1:
        out[:, 0] = rgb.sum(dim=1)
    else:
        n = min(3, in_channels)
        out[:, :n] = rgb[:, :n]
    return out
