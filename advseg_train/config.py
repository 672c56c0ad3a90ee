"""Training configuration: dataclasses, presets, YAML loading and dotted overrides.

A :class:`TrainConfig` is built in layers, later ones winning, merged through OmegaConf
structured configs (which refuse unknown keys and convert values to the annotated types)::

    defaults  ->  preset (``--preset`` or ``preset:`` in the YAML)  ->  YAML file  ->  ``--set a.b=c``

>>> cfg = resolve_config(preset="official-cyclegan", overrides=["model.ngf=8", "data.root=/data"])

The presets are described at :data:`PRESETS`.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from advseg_sdk.vocab import SKETCH_METHODS

from .archs import DISCRIMINATOR_ARCHS, GENERATOR_ARCHS, GENERATORS, HINT_CHANNEL_CHOICES, INIT_TYPES, NORMS

__all__ = [
    "ModelConfig",
    "LossConfig",
    "SegConfig",
    "DataConfig",
    "OptimConfig",
    "RunConfig",
    "DebugConfig",
    "TrainConfig",
    "ConfigError",
    "PRESETS",
    "get_preset",
    "load_yaml",
    "apply_overrides",
    "resolve_config",
    "to_dict",
    "from_dict",
    "dump_yaml",
]


class ConfigError(ValueError):
    """A configuration key, value or combination is invalid; the message names it."""


# --------------------------------------------------------------------------- sections


@dataclass
class ModelConfig:
    """Which GAN and which networks (official names, §1 of official-behaviour.md)."""

    kind: str = "cycle_gan"  # "cycle_gan" (unpaired) | "pix2pix" (paired)
    netG: str = "resnet_9blocks"
    ngf: int = 64
    norm: str = "instance"  # norm of G and every D
    use_dropout: bool = False
    netD: str = "basic"
    ndf: int = 64
    n_layers_D: int = 3
    gan_mode: str = "lsgan"  # "lsgan" (MSE, no sigmoid) | "vanilla" (D ends in sigmoid, BCE)
    init_type: str = "normal"
    init_gain: float = 0.02
    input_nc: int = 3
    output_nc: int = 3
    hint_nc: int = 0  # Pix2Pix: 4 = G also takes colour hints drawn from the photo (0 hints = automatic)
    pretrained_encoder: bool = True  # effnet_unet: start the encoder from ImageNet weights (asset)


@dataclass
class LossConfig:
    """Baseline loss weights and the discriminators' image pool."""

    lambda_A: float = 10.0  # CycleGAN cycle A->B->A
    lambda_B: float = 10.0  # CycleGAN cycle B->A->B
    lambda_identity: float = 0.5  # CycleGAN identity, relative to lambda_A / lambda_B
    lambda_L1: float = 100.0  # Pix2Pix
    lambda_perceptual: float = 0.0  # Pix2Pix: frozen EfficientNet-Lite0 feature L1 (colour_losses)
    lambda_chroma: float = 0.0  # Pix2Pix: chroma-weighted CIELAB a*b* L1 (colour_losses)
    pool_size: int = 50  # 0: pass-through (Pix2Pix)


@dataclass
class SegConfig:
    """The adversarial segmentation loss: G loss = wg·LG + lambda_seg·(wb·LB + wm·LM)."""

    variant: str = "none"  # "none" | "binary" (D_B) | "multi" (D_M) | "both"
    grad: str = "soft"  # "soft": differentiable maps (G gets the gradient) | "hard": official
    segmenter: str = "tiny"  # advseg_train.segmentation.build_segmenter name
    segmenter_kwargs: dict = field(default_factory=dict)
    lambda_seg: float = 10.0  # official λ_Seg (10 CycleGAN, 100 Pix2Pix)
    wg: float = 1.0
    wb: float = 1.0
    wm: float = 1.0


