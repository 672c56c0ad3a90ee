"""Generator and discriminator networks of the CycleGAN / pix2pix / AdvSegLoss family.

Written from the architecture descriptions (``docs/official-behaviour.md`` §1–2): they compute the
same functions as the official modules, in the stock pytorch-CycleGAN-and-pix2pix state-dict key
layout (flat ``model.<i>`` ResnetGenerator, nested ``model.model.<i>`` UnetGenerator, ``model.<i>``
PatchGAN, ``net.<i>`` PixelGAN). Norm positions always hold a module (``nn.Identity`` for
``none``), so key indices never depend on the norm. Dropout masks are drawn in the official order,
so under the same RNG state train-mode outputs equal the official ones.

Norms: ``instance`` = ``InstanceNorm2d(affine=False, track_running_stats=False)``; ``batch`` =
``BatchNorm2d(affine=True)``; ``none`` = identity. Convolutions that feed a norm carry a bias
unless the norm is ``batch`` (the official rule). Architectures are named in
:mod:`advseg_train.archs`; :mod:`advseg_train.checkpoint_formats` reads official ``.pth`` files and ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from .archs import DISCRIMINATOR_ARCHS, GENERATOR_ARCHS, INIT_TYPES, NORMS, DiscriminatorConfig, GeneratorConfig
from .checkpoint_formats import (
    CheckpointError,
    discriminator_state_and_config,
    generator_state_and_config,
    load_checked,
    save_discriminator,
    save_generator,
)
from .effnet_unet import EffnetUnetGenerator, load_lite0_weights
from .norms import make_norm

__all__ = [
    "GENERATOR_ARCHS",
    "DISCRIMINATOR_ARCHS",
    "NORMS",
    "INIT_TYPES",
    "GeneratorConfig",
    "DiscriminatorConfig",
    "Generator",
    "Discriminator",
    "ResnetBlock",
    "ResnetGenerator",
    "UnetSkipBlock",
    "UnetGenerator",
    "NLayerDiscriminator",
    "PixelDiscriminator",
    "make_norm",
    "build_generator",
    "build_discriminator",
    "init_weights",
    "count_parameters",
    "set_dropout",
    "load_generator",
    "load_pretrained_encoder",
    "EffnetGenerator",
    "load_discriminator",
    "save_generator",
    "save_discriminator",
    "CheckpointError",
]

# --------------------------------------------------------------------------- building blocks


def _conv_bias(norm: str) -> bool:
    """Convs feeding a norm have a bias unless BatchNorm (which has its own shift) follows."""
    return norm != "batch"


def _padded_conv(c_in: int, c_out: int, kernel: int, norm: str) -> list[nn.Module]:
    """Reflection padding, a stride-1 conv that keeps the size, and its norm."""
    return [
        nn.ReflectionPad2d(kernel // 2),
        nn.Conv2d(c_in, c_out, kernel_size=kernel, bias=_conv_bias(norm)),
        make_norm(norm, c_out),
    ]


class ResnetBlock(nn.Module):
    """``x + [pad, conv3, norm, ReLU, (Dropout), pad, conv3, norm](x)`` with reflect padding."""

    def __init__(self, dim: int, norm: str, use_dropout: bool):
        super().__init__()
        layers = [*_padded_conv(dim, dim, 3, norm), nn.ReLU(inplace=True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += _padded_conv(dim, dim, 3, norm)
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class Generator(nn.Module):
    """Base of the generators: ``config`` is set by :func:`build_generator`, ``source_layout`` (the
    key layout the weights were read in) by :func:`load_generator`."""

    config: GeneratorConfig
    source_layout: str


class Discriminator(nn.Module):
    """Base of the discriminators (``config``, ``source_layout`` as :class:`Generator`)."""

    config: DiscriminatorConfig
    source_layout: str


class ResnetGenerator(Generator):
    """Johnson-style ResNet generator (CycleGAN's G): 7×7 stem, two stride-2 convs, n residual
    blocks, two transposed convs, 7×7 head, tanh. Fully convolutional; H and W multiples of 4.

    Keys for n blocks: stem convs ``model.1/4/7``, blocks ``model.10 … model.(9+n)``
    (``conv_block.1`` and ``conv_block.5``, or ``conv_block.6`` with dropout), transposed convs
    ``model.(10+n)`` / ``model.(13+n)``, head ``model.(17+n)``; each norm follows its conv.
    AdvSegLoss's class also computes an unused ``model_fc_prep``/``model_fc`` branch on every
    forward and throws the result away; this one does not build it."""

    n_downsampling = 2

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        input_nc, output_nc, ngf, norm = cfg.in_channels, cfg.output_nc, cfg.ngf, cfg.norm
        bias = _conv_bias(norm)
        layers = [*_padded_conv(input_nc, ngf, 7, norm), nn.ReLU(inplace=True)]
        channels = ngf
        for _ in range(self.n_downsampling):
            layers += [
                nn.Conv2d(channels, channels * 2, kernel_size=3, stride=2, padding=1, bias=bias),
                make_norm(norm, channels * 2),
                nn.ReLU(inplace=True),
            ]
            channels *= 2
        layers += [ResnetBlock(channels, norm, cfg.use_dropout) for _ in range(cfg.n_blocks or 0)]
        for _ in range(self.n_downsampling):
            layers += [
                nn.ConvTranspose2d(
                    channels,
                    channels // 2,
                    kernel_size=3,
                    stride=2,
                    padding=1,
                    output_padding=1,
                    bias=bias,
                ),
                make_norm(norm, channels // 2),
                nn.ReLU(inplace=True),
            ]
            channels //= 2
        layers += [
            nn.ReflectionPad2d(3),
            nn.Conv2d(channels, output_nc, kernel_size=7),
            nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UnetSkipBlock(nn.Module):
    """One U-Net level: ``cat([x, up(sub(down(x)))])``; the outermost level returns no skip."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        norm: str,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        use_dropout: bool = False,
    ):
        super().__init__()
        self.outermost = outermost
        innermost = submodule is None
        bias = _conv_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        down_conv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        up_in = inner_nc if innermost else inner_nc * 2
        layers: list[nn.Module]
        if outermost:
            if submodule is None:
                raise ValueError("the outermost U-Net level needs a submodule")
            up_conv = nn.ConvTranspose2d(up_in, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [down_conv, submodule, nn.ReLU(inplace=True), up_conv, nn.Tanh()]
        elif submodule is None:
            up_conv = nn.ConvTranspose2d(up_in, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2), down_conv, nn.ReLU(inplace=True), up_conv, make_norm(norm, outer_nc)]
        else:
            up_conv = nn.ConvTranspose2d(up_in, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [
                nn.LeakyReLU(0.2),
                down_conv,
                make_norm(norm, inner_nc),
                submodule,
                nn.ReLU(inplace=True),
                up_conv,
                make_norm(norm, outer_nc),
            ]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], dim=1)


