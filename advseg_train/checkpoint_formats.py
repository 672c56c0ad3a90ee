"""Checkpoint formats: the one module that knows official key layouts and our own file format.

Sources: our ``.safetensors`` files (metadata ``advseg_format`` = ``generator/1`` or
``discriminator/1`` and ``config`` = the config as JSON), ``.pth``/``.pt`` files (read with
``torch.load(weights_only=True)``, never executing code), state dicts, and training checkpoint
dicts: advseg-train's ``{"model": {"nets": {"G_A": {...}, "D_A": {...}}}, "generator": {"name":
"G_A", "config": {...}}}``, or flat ones such as ``{"generator": {...}, "generator_config":
{...}}`` (``key=`` picks the entry; without it common names are tried). DDP ``module.`` and
``torch.compile`` ``_orig_mod.`` prefixes and old InstanceNorm buffers are dropped; the key
layouts read are listed at :func:`detect_layout`. The architecture is inferred from the weights
(:func:`generator_state_and_config`); :mod:`advseg_train.networks` builds the module and
:func:`load_checked` loads the weights into it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
from torch import nn

from .archs import DISCRIMINATOR_ARCHS, GENERATOR_ARCHS, DiscriminatorConfig, GeneratorConfig, generator_arch_for

__all__ = [
    "CheckpointError",
    "GENERATOR_FORMAT",
    "DISCRIMINATOR_FORMAT",
    "read_checkpoint",
    "strip_wrapper_prefix",
    "drop_instance_norm_buffers",
    "detect_layout",
    "generator_state_and_config",
    "discriminator_state_and_config",
    "load_checked",
    "save_generator",
    "save_discriminator",
    "read_metadata",
]


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not match the network it is loaded into."""


GENERATOR_FORMAT = "generator/1"
DISCRIMINATOR_FORMAT = "discriminator/1"

StateDict = dict[str, torch.Tensor]
_Config = TypeVar("_Config", GeneratorConfig, DiscriminatorConfig)
_Net = TypeVar("_Net", bound=nn.Module)

GENERATOR_KEYS = ("generator", "G", "G_A", "netG", "netG_A", "state_dict", "model_state_dict")
DISCRIMINATOR_KEYS = ("discriminator", "D", "D_A", "netD", "netD_A", "state_dict", "model_state_dict")
_SHOW = 5  # how many keys an error message lists per category


# --------------------------------------------------------------------------- reading sources


def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"'{os.fspath(source)}'"
    return f"<{type(source).__name__}>"


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def read_checkpoint(source: Any) -> tuple[Any, dict[str, str]]:
    """Read ``source`` (path or in-memory object) without executing code.

    Returns ``(obj, metadata)``: ``obj`` is a state dict or a container dict; ``metadata`` is the
    safetensors header metadata (empty for other sources).
    """
    if isinstance(source, nn.Module):
        raise TypeError("load_* takes a path or a state dict; for a module use module.state_dict()")
    if isinstance(source, Mapping):
        return source, {}
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"checkpoint source must be a path or a dict, got {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: '{path}'")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                metadata = dict(f.metadata() or {})
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"cannot read safetensors file '{path}': {exc}") from exc
        return tensors, metadata
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read checkpoint '{path}' with torch.load(weights_only=True): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. Only plain "
            "tensor state dicts (and dicts of them) are accepted; pickled modules are refused."
        ) from exc
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint '{path}' holds a {type(obj).__name__}, not a state dict or a dict")
    return obj, {}


def _unwrap_container(
    obj: Mapping[str, Any], key: str | None, candidates: tuple[str, ...], what: str, desc: str
) -> tuple[Mapping[str, Any], dict[str, Any] | None]:
    """Pick the state dict (and its ``<key>_config`` if present) out of a training checkpoint."""
    if key is None and _is_state_dict(obj):
        return obj, None
    model = obj.get("model")
    if isinstance(model, Mapping) and isinstance(model.get("nets"), Mapping):
        return _unwrap_trainer_checkpoint(obj, model["nets"], key, what, desc)
    if key is None:
        found = [k for k in candidates if isinstance(obj.get(k), Mapping)]
        if not found:
            entries = sorted(str(k) for k in obj)[:20]
            raise CheckpointError(
                f"{desc} is neither a {what} state dict nor a training checkpoint with one of the "
                f"entries {list(candidates)}; its entries are {entries}. Pass key=... to choose."
            )
        key = found[0]
    if key not in obj:
        raise CheckpointError(f"{desc} has no entry {key!r}; entries: {sorted(str(k) for k in obj)[:20]}")
    inner = obj[key]
    if not _is_state_dict(inner):
        raise CheckpointError(f"entry {key!r} of {desc} is not a state dict of tensors")
    config = obj.get(f"{key}_config")
    return inner, (dict(config) if isinstance(config, Mapping) else None)