@dataclass
class DataConfig:
    """Where the images are and how they are augmented (official: resize 286, crop 256, flip)."""

    mode: str = "unaligned"  # "unaligned" (trainA/trainB) | "aligned" (AB or A/B) | "photos"
    root: str | None = None  # "photos" mode: None = the cached real photos (advseg assets)
    dataset: str | None = None  # "photos" mode: named datasets (advseg data), comma-separated; split = phase
    phase: str = "train"
    load_size: int = 286
    crop_size: int = 256
    preprocess: str = "resize_and_crop"  # | "resize" (to crop_size) | "crop" | "none"
    # | "scale_shortside_and_crop" (short side to load_size, aspect kept: the scale the SDK colours at)
    flip: bool = True
    serial_batches: bool = False  # unaligned: B index follows A instead of being random
    sketch_method: str = "hed"  # photos mode: "hed" | "xdog" | "canny"
    # photos mode with sketch_method=hed: styles drawn per item from the HED lines (sketch_styles.py),
    # e.g. "hed,hed_thick,hed_outline,hed_gaps,xdog"; None: the HED lines only
    sketch_styles: str | None = None
    hint_p_none: float = 0.5  # with model.hint_nc: share of items trained without any hint
    hint_p_region: float = 0.0  # share of hints that fill a whole enclosed region of the sketch
    sketch_cache: str | None = None  # photos mode: None = <advseg_home>/sketch_cache
    max_items: int | None = None
    num_workers: int | None = None  # loader processes; None: 0 on CPU, up to 8 on CUDA


@dataclass
class OptimConfig:
    """Adam and the linear-decay schedule (stepped once per epoch, as officially)."""

    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    niter: int = 100  # epochs at the initial lr
    niter_decay: int = 100  # epochs of linear decay
    epoch_count: int = 1  # official --epoch_count (first epoch number)
    lr_policy: str = "linear"  # "linear" (official lambda rule) | "constant"


@dataclass
class RunConfig:
    """Trainer settings: device, precision, checkpoints, logging."""

    out: str = "runs/advseg"
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    amp: str = "off"  # "off" | "bf16" (CUDA, or CPUs with bf16 units) | "fp16" (CUDA only; a GradScaler)
    channels_last: bool = False
    compile: bool = False  # torch.compile the generators (the discriminators stay eager)
    cudnn_benchmark: bool = True  # CUDA: cuDNN picks the fastest convolution algorithm per shape
    batch_size: int = 1
    seed: int = 0
    threads: int | None = None  # torch CPU threads (None: torch's default)
    max_steps: int | None = None  # stop after this many global steps (None: all epochs)
    max_seconds: float | None = None  # stop at the first step after this many seconds of training
    checkpoint_every: int = 5000  # iterations between latest.pt writes (0: only epoch ends)
    save_epoch_freq: int = 5  # also keep epoch_NNNN.pt every this many epochs (0: never)
    log_every: int = 100  # TensorBoard scalars every N steps
    sample_every: int = 1000  # sample grid PNG every N steps (0: only at the end)
    num_samples: int = 4
    progress: bool = True
    resume: bool = False
    # start a new run from the networks of another run's checkpoint (e.g. fine-tune a run trained
    # without the segmentation loss with it): networks present in both are loaded, optimisers and
    # schedule start fresh; ignored when resuming
    init_from: str | None = None


@dataclass
class DebugConfig:
    """Fault injection for tests: real code paths, triggered on purpose."""

    inject_nan_step: int | None = None  # multiply this step's input batch by NaN
    save_sleep_s: float = 0.0  # sleep half-way through writing each checkpoint file


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    seg: SegConfig = field(default_factory=SegConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)
    preset: str | None = None

    @property
    def epochs(self) -> int:
        return self.optim.niter + self.optim.niter_decay

    def validate(self) -> TrainConfig:
        """Check choices and combinations; raise :class:`ConfigError` naming the key."""
        _validate(self)
        return self