class UnetGenerator(Generator):
    """pix2pix U-Net: ``num_downs`` stride-2 levels (7 → 128², 8 → 256² inputs; more generally
    multiples of ``2**num_downs``). Dropout(0.5), if enabled, sits in the ``num_downs - 5`` inner
    ngf·8 blocks."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        ngf, norm = cfg.ngf, cfg.norm
        self.num_downs = num_downs = cfg.num_downs or 0
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5, got {num_downs}")
        block = UnetSkipBlock(ngf * 8, ngf * 8, norm)  # innermost
        for _ in range(num_downs - 5):
            block = UnetSkipBlock(ngf * 8, ngf * 8, norm, submodule=block, use_dropout=cfg.use_dropout)
        block = UnetSkipBlock(ngf * 4, ngf * 8, norm, submodule=block)
        block = UnetSkipBlock(ngf * 2, ngf * 4, norm, submodule=block)
        block = UnetSkipBlock(ngf, ngf * 2, norm, submodule=block)
        self.model = UnetSkipBlock(cfg.output_nc, ngf, norm, input_nc=cfg.in_channels, submodule=block, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        multiple = 2**self.num_downs
        if x.shape[-1] % multiple or x.shape[-2] % multiple:
            raise ValueError(
                f"UnetGenerator with {self.num_downs} down-samplings needs height and width that "
                f"are multiples of {multiple}, got {tuple(x.shape[-2:])}"
            )
        return self.model(x)


class EffnetGenerator(EffnetUnetGenerator, Generator):
    """The ``effnet_unet`` generator (:mod:`advseg_train.effnet_unet`). The official init draws
    only its decoder; the encoder keeps PyTorch's defaults until :func:`load_pretrained_encoder`."""


_GENERATOR_CLASSES: dict[str, type[Generator]] = {
    "resnet": ResnetGenerator,
    "unet": UnetGenerator,
    "effnet_unet": EffnetGenerator,
}


class NLayerDiscriminator(Discriminator):
    """PatchGAN: n stride-2/1 4×4 convs; 70×70 receptive field for n_layers=3."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        input_nc, ndf, n_layers, norm = cfg.input_nc, cfg.ndf, cfg.effective_n_layers, cfg.norm
        bias = _conv_bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=stride, padding=1, bias=bias),
                make_norm(norm, ndf * mult),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1))
        if cfg.use_sigmoid:
            layers.append(nn.Sigmoid())
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(Discriminator):
    """1×1 PixelGAN discriminator: judges each pixel independently."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        input_nc, ndf, norm = cfg.input_nc, cfg.ndf, cfg.norm
        bias = _conv_bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1, bias=bias),
            make_norm(norm, ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, kernel_size=1, bias=bias),
        ]
        if cfg.use_sigmoid:
            layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --------------------------------------------------------------------------- init and factories


