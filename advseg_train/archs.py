"""The architecture table: generator and discriminator names and what each one means.

Torch-free, so configuration checks, checkpoint inference and command lines can read it without
building a network. :mod:`advseg_train.networks` builds the modules these configs describe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "GeneratorArch",
    "GENERATORS",
    "GENERATOR_ARCHS",
    "DISCRIMINATOR_ARCHS",
    "NORMS",
    "INIT_TYPES",
    "HINT_CHANNEL_CHOICES",
    "generator_arch_for",
    "GeneratorConfig",
    "DiscriminatorConfig",
]


@dataclass(frozen=True)
class GeneratorArch:
    """One generator architecture: ``kind`` ``resnet`` (``depth`` residual blocks), ``unet``
    (``depth`` down-samplings, made for one size) or ``effnet_unet`` (a pretrained
    EfficientNet-Lite0 encoder with ``depth`` stride-2 levels and a resize + convolution decoder,
    fully convolutional)."""

    name: str
    kind: str
    depth: int

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return 4 if self.kind == "resnet" else 2**self.depth

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """The input size a U-Net is made for (None: any multiple of ``size_multiple``)."""
        return (2**self.depth, 2**self.depth) if self.kind == "unet" else None

    @property
    def pretrained_encoder(self) -> str | None:
        """The asset whose weights initialise the encoder (None: trained from scratch)."""
        return "efficientnet-lite0" if self.kind == "effnet_unet" else None


GENERATORS: dict[str, GeneratorArch] = {
    a.name: a
    for a in (
        GeneratorArch("resnet_9blocks", "resnet", 9),
        GeneratorArch("resnet_6blocks", "resnet", 6),
        GeneratorArch("unet_128", "unet", 7),
        GeneratorArch("unet_256", "unet", 8),
        GeneratorArch("effnet_unet", "effnet_unet", 5),
    )
}
GENERATOR_ARCHS = tuple(GENERATORS)
DISCRIMINATOR_ARCHS = ("basic", "n_layers", "pixel")
NORMS = ("instance", "batch", "none")
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")
#: colour-hint channels a generator may take: none, or hint RGB in [-1, 1] times the mask, then the mask
HINT_CHANNEL_CHOICES = (0, 4)


def generator_arch_for(kind: str, depth: int) -> str | None:
    """The architecture name with this kind and depth (e.g. ``("resnet", 9)`` -> ``resnet_9blocks``)."""
    return next((a.name for a in GENERATORS.values() if (a.kind, a.depth) == (kind, depth)), None)


# --------------------------------------------------------------------------- configs


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not supported; choose one of {list(choices)}")


_C = TypeVar("_C", bound="_ArchConfig")


class _ArchConfig:
    """Checks, dict round trip and ``replace`` shared by the two config dataclasses; what is
    checked is in :data:`_CHECKS`."""

    arch: str
    norm: str

    def __post_init__(self) -> None:
        archs, positive, flag = _CHECKS[type(self)]
        _check_choice("arch", self.arch, archs)
        _check_choice("norm", self.norm, NORMS)
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(getattr(self, flag), bool):
            raise ValueError(f"{flag} must be a bool, got {getattr(self, flag)!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_C], d: Mapping[str, Any]) -> _C:
        if not isinstance(d, Mapping):
            raise ValueError(f"{cls.__name__}.from_dict needs a mapping, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; known: {sorted(names)}")
        return cls(**dict(d))

    def replace(self: _C, **changes: Any) -> _C:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class GeneratorConfig(_ArchConfig):
    """Architecture of a generator. ``arch`` picks the family and depth."""

    arch: str = "resnet_9blocks"
    input_nc: int = 3  # input channels
    output_nc: int = 3  # output channels
    ngf: int = 64  # filters of the first conv
    norm: str = "instance"
    use_dropout: bool = False  # Dropout(0.5) in the residual blocks / inner U-Net levels
    hint_nc: int = 0  # colour-hint channels after the sketch's (0: none; 4: hint RGB x mask, mask)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hint_nc not in HINT_CHANNEL_CHOICES or isinstance(self.hint_nc, bool):
            raise ValueError(f"hint_nc must be one of {list(HINT_CHANNEL_CHOICES)}, got {self.hint_nc!r}")

    @property
    def in_channels(self) -> int:
        """Channels the first layer reads: the sketch's, then the hints'."""
        return self.input_nc + self.hint_nc

    @property
    def kind(self) -> str:
        return GENERATORS[self.arch].kind

    @property
    def is_resnet(self) -> bool:
        return self.kind == "resnet"

    @property
    def n_blocks(self) -> int | None:
        """Residual blocks of a resnet_* generator (None for U-Nets)."""
        return GENERATORS[self.arch].depth if self.is_resnet else None

    @property
    def num_downs(self) -> int | None:
        """Down-samplings of a unet_* generator (None for the others)."""
        return GENERATORS[self.arch].depth if self.kind == "unet" else None

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return GENERATORS[self.arch].size_multiple

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """The input size a U-Net is made for (None: any multiple of ``size_multiple``)."""
        return GENERATORS[self.arch].fixed_size


@dataclass(frozen=True)
class DiscriminatorConfig(_ArchConfig):
    """Architecture of a discriminator. ``basic`` always has 3 layers; ``n_layers`` uses it."""

    arch: str = "basic"
    input_nc: int = 3  # channels of the judged image (with its condition, if any)
    ndf: int = 64  # filters of the first conv
    n_layers: int = 3  # conv layers of an ``n_layers`` PatchGAN
    norm: str = "instance"
    use_sigmoid: bool = False  # end in a sigmoid (``gan_mode=vanilla``)

    @property
    def effective_n_layers(self) -> int:
        """Layers actually built: 3 for ``basic`` (as officially), ``n_layers`` otherwise."""
        return 3 if self.arch == "basic" else self.n_layers


#: per config class: the allowed ``arch`` names, the fields that must be positive ints, the bool flag
_CHECKS: dict[type, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    GeneratorConfig: (GENERATOR_ARCHS, ("input_nc", "output_nc", "ngf"), "use_dropout"),
    DiscriminatorConfig: (DISCRIMINATOR_ARCHS, ("input_nc", "ndf", "n_layers"), "use_sigmoid"),
}