def _unwrap_trainer_checkpoint(
    obj: Mapping[str, Any], nets: Mapping[str, Any], key: str | None, what: str, desc: str
) -> tuple[Mapping[str, Any], dict[str, Any] | None]:
    """advseg-train checkpoints: ``{"model": {"nets": {name: state_dict}}, "generator": {"name",
    "config"}}``. The generator is the one ``generator.name`` names; a discriminator needs
    ``key`` unless there is only one (names starting with "D")."""
    gen: Mapping[str, Any] = obj["generator"] if isinstance(obj.get("generator"), Mapping) else {}
    if key is None and what == "generator":
        key = gen.get("name")
        if key is None:
            raise CheckpointError(
                f"{desc} names no generator ('generator.name'): pass key=... (networks: {sorted(nets)})"
            )
    elif key is None:
        ds = [n for n in nets if str(n).startswith("D")]
        if len(ds) != 1:
            raise CheckpointError(f"{desc} holds the discriminators {ds}: pass key=... to choose")
        key = ds[0]
    if key not in nets:
        raise CheckpointError(f"{desc} has no network {key!r}; networks: {sorted(nets)}")
    if not _is_state_dict(nets[key]):
        raise CheckpointError(f"network {key!r} of {desc} is not a state dict of tensors")
    config = gen.get("config") if key == gen.get("name") else None
    return nets[key], (dict(config) if isinstance(config, Mapping) else None)


# --------------------------------------------------------------------------- key surgery