_CHOICES: dict[str, tuple[Any, ...]] = {
    "model.kind": ("cycle_gan", "pix2pix"),
    "model.netG": GENERATOR_ARCHS,
    "model.norm": NORMS,
    "model.netD": DISCRIMINATOR_ARCHS,
    "model.gan_mode": ("lsgan", "vanilla"),
    "model.init_type": INIT_TYPES,
    "seg.variant": ("none", "binary", "multi", "both"),
    "seg.grad": ("soft", "hard"),
    "data.mode": ("unaligned", "aligned", "photos"),
    "data.preprocess": ("resize_and_crop", "resize", "crop", "none", "scale_shortside_and_crop"),
    "data.sketch_method": SKETCH_METHODS,
    "optim.lr_policy": ("linear", "constant"),
    "run.amp": ("off", "bf16", "fp16"),
}


def _validate(cfg: TrainConfig) -> None:
    for key, choices in _CHOICES.items():
        value = _get(cfg, key)
        if value not in choices:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(map(str, choices))}")
    positive = [
        "model.ngf",
        "model.ndf",
        "model.n_layers_D",
        "model.input_nc",
        "model.output_nc",
        "data.load_size",
        "data.crop_size",
        "run.batch_size",
        "run.num_samples",
    ]
    for key in positive:
        if _get(cfg, key) <= 0:
            raise ConfigError(f"{key} must be > 0, got {_get(cfg, key)}")
    nonneg = [
        "loss.pool_size",
        "optim.niter",
        "optim.niter_decay",
        "run.checkpoint_every",
        "run.save_epoch_freq",
        "run.log_every",
        "run.sample_every",
        "data.num_workers",
        "debug.save_sleep_s",
        "seg.lambda_seg",
        "seg.wg",
        "seg.wb",
        "seg.wm",
        "loss.lambda_A",
        "loss.lambda_B",
        "loss.lambda_identity",
        "loss.lambda_L1",
        "loss.lambda_perceptual",
        "loss.lambda_chroma",
    ]
    for key in nonneg:
        if _get(cfg, key) is not None and _get(cfg, key) < 0:
            raise ConfigError(f"{key} must be >= 0, got {_get(cfg, key)}")
    dev = cfg.run.device
    if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise ConfigError(f"run.device={dev!r} is not one of auto, cpu, cuda, cuda:N")
    if cfg.epochs <= 0:
        raise ConfigError("optim.niter + optim.niter_decay must be at least 1 epoch")
    if cfg.optim.lr <= 0:
        raise ConfigError(f"optim.lr must be > 0, got {cfg.optim.lr}")
    d = cfg.data
    if d.dataset is not None:
        from advseg_sdk.datasets import DATASETS

        unknown = [n for n in d.dataset.split(",") if n.strip() not in DATASETS]
        if unknown:
            raise ConfigError(f"data.dataset: unknown dataset(s) {', '.join(unknown)}; known: {', '.join(DATASETS)}")
        if d.mode != "photos":
            raise ConfigError("data.dataset needs data.mode=photos (sketches are made from the dataset's photos)")
    if d.preprocess in ("resize_and_crop", "scale_shortside_and_crop") and d.crop_size > d.load_size:
        raise ConfigError(f"data.crop_size ({d.crop_size}) must not exceed data.load_size ({d.load_size})")
    if d.preprocess != "none":
        multiple = GENERATORS[cfg.model.netG].size_multiple
        if d.crop_size % multiple:
            raise ConfigError(
                f"data.crop_size={d.crop_size} must be a multiple of {multiple} for model.netG={cfg.model.netG}"
            )
    if cfg.model.kind == "pix2pix" and d.mode == "unaligned":
        raise ConfigError("model.kind=pix2pix needs paired data: set data.mode=aligned or data.mode=photos")
    _validate_colour_options(cfg)
    if cfg.run.max_steps is not None and cfg.run.max_steps < 0:
        raise ConfigError(f"run.max_steps must be >= 0, got {cfg.run.max_steps}")


