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

Weights are the user's ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid's release file);
no download happens here. It is read with ``torch.load(weights_only=True)`` and its sha256 is
checked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FID_WEIGHTS_FILENAME",
    "FID_WEIGHTS_SHA256",
    "FID_WEIGHTS_SIZE",
    "FID_WEIGHTS_URL",
    "FIDInceptionV3",
    "InceptionWeightsError",
    "StateDictLayoutError",
    "default_inception_weights_path",
    "load_fid_inception",
    "load_state_dict_checked",
]

#: pytorch-fid's weights file; the 8 hex digits in the name are the sha256 prefix (torch.hub
#: convention). Full digest and size as published for that release file.
FID_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
FID_WEIGHTS_SIZE = 95_628_359
FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_FILENAME
)

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

    def __init__(self, resize_input: bool = True, num_classes: int = 1008) -> None:
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
        self.fc = nn.Linear(2048, num_classes)

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
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                      self.Mixed_7c):
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
        f"FID needs pytorch-fid's weights file {FID_WEIGHTS_FILENAME} "
        f"({FID_WEIGHTS_SIZE} bytes, sha256 {FID_WEIGHTS_SHA256}).\n"
        f"Put it at {default_inception_weights_path()} or pass --inception-weights PATH "
        f"(Python: inception_weights=PATH). It is published at {FID_WEIGHTS_URL} and is also in "
        "the torch hub cache of anyone who has run pytorch-fid "
        f"(~/.cache/torch/hub/checkpoints/{FID_WEIGHTS_FILENAME}).\n"
        "Offline alternative that runs without it: --metric imgsim (a different, non-FID distance)."
    )


def load_fid_inception(
    weights: str | os.PathLike | None = None,
    check_hash: bool = True,
    resize_input: bool = True,
    map_location: str | torch.device = "cpu",
) -> FIDInceptionV3:
    """Build :class:`FIDInceptionV3` and load pytorch-fid's weights (eval mode, no grads).

    ``weights=None`` means :func:`default_inception_weights_path`. The file's sha256 must be
    :data:`FID_WEIGHTS_SHA256` unless ``check_hash=False`` (for re-saved copies; FID values are
    then only comparable if the tensors are identical).
    """
    path = Path(weights).expanduser() if weights is not None else default_inception_weights_path()
    if not path.is_file():
        raise InceptionWeightsError(_missing_message(path))
    from advseg_sdk.assets import sha256_file

    digest = sha256_file(path)
    if check_hash:
        if digest != FID_WEIGHTS_SHA256:
            raise InceptionWeightsError(
                f"{path}: sha256 {digest} is not pytorch-fid's {FID_WEIGHTS_FILENAME} "
                f"(expected {FID_WEIGHTS_SHA256}, {FID_WEIGHTS_SIZE} bytes). FID from other "
                "Inception weights (e.g. torchvision's) is not comparable with published numbers."
            )
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
    return model