def strip_wrapper_prefix(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Remove ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) prefixes that
    every key carries."""
    out = dict(sd)
    changed = True
    while changed and out:
        changed = False
        for prefix in ("module.", "_orig_mod."):
            if all(k.startswith(prefix) for k in out):
                out = {k[len(prefix) :]: v for k, v in out.items()}
                changed = True
    return out


def drop_instance_norm_buffers(sd: Mapping[str, torch.Tensor]) -> tuple[StateDict, list[str]]:
    """Drop ``running_mean`` / ``running_var`` / ``num_batches_tracked`` of affine-free
    InstanceNorm layers, as saved by old upstream code (``track_running_stats=True``).

    Rule: a module prefix with ``running_mean`` (or ``num_batches_tracked``) but no ``weight`` is
    an affine-free InstanceNorm (our BatchNorm is always affine). Our InstanceNorm never uses
    running stats, as the current official code. Returns ``(state_dict, dropped_keys)``.
    """
    buffer_names = ("running_mean", "running_var", "num_batches_tracked")
    prefixes = {k.rsplit(".", 1)[0] for k in sd if k.rsplit(".", 1)[-1] in buffer_names}
    norm_free = {p for p in prefixes if f"{p}.weight" not in sd}
    dropped = [k for k in sd if k.rsplit(".", 1)[0] in norm_free and k.rsplit(".", 1)[-1] in buffer_names]
    kept = {k: v for k, v in sd.items() if k not in set(dropped)}
    return kept, dropped


def detect_layout(sd: Mapping[str, torch.Tensor]) -> str:
    """Name the key layout of a (prefix-stripped) state dict:

    ============================  ==========================================================
    layout name                   recognised by
    ============================  ==========================================================
    ``resnet_flat``               ``model.<i>.conv_block.*``, no ``model_decode``: stock
                                  pytorch-CycleGAN-and-pix2pix ResnetGenerator, and ours.
    ``advsegloss_resnet_split``   ``model_decode.*`` / ``model_out.*`` (+ unused ``model_fc*``):
                                  the AdvSegLoss ResnetGenerator. Remapped to ``resnet_flat``:
                                  ``model_decode.j`` → ``model.(10+n+j)``, ``model_out.1`` →
                                  ``model.(17+n)``; ``model_fc*`` keys are dropped.
    ``unet``                      ``model.model.*`` (same in both codebases and ours).
    ``effnet_unet``               ``encoder._conv_stem.weight``: our EfficientNet-Lite0 U-Net.
    ``nlayer_discriminator``      ``model.0.weight`` with a 4×4 kernel (PatchGAN).
    ``pixel_discriminator``       ``net.0.weight`` with a 1×1 kernel (PixelGAN).
    ============================  ==========================================================
    """
    keys = list(sd)
    if any(k.startswith(("model_decode.", "model_out.")) for k in keys):
        return "advsegloss_resnet_split"
    if any(k.startswith("model.model.") for k in keys):
        return "unet"
    if "encoder._conv_stem.weight" in sd:
        return "effnet_unet"
    if any(re.match(r"model\.\d+\.conv_block\.", k) for k in keys):
        return "resnet_flat"
    w = sd.get("model.0.weight")
    if w is not None and w.ndim == 4 and tuple(w.shape[-2:]) == (4, 4):
        return "nlayer_discriminator"
    w = sd.get("net.0.weight")
    if w is not None and w.ndim == 4 and tuple(w.shape[-2:]) == (1, 1):
        return "pixel_discriminator"
    return "unknown"


def _first_keys(sd: Mapping[str, Any], n: int = _SHOW) -> str:
    return ", ".join(list(sd)[:n]) + (", ..." if len(sd) > n else "")


def _resnet_n_blocks(sd: Mapping[str, torch.Tensor]) -> list[int]:
    pattern = re.compile(r"model\.(\d+)\.conv_block\.")
    return sorted({int(m.group(1)) for k in sd if (m := pattern.match(k))})


def _advsegloss_to_flat(sd: Mapping[str, torch.Tensor], desc: str) -> StateDict:
    """AdvSegLoss split ResnetGenerator → flat layout; drops the unused ``model_fc*`` branch."""
    n = len(_resnet_n_blocks(sd))
    out: StateDict = {}
    for k, v in sd.items():
        if k.startswith(("model_fc.", "model_fc_prep.")):
            continue
        if k.startswith("model."):
            out[k] = v
        elif m := re.match(r"model_decode\.(\d+)\.(.+)", k):
            out[f"model.{10 + n + int(m.group(1))}.{m.group(2)}"] = v
        elif m := re.match(r"model_out\.(\d+)\.(.+)", k):
            out[f"model.{16 + n + int(m.group(1))}.{m.group(2)}"] = v
        else:
            raise CheckpointError(f"{desc}: unexpected key {k!r} in an AdvSegLoss ResnetGenerator")
    # keep the flat order: stem/blocks, decoder, head (sorted by the first index)
    return dict(sorted(out.items(), key=lambda kv: int(kv[0].split(".")[1])))


# --------------------------------------------------------------------------- inference


def _shape(sd: Mapping[str, torch.Tensor], key: str, desc: str) -> tuple[int, ...]:
    if key not in sd:
        raise CheckpointError(f"{desc}: expected key {key!r} is missing; found keys: {_first_keys(sd)}")
    return tuple(sd[key].shape)


def _norm_of(sd: Mapping[str, torch.Tensor], norm_prefix: str, conv_prefix: str, desc: str) -> str:
    """``batch`` if the first norm stores parameters, else ``instance`` (``none`` looks alike:
    both have conv biases and no norm tensors). Layouts we cannot build are named clearly."""
    if f"{norm_prefix}.weight" in sd:
        if f"{norm_prefix}.running_mean" not in sd:
            raise CheckpointError(
                f"{desc}: norm layer {norm_prefix!r} has a weight but no running stats: an affine "
                "InstanceNorm, which neither official codebase builds; not supported"
            )
        return "batch"
    if f"{conv_prefix}.bias" not in sd:
        raise CheckpointError(
            f"{desc}: neither norm parameters nor conv biases (no {conv_prefix}.bias): this is "
            "norm='none' as newer upstream code builds it (convs without bias), which advseg "
            "does not build (our norm='none' keeps conv biases)"
        )
    return "instance"


def _infer_resnet(sd: StateDict, desc: str) -> dict[str, Any]:
    blocks = _resnet_n_blocks(sd)
    n = len(blocks)
    if blocks != list(range(10, 10 + n)):
        raise CheckpointError(f"{desc}: residual blocks at unexpected indices {blocks}")
    arch = generator_arch_for("resnet", n)
    if arch is None:
        raise CheckpointError(
            f"{desc}: ResnetGenerator with {n} blocks; only 6 and 9 are supported ({list(GENERATOR_ARCHS)})"
        )
    stem = _shape(sd, "model.1.weight", desc)
    head = _shape(sd, f"model.{17 + n}.weight", desc)
    second_conv = sd.get("model.10.conv_block.6.weight")
    return {
        "arch": arch,
        "input_nc": stem[1],
        "ngf": stem[0],
        "output_nc": head[0],
        "norm": _norm_of(sd, "model.2", "model.1", desc),
        "use_dropout": second_conv is not None and second_conv.ndim == 4,
    }


def _infer_unet(sd: StateDict, desc: str) -> dict[str, Any]:
    downs = [k for k in sd if re.fullmatch(r"model(\.model\.1)(\.model\.3)*\.model\.1\.weight", k)]
    num_downs = len(downs) + 1  # + the outermost level (model.model.0)
    arch = generator_arch_for("unet", num_downs)
    if arch is None:
        raise CheckpointError(
            f"{desc}: U-Net with {num_downs} down-samplings; only 7 (unet_128) and 8 (unet_256) are supported"
        )
    first = _shape(sd, "model.model.0.weight", desc)
    last = _shape(sd, "model.model.3.weight", desc)  # ConvTranspose: (in, out, k, k)
    return {
        "arch": arch,
        "input_nc": first[1],
        "ngf": first[0],
        "output_nc": last[1],
        "norm": _norm_of(sd, "model.model.1.model.2", "model.model.1.model.1", desc),
    }


def _infer_effnet_unet(sd: StateDict, desc: str) -> dict[str, Any]:
    """effnet_unet: input channels from the stem (7 = a 3-channel sketch + 4 hint channels),
    ngf from the stride-2 decoder conv, the decoder norm from its parameters (no norm parameters
    reads as ``none``: that is what this architecture is trained with)."""
    stem = _shape(sd, "encoder._conv_stem.weight", desc)
    up2 = _shape(sd, "up2.convs.0.0.weight", desc)
    head = _shape(sd, "head.weight", desc)
    hint_nc = 4 if stem[1] in (5, 7) else 0
    return {
        "arch": "effnet_unet",
        "input_nc": stem[1] - hint_nc,
        "hint_nc": hint_nc,
        "ngf": up2[0],
        "output_nc": head[0],
        "norm": "batch" if "up2.convs.0.1.weight" in sd else "none",
    }


def _infer_nlayer(sd: StateDict, desc: str) -> dict[str, Any]:
    convs = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r"model\.(\d+)\.weight", k)) and sd[k].ndim == 4)
    n_layers = (convs[-1] - 2) // 3
    if n_layers < 1 or convs[-1] != 2 + 3 * n_layers:
        raise CheckpointError(f"{desc}: PatchGAN convs at unexpected indices {convs}")
    first = _shape(sd, "model.0.weight", desc)
    return {
        "arch": "basic" if n_layers == 3 else "n_layers",
        "input_nc": first[1],
        "ndf": first[0],
        "n_layers": n_layers,
        "norm": _norm_of(sd, "model.3", "model.2", desc),
    }


def _infer_pixel(sd: StateDict, desc: str) -> dict[str, Any]:
    first = _shape(sd, "net.0.weight", desc)
    return {"arch": "pixel", "input_nc": first[1], "ndf": first[0], "norm": _norm_of(sd, "net.3", "net.2", desc)}


_Infer = Callable[[StateDict, str], dict[str, Any]]

#: per kind: container entry names, our format tag, config class, inference per layout
_KINDS: dict[str, tuple[tuple[str, ...], str, type, dict[str, _Infer]]] = {
    "generator": (
        GENERATOR_KEYS,
        GENERATOR_FORMAT,
        GeneratorConfig,
        {
            "advsegloss_resnet_split": _infer_resnet,
            "resnet_flat": _infer_resnet,
            "unet": _infer_unet,
            "effnet_unet": _infer_effnet_unet,
        },
    ),
    "discriminator": (
        DISCRIMINATOR_KEYS,
        DISCRIMINATOR_FORMAT,
        DiscriminatorConfig,
        {"nlayer_discriminator": _infer_nlayer, "pixel_discriminator": _infer_pixel},
    ),
}


# --------------------------------------------------------------------------- strict loading


def _format_shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def _check_match(net: nn.Module, sd: Mapping[str, torch.Tensor], desc: str, cfg: Any, layout: str) -> None:
    """Raise a CheckpointError listing missing / unexpected / mis-shaped keys (a few of each)."""
    expected = net.state_dict()
    # files from PyTorch < 0.4 have no BatchNorm num_batches_tracked; BatchNorm's own loader
    # fills it in (state-dict version < 2), so its absence is not a mismatch
    missing = [
        k
        for k in expected
        if k not in sd and not (k.endswith(".num_batches_tracked") and f"{k.rsplit('.', 1)[0]}.running_mean" in sd)
    ]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [k for k in expected if k in sd and expected[k].shape != sd[k].shape]
    if not (missing or unexpected or mismatched):
        return
    parts = [f"{desc} (layout {layout}) does not match {type(cfg).__name__}({_cfg_str(cfg)}):"]
    if missing:
        shown = ", ".join(f"{k} {_format_shape(expected[k])}" for k in missing[:_SHOW])
        more = f" (+{len(missing) - _SHOW} more)" if len(missing) > _SHOW else ""
        parts.append(f"{len(missing)} expected key(s) not found: {shown}{more}")
    if unexpected:
        shown = ", ".join(f"{k} {_format_shape(sd[k])}" for k in unexpected[:_SHOW])
        more = f" (+{len(unexpected) - _SHOW} more)" if len(unexpected) > _SHOW else ""
        parts.append(f"{len(unexpected)} unexpected key(s) found: {shown}{more}")
    if mismatched:
        shown = ", ".join(
            f"{k} expected {_format_shape(expected[k])} found {_format_shape(sd[k])}" for k in mismatched[:_SHOW]
        )
        more = f" (+{len(mismatched) - _SHOW} more)" if len(mismatched) > _SHOW else ""
        parts.append(f"{len(mismatched)} shape mismatch(es): {shown}{more}")
    parts.append(
        "If the architecture was inferred wrongly, pass overrides (e.g. arch=..., ngf=..., norm=..., use_dropout=...)."
    )
    raise CheckpointError("\n  ".join(parts))


def _cfg_str(cfg: Any) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in cfg.to_dict().items())


def _make_config(cls: type[_Config], values: dict[str, Any], desc: str) -> _Config:
    try:
        return cls.from_dict(values)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{desc}: invalid {cls.__name__}: {exc}") from exc


def _prepare(
    source: Any, key: str | None, candidates: tuple[str, ...], what: str, fmt: str
) -> tuple[StateDict, dict[str, Any] | None, str]:
    """Read a source down to (prefix-stripped state dict, stored config or None, description)."""
    desc = _describe(source)
    obj, metadata = read_checkpoint(source)
    stored: dict[str, Any] | None = None
    if metadata.get("advseg_format"):
        if metadata["advseg_format"] != fmt:
            raise CheckpointError(f"{desc} is an advseg {metadata['advseg_format']!r} file, not {fmt!r}")
        try:
            stored = json.loads(metadata["config"])
        except (KeyError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{desc}: metadata 'config' is missing or not JSON") from exc
        sd = obj
    else:
        sd, stored = _unwrap_container(obj, key, candidates, what, desc)
    return strip_wrapper_prefix(sd), stored, desc


def _state_and_config(
    source: Any, key: str | None, overrides: Mapping[str, Any], what: str
) -> tuple[Any, StateDict, str]:
    """Read a ``what`` ("generator" | "discriminator") source into ``(config, state dict, layout)``."""
    candidates, fmt, cls, infer = _KINDS[what]
    sd, stored, desc = _prepare(source, key, candidates, what, fmt)
    sd, _ = drop_instance_norm_buffers(sd)
    layout = detect_layout(sd)
    if layout not in infer:
        known = "" if what == "generator" else f"; known: {list(DISCRIMINATOR_ARCHS)}"
        raise CheckpointError(
            f"{desc} does not look like a {what} state dict (layout {layout}{known}); first keys: {_first_keys(sd)}"
        )
    if layout == "advsegloss_resnet_split":
        sd = _advsegloss_to_flat(sd, desc)
    values = {**infer[layout](sd, desc), **(stored or {}), **overrides}
    return _make_config(cls, values, desc), sd, layout


def generator_state_and_config(
    source: Any, *, key: str | None = None, **overrides: Any
) -> tuple[GeneratorConfig, StateDict, str]:
    """Read any supported generator source into ``(config, state dict in our layout, layout)``.

    What the weights cannot tell (pass as overrides): ``norm="none"`` versus ``"instance"``
    (neither stores norm tensors; ``instance`` is assumed) and ``use_dropout`` of a U-Net (Dropout
    has no weights and shifts no index there; ``False`` is assumed). ResNet dropout *is*
    inferred: it shifts the second block conv from ``conv_block.5`` to ``conv_block.6``."""
    return _state_and_config(source, key, overrides, "generator")


def discriminator_state_and_config(
    source: Any, *, key: str | None = None, **overrides: Any
) -> tuple[DiscriminatorConfig, StateDict, str]:
    """Read any supported discriminator source into ``(config, state dict, layout)``;
    ``use_sigmoid`` is not in the weights (``False`` unless given as an override)."""
    return _state_and_config(source, key, overrides, "discriminator")


def load_checked(net: _Net, sd: StateDict, source: Any, layout: str) -> _Net:
    """Load ``sd`` (read from ``source`` in ``layout``) strictly into ``net``, which was built from
    ``net.config``; a mismatch raises :class:`CheckpointError` naming the keys and shapes.
    Returns ``net`` in eval mode."""
    _check_match(net, sd, _describe(source), net.config, layout)
    net.load_state_dict(sd, strict=True)
    return net.eval()


# --------------------------------------------------------------------------- saving (ours)


def _unwrap_module(net: nn.Module) -> nn.Module:
    while True:
        if hasattr(net, "_orig_mod"):  # torch.compile
            net = cast(nn.Module, net._orig_mod)
        elif isinstance(net, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            net = net.module
        else:
            return net


def _save(
    net: nn.Module, path: str | os.PathLike, fmt: str, cfg_cls: type[_Config], extra_metadata: Mapping[str, Any] | None
) -> None:
    from safetensors.torch import save_file

    from advseg_sdk.files import atomic_path

    net = _unwrap_module(net)
    cfg = getattr(net, "config", None)
    if not isinstance(cfg, cfg_cls):
        raise ValueError(
            f"cannot save: the module has no .config of type {cfg_cls.__name__}; build it with "
            f"build_{'generator' if cfg_cls is GeneratorConfig else 'discriminator'}()"
        )
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"our format is safetensors: name the file *.safetensors, got '{path}'")
    metadata = {"advseg_format": fmt, "config": json.dumps(cfg.to_dict(), sort_keys=True)}
    for k, v in (extra_metadata or {}).items():
        if k in metadata:
            raise ValueError(f"extra_metadata may not override the reserved key {k!r}")
        metadata[str(k)] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def save_generator(net: nn.Module, path: str | os.PathLike, extra_metadata: Mapping[str, Any] | None = None) -> None:
    """Write a generator as ``.safetensors`` with ``{"advseg_format": "generator/1", "config":
    json, **extra}`` metadata (non-string extra values are JSON-encoded), atomically."""
    _save(net, path, GENERATOR_FORMAT, GeneratorConfig, extra_metadata)


def save_discriminator(
    net: nn.Module, path: str | os.PathLike, extra_metadata: Mapping[str, Any] | None = None
) -> None:
    """Write a discriminator as ``.safetensors`` (``"discriminator/1"``), atomically."""
    _save(net, path, DISCRIMINATOR_FORMAT, DiscriminatorConfig, extra_metadata)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of one of our safetensors files (e.g. to read ``extra_metadata`` back)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        return dict(f.metadata() or {})
