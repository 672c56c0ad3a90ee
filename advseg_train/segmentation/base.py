"""The frozen segmenter interface shared by every backend."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import coco_panoptic


class Segmenter(nn.Module):
    """A frozen, differentiable per-pixel classifier.

    ``forward(x)`` takes images ``x`` of shape (B, 3, H, W) in [-1, 1] (the generator's range
    and resolution) and returns per-class probabilities (B, C, H, W) that sum to 1 over C.
    The result is differentiable w.r.t. ``x``; the parameters never receive gradients and the
    module stays in eval mode whatever ``.train()`` is called with (a trainer's
    ``model.train()`` must not flip BatchNorm or dropout inside the segmenter).

    Attributes:
        name: backend name, e.g. ``"isnet"``.
        class_names: the C class names, in channel order.
        is_thing: per class, True for "thing" (countable objects / foreground) classes.
        multi_index: output channel of each class in the multi-class discriminator map.
        multi_channels: number of channels of that map (channel 0 is always empty, as in the
            official code).

    Subclasses implement :meth:`_probs` (and may override :meth:`labels` with their own
    official hard decoding).
    """

    def __init__(
        self,
        *,
        name: str,
        class_names: Sequence[str],
        is_thing: Sequence[bool],
        multi_index: Sequence[int] | None = None,
        multi_channels: int | None = None,
    ) -> None:
        super().__init__()
        if len(class_names) != len(is_thing):
            raise ValueError(f"{name}: {len(class_names)} class names but {len(is_thing)} is_thing flags")
        if len(class_names) < 2:
            raise ValueError(f"{name}: a segmenter needs at least 2 classes")
        self.name = name
        self.class_names = list(class_names)
        self.is_thing = [bool(t) for t in is_thing]
        if multi_index is None:
            if coco_panoptic.match_coco_panoptic(self.class_names):
                multi_index = coco_panoptic.official_multi_index()
                multi_channels = coco_panoptic.OFFICIAL_MULTI_CHANNELS
            else:
                multi_index = tuple(range(1, len(self.class_names) + 1))
                multi_channels = len(self.class_names) + 1
        if multi_channels is None:
            multi_channels = max(multi_index) + 1
        if len(multi_index) != len(self.class_names) or len(set(multi_index)) != len(multi_index):
            raise ValueError(f"{name}: multi_index must give one distinct channel per class")
        if min(multi_index) < 1 or max(multi_index) >= multi_channels:
            raise ValueError(f"{name}: multi_index channels must lie in 1..{multi_channels - 1}")
        self.multi_index = tuple(int(i) for i in multi_index)
        self.multi_channels = int(multi_channels)

    # ------------------------------------------------------------------ state
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_coco_panoptic(self) -> bool:
        return coco_panoptic.match_coco_panoptic(self.class_names)

    def freeze(self) -> Segmenter:
        """Eval mode and ``requires_grad=False`` on every parameter; returns self."""
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)
        return self

    def train(self, mode: bool = True) -> Segmenter:  # noqa: ARG002 - always eval
        """Stay in eval mode: the segmenter is frozen, whatever ``mode`` asks."""
        return super().train(False)

    # ---------------------------------------------------------------- compute
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities in float32 (float64 for float64 input), also under autocast: in
        bf16/fp16 a confident pixel's small class probabilities round to 0 and its large ones to 1."""
        check_image_batch(x, self.name)
        probs = self._probs(x)
        return probs.to(map_dtype(x)) if probs.dtype != map_dtype(x) else probs

    def _probs(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def labels(self, x: torch.Tensor) -> torch.Tensor:
        """Hard per-pixel class ids (B, H, W) int64; -1 marks pixels assigned to no segment.

        The default is the argmax of :meth:`forward`; backends with an official discrete
        decoding (detectron2 panoptic) override it.
        """
        return self.forward(x).argmax(dim=1)

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, classes={self.num_classes}, "
            f"things={sum(self.is_thing)}, multi_channels={self.multi_channels}"
        )


def map_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype of segmentation maps for images ``x``: at least float32."""
    return torch.promote_types(x.dtype, torch.float32)


def probabilities(logits: torch.Tensor, kind: str, dim: int = 1, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``sigmoid`` or ``softmax`` of ``logits`` in ``dtype`` with autocast off: the network may
    run in bf16/fp16, its probabilities do not."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        z = logits.to(dtype)
        if kind == "sigmoid":
            return torch.sigmoid(z)
        if kind == "softmax":
            return torch.softmax(z, dim=dim)
        raise ValueError(f"kind must be 'sigmoid' or 'softmax', got {kind!r}")


def check_image_batch(x: torch.Tensor, who: str) -> None:
    """Raise a clear ValueError unless ``x`` is a float (B, 3, H, W) tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{who}: expected images of shape (B, 3, H, W) in [-1, 1], got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{who}: expected a floating-point image tensor, got {x.dtype}")
    if x.shape[2] < 1 or x.shape[3] < 1 or x.shape[0] < 1:
        raise ValueError(f"{who}: empty image batch {tuple(x.shape)}")


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Differentiable bilinear resize (half-pixel centres); a no-op at the same size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def normalise_mass(mass: torch.Tensor, eps: float) -> torch.Tensor:
    """Per-pixel class distribution from non-negative class masses (B, K, H, W).

    ``(mass + eps/K) / (sum_k mass + eps)``: exact normalisation where the model puts mass,
    a drift towards uniform where it puts almost none ("void" pixels), never a 0/0.
    """
    k = mass.shape[1]
    return (mass + eps / k) / (mass.sum(dim=1, keepdim=True) + eps)


def round_up(n: int, multiple: int) -> int:
    return max(multiple, -(-n // multiple) * multiple)