def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02) -> nn.Module:
    """The official init: conv/linear weights from ``init_type`` (normal: N(0, gain)), biases 0;
    BatchNorm weights N(1, gain), biases 0. Modules are visited in ``nn.Module.apply`` order."""
    if init_type not in INIT_TYPES:
        raise ValueError(f"init_type={init_type!r} is not supported; choose one of {list(INIT_TYPES)}")

    def init_module(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    with torch.no_grad():
        net.apply(init_module)
    return net


_Config = TypeVar("_Config", GeneratorConfig, DiscriminatorConfig)


def _as_config(cfg: Any, cls: type[_Config]) -> _Config:
    if isinstance(cfg, cls):
        return cfg
    if isinstance(cfg, Mapping):
        return cls.from_dict(cfg)
    raise TypeError(f"expected {cls.__name__} or a dict, got {type(cfg).__name__}")


def build_generator(
    cfg: GeneratorConfig | Mapping[str, Any],
    init_type: str | None = "normal",
    init_gain: float = 0.02,
) -> Generator:
    """Build the generator described by ``cfg`` and apply the official init
    (``init_type=None`` skips it, e.g. before loading weights). The module gets ``.config``."""
    config = _as_config(cfg, GeneratorConfig)
    net: Generator = _GENERATOR_CLASSES[config.kind](config)
    if init_type is not None:
        for part in net.decoder_modules() if isinstance(net, EffnetGenerator) else [net]:
            init_weights(part, init_type, init_gain)
    net.config = config
    return net


def load_pretrained_encoder(net: Generator, weights: str | Path) -> list[str]:
    """Load the ImageNet weights of ``net``'s encoder (for architectures that have one: see
    ``GeneratorArch.pretrained_encoder``); returns the file's unused keys."""
    if not isinstance(net, EffnetGenerator):
        raise ValueError(f"generator {net.config.arch!r} has no pretrained encoder")
    return load_lite0_weights(net.encoder, weights)


def build_discriminator(
    cfg: DiscriminatorConfig | Mapping[str, Any],
    init_type: str | None = "normal",
    init_gain: float = 0.02,
) -> Discriminator:
    """Build the discriminator described by ``cfg`` (official init unless ``init_type=None``)."""
    config = _as_config(cfg, DiscriminatorConfig)
    net: Discriminator = PixelDiscriminator(config) if config.arch == "pixel" else NLayerDiscriminator(config)
    if init_type is not None:
        init_weights(net, init_type, init_gain)
    net.config = config
    return net


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def set_dropout(net: nn.Module, active: bool) -> nn.Module:
    """Switch every ``nn.Dropout`` to train (``active``) or eval mode, leaving the rest alone.
    ``net.train(); set_dropout(net, False)`` is the fixtures' ``trainbn_nodropout`` mode."""
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.train(active)
    return net


# --------------------------------------------------------------------------- loading
# The formats live in advseg_train.checkpoint_formats (which also writes our files: save_generator,
# save_discriminator, re-exported here); these build the module and load the weights into it.


def load_generator(source: Any, *, key: str | None = None, **overrides: Any) -> Generator:
    """Load a generator from our safetensors, a stock pytorch-CycleGAN-and-pix2pix ``.pth``, an
    AdvSegLoss ``.pth``, a training checkpoint dict, or a state dict. The architecture is inferred
    where the weights tell it; ``overrides`` (GeneratorConfig fields) fix the rest. Returns the
    module in eval mode with ``.config`` and ``.source_layout`` (the key layout that was read).
    Raises :class:`CheckpointError` (a ValueError) on a mismatch, naming keys and shapes."""
    cfg, sd, layout = generator_state_and_config(source, key=key, **overrides)
    net = build_generator(cfg, init_type=None)
    net.source_layout = layout
    return load_checked(net, sd, source, layout)


def load_discriminator(source: Any, *, key: str | None = None, **overrides: Any) -> Discriminator:
    """Like :func:`load_generator` for discriminators (``use_sigmoid`` is not in the weights:
    pass it as an override; default False)."""
    cfg, sd, layout = discriminator_state_and_config(source, key=key, **overrides)
    net = build_discriminator(cfg, init_type=None)
    net.source_layout = layout
    return load_checked(net, sd, source, layout)