def _validate_colour_options(cfg: TrainConfig) -> None:
    """Hints, sketch styles and colour losses: where each one applies."""
    m, d, loss = cfg.model, cfg.data, cfg.loss
    if m.hint_nc not in HINT_CHANNEL_CHOICES:
        raise ConfigError(f"model.hint_nc={m.hint_nc!r} is not one of {', '.join(map(str, HINT_CHANNEL_CHOICES))}")
    if m.hint_nc and m.kind != "pix2pix":
        raise ConfigError("model.hint_nc needs model.kind=pix2pix (hints are drawn from the paired photo)")
    if not 0.0 <= d.hint_p_none <= 1.0:
        raise ConfigError(f"data.hint_p_none must be in [0, 1], got {d.hint_p_none}")
    if not 0.0 <= d.hint_p_region <= 1.0:
        raise ConfigError(f"data.hint_p_region must be in [0, 1], got {d.hint_p_region}")
    if (loss.lambda_perceptual or loss.lambda_chroma) and m.kind != "pix2pix":
        raise ConfigError("loss.lambda_perceptual and loss.lambda_chroma are Pix2Pix terms: set model.kind=pix2pix")
    if d.sketch_styles:
        from .sketch_styles import parse_styles

        try:
            parse_styles(d.sketch_styles)
        except ValueError as exc:
            raise ConfigError(f"data.sketch_styles: {exc}") from exc
        if d.mode != "photos" or d.sketch_method != "hed":
            raise ConfigError("data.sketch_styles needs data.mode=photos and data.sketch_method=hed")


# --------------------------------------------------------------------------- presets


def _official_cyclegan() -> TrainConfig:
    cfg = TrainConfig()
    cfg.seg = SegConfig(variant="both", grad="soft", segmenter="detectron2-panoptic", lambda_seg=10.0)
    return cfg


def _official_pix2pix() -> TrainConfig:
    cfg = TrainConfig()
    cfg.model = ModelConfig(kind="pix2pix", norm="batch", use_dropout=True, gan_mode="vanilla")
    cfg.loss = LossConfig(pool_size=0, lambda_L1=100.0)
    cfg.seg = SegConfig(variant="both", grad="soft", segmenter="detectron2-panoptic", lambda_seg=100.0)
    cfg.data = DataConfig(mode="aligned")
    return cfg


def _paper() -> TrainConfig:
    cfg = _official_cyclegan()
    cfg.seg.lambda_seg = 1.0
    return cfg


def _paper_pix2pix() -> TrainConfig:
    cfg = _official_pix2pix()
    cfg.seg.lambda_seg = 1.0
    return cfg


def _demo() -> TrainConfig:
    cfg = TrainConfig()
    cfg.model = ModelConfig(
        kind="pix2pix", netG="resnet_6blocks", ngf=16, ndf=16, norm="instance", use_dropout=False, gan_mode="lsgan"
    )
    cfg.loss = LossConfig(pool_size=0, lambda_L1=100.0)
    cfg.seg = SegConfig(variant="binary", grad="soft", segmenter="isnet", lambda_seg=1.0)
    cfg.data = DataConfig(mode="photos", root=None, load_size=143, crop_size=128, sketch_method="hed")
    cfg.optim = OptimConfig(niter=6, niter_decay=4)
    cfg.run = RunConfig(
        out="runs/demo", checkpoint_every=100, save_epoch_freq=0, log_every=5, sample_every=50, num_samples=4
    )
    return cfg


#: Presets by name:
#:
#: * ``official-cyclegan`` / ``official-pix2pix``: the official AdvSegLoss defaults
#:   (``docs/official-behaviour.md`` §1), segmentation variant ``both`` with λ_Seg = 10 / 100 and
#:   the paper's Panoptic FPN segmenter. ``seg.grad`` stays ``soft`` (our fix); add
#:   ``--seg-grad hard`` for the released behaviour (no gradient to G).
#: * ``paper`` / ``paper-pix2pix``: the paper's objective L = wg·LG + wb·LB + wm·LM with
#:   wg = wb = wm = 1 literally (λ_Seg = 1), soft maps.
#: * ``demo``: a tiny Pix2Pix (resnet_6blocks, ngf 16) at 128² over the cached real photos with
#:   HED sketches and the ISNet fg/bg segmenter; minutes on 2 CPU cores.
PRESETS: dict[str, Callable[[], TrainConfig]] = {
    "official-cyclegan": _official_cyclegan,
    "official-pix2pix": _official_pix2pix,
    "paper": _paper,
    "paper-pix2pix": _paper_pix2pix,
    "demo": _demo,
}


