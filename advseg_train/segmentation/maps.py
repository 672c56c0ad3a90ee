"""Segmentation maps fed to the segmentation discriminators (D_B binary, D_M multi-class).

Modes: ``"soft"`` (default in advseg): differentiable maps built from the class probabilities,
so the generator receives the segmentation loss's gradient; ``"hard"`` (the released code):
one-hot 0/1 maps under ``no_grad``, no gradient to the generator (official-behaviour.md §6).

Channel layouts (official-behaviour.md §5), the same in both modes: binary, 3 channels
``[0, things, stuff]`` (for a fg/bg segmenter such as ISNet ``[0, P(fg), P(bg)]``); multi-class,
``segmenter.multi_channels`` channels, class ``c`` at ``segmenter.multi_index[c]``: the official
135-channel map for the 133 COCO-panoptic classes (things at 1..80, stuff at 82..134), else
``[0, class 0, class 1, ...]``. Channel 0 is always empty (the official code never writes it).

Inputs: ``probs`` (B, C, H, W) floating point from ``segmenter(x)``, or (hard mode only)
integer labels (B, H, W) from ``segmenter.labels(x)`` (-1 = unassigned).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import torch

Mode = Literal["soft", "hard"]
MODES: tuple[str, ...] = ("soft", "hard")
BINARY_CHANNELS = 3


class _Layout(Protocol):
    is_thing: list[bool]
    multi_index: tuple[int, ...]
    multi_channels: int


def binary_channels(seg: _Layout | None = None) -> int:  # noqa: ARG001 - always 3
    """Input channels of the binary discriminator: always 3 (``[0, things, stuff]``)."""
    return BINARY_CHANNELS


def multi_channels(seg: _Layout) -> int:
    """Input channels of the multi-class discriminator for segmenter ``seg``."""
    return int(seg.multi_channels)


def binary_map(
    probs: torch.Tensor,
    is_thing: Sequence[bool],
    mode: Mode = "soft",
    *,
    stuff_area_limit: int | None = None,
) -> torch.Tensor:
    """(B, 3, H, W) map ``[0, things, stuff]`` from probabilities or (hard mode) labels."""
    _check_mode(mode)
    flags = _flags(is_thing)
    if mode == "soft":
        p = _check_probs(probs, len(flags), "binary_map")
        thing = flags.to(p.device)
        things = (p * thing.to(p.dtype).view(1, -1, 1, 1)).sum(dim=1, keepdim=True)
        stuff = (p * (~thing).to(p.dtype).view(1, -1, 1, 1)).sum(dim=1, keepdim=True)
        return torch.cat([torch.zeros_like(things), things, stuff], dim=1)
    with torch.no_grad():
        labels, dtype = _hard_labels(probs, flags, stuff_area_limit, "binary_map")
        valid = labels >= 0
        thing_px = flags.to(labels.device)[labels.clamp(min=0)] & valid
        stuff_px = ~thing_px & valid
        zero = torch.zeros_like(thing_px)
        return torch.stack([zero, thing_px, stuff_px], dim=1).to(dtype)


def multi_map(
    probs: torch.Tensor,
    seg: _Layout,
    mode: Mode = "soft",
    *,
    stuff_area_limit: int | None = None,
) -> torch.Tensor:
    """(B, seg.multi_channels, H, W) multi-class map (official 135-ch layout for COCO)."""
    _check_mode(mode)
    flags = _flags(seg.is_thing)
    index = torch.as_tensor(seg.multi_index, dtype=torch.long)
    n_out = int(seg.multi_channels)
    if mode == "soft":
        p = _check_probs(probs, len(flags), "multi_map")
        # source class (+1) of each output channel; 0 selects an all-zero plane
        src = torch.zeros(n_out, dtype=torch.long)
        src[index] = torch.arange(1, len(flags) + 1)
        padded = torch.cat([torch.zeros_like(p[:, :1]), p], dim=1)
        return padded.index_select(1, src.to(p.device))
    with torch.no_grad():
        labels, dtype = _hard_labels(probs, flags, stuff_area_limit, "multi_map")
        # unassigned pixels go to an extra channel n_out that is cut off afterwards
        lut = torch.cat([index, torch.tensor([n_out])]).to(labels.device)
        chan = lut[torch.where(labels >= 0, labels, len(flags))]
        b, h, w = labels.shape
        out = torch.zeros(b, n_out + 1, h, w, dtype=dtype, device=labels.device)
        out.scatter_(1, chan.unsqueeze(1), 1.0)
        return out[:, :n_out]


def hard_labels(
    probs: torch.Tensor,
    is_thing: Sequence[bool] | None = None,
    stuff_area_limit: int | None = None,
) -> torch.Tensor:
    """Argmax labels (B, H, W) int64; stuff classes covering fewer than ``stuff_area_limit``
    pixels of an image become -1 (detectron2's panoptic combine rule).

    detectron2 drops stuff regions smaller than ``STUFF_AREA_LIMIT`` (4096 px): its backend's
    ``labels()`` does that itself; for other backends pass ``stuff_area_limit=4096`` to mimic it
    (off by default). In hard maps, pixels of no segment (label -1) are 0 in every channel, and
    channel 81 of the COCO map stays empty (detectron2's stuff label 0 is "things", never emitted).
    """
    with torch.no_grad():
        labels = probs.detach().argmax(dim=1)
        if stuff_area_limit:
            if is_thing is None:
                raise ValueError("hard_labels: stuff_area_limit needs is_thing")
            labels = _drop_small_stuff(labels, _flags(is_thing), int(stuff_area_limit))
        return labels


# ----------------------------------------------------------------- helpers
def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"segmentation map mode must be one of {MODES}, got {mode!r}")


def _flags(is_thing: Sequence[bool] | torch.Tensor) -> torch.Tensor:
    flags = torch.as_tensor([bool(t) for t in is_thing], dtype=torch.bool)
    if flags.ndim != 1 or flags.numel() < 2:
        raise ValueError("is_thing must list at least 2 classes")
    return flags


def _check_probs(probs: torch.Tensor, n_classes: int, who: str) -> torch.Tensor:
    if not isinstance(probs, torch.Tensor) or not probs.is_floating_point():
        raise ValueError(
            f"{who}: soft mode needs floating-point probabilities (B, C, H, W); "
            "integer labels are only accepted in hard mode"
        )
    if probs.ndim != 4 or probs.shape[1] != n_classes:
        raise ValueError(f"{who}: expected probabilities of shape (B, {n_classes}, H, W), got {tuple(probs.shape)}")
    return probs


def _hard_labels(
    probs: torch.Tensor, flags: torch.Tensor, stuff_area_limit: int | None, who: str
) -> tuple[torch.Tensor, torch.dtype]:
    n = flags.numel()
    if not probs.is_floating_point():
        if probs.ndim != 3:
            raise ValueError(f"{who}: expected labels of shape (B, H, W), got {tuple(probs.shape)}")
        labels = probs.long()
        if labels.numel() and (int(labels.max()) >= n or int(labels.min()) < -1):
            raise ValueError(f"{who}: labels must lie in -1..{n - 1}")
        if stuff_area_limit:
            labels = _drop_small_stuff(labels, flags, int(stuff_area_limit))
        return labels, torch.float32
    _check_probs(probs, n, who)
    return hard_labels(probs, flags.tolist(), stuff_area_limit), probs.dtype


def _drop_small_stuff(labels: torch.Tensor, flags: torch.Tensor, limit: int) -> torch.Tensor:
    n = flags.numel()
    b = labels.shape[0]
    flat = labels.reshape(b, -1)
    valid = flat >= 0
    offs = torch.arange(b, device=labels.device).unsqueeze(1) * n
    counts = torch.bincount((flat.clamp(min=0) + offs)[valid], minlength=b * n).view(b, n)
    small = (counts < limit) & ~flags.to(labels.device).unsqueeze(0)
    drop = torch.gather(small, 1, flat.clamp(min=0)) & valid
    return torch.where(drop, torch.full_like(flat, -1), flat).view_as(labels)