def get_preset(name: str) -> TrainConfig:
    """A fresh :class:`TrainConfig` for preset ``name``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    cfg = PRESETS[name]()
    cfg.preset = name
    return cfg


# --------------------------------------------------------------------------- dict / YAML


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


#: how a ConfigError names the type a key expects
_EXPECTED = {bool: "true/false", int: "an integer", float: "a number", str: "a string", dict: "a mapping"}


def _config_error(exc: OmegaConfBaseException) -> ConfigError:
    """OmegaConf's error as the message advseg has always given (the key and what it expects)."""
    key = str(exc.full_key or exc.key or "config")
    section = exc.object_type if dataclasses.is_dataclass(exc.object_type) else None
    if isinstance(exc, ConfigKeyError) and section is not None:
        prefix = key.rpartition(".")[0]
        known = ", ".join(f"{prefix}.{f.name}" if prefix else f.name for f in dataclasses.fields(section))
        return ConfigError(f"unknown config key {key!r}; known keys here: {known}")
    if isinstance(exc, ValidationError) and section is not None:
        tp = typing.get_type_hints(section).get(str(exc.key))
        args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
        expected = _EXPECTED.get(typing.get_origin(args[0]) or args[0])
        if expected is not None:
            return ConfigError(f"{key}: expected {expected}, got {exc.value!r}")
    return ConfigError(f"{key}: {str(exc.msg or exc).splitlines()[0]}")


def _merged(cfg: TrainConfig, d: Mapping[str, Any]) -> TrainConfig:
    """``cfg`` updated with the nested mapping ``d`` through an OmegaConf structured config, which
    refuses unknown keys and converts values to the annotated types (``1e-3`` to a float ...)."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"config: expected a mapping, got {d!r}")
    for name, value in d.items():  # OmegaConf reports a scalar given for a section without its key
        if dataclasses.is_dataclass(getattr(cfg, str(name), None)) and not isinstance(value, Mapping):
            raise ConfigError(f"{name}: expected a mapping, got {value!r}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cfg), d)
        return typing.cast(TrainConfig, OmegaConf.to_object(merged))
    except OmegaConfBaseException as exc:
        raise _config_error(exc) from None


def _update(cfg: TrainConfig, d: Mapping[str, Any]) -> TrainConfig:
    new = _merged(cfg, d)
    for f in dataclasses.fields(cfg):
        setattr(cfg, f.name, getattr(new, f.name))
    return cfg


def from_dict(d: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """Update ``base`` (default: a fresh :class:`TrainConfig`) with the nested mapping ``d``."""
    return _update(base if base is not None else TrainConfig(), d)


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping at top level, got {type(data).__name__}")
    return data


def dump_yaml(cfg: TrainConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def _get(cfg: Any, key: str) -> Any:
    obj = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def apply_overrides(cfg: TrainConfig, overrides: Sequence[str]) -> TrainConfig:
    """Apply ``a.b=value`` strings (values parsed as YAML scalars: ``8``, ``true``, ``null``)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        key = key.strip().lstrip("-")
        try:
            value = yaml.safe_load(raw) if raw.strip() != "" else ""
        except yaml.YAMLError:
            value = raw
        nested: Any = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        _update(cfg, nested)
    return cfg


def resolve_config(
    config_file: str | Path | None = None,
    preset: str | None = None,
    overrides: Sequence[str] = (),
) -> TrainConfig:
    """defaults -> preset -> YAML file -> overrides; validated."""
    data = load_yaml(config_file) if config_file else {}
    name = preset or data.pop("preset", None)
    data.pop("preset", None)
    cfg = get_preset(name) if name else TrainConfig()
    from_dict(data, cfg)
    apply_overrides(cfg, overrides)
    return cfg.validate()
