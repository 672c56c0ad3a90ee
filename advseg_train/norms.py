"""The norm layers the generators and discriminators are built with."""

from __future__ import annotations

from torch import nn

from .archs import NORMS

__all__ = ["make_norm"]


def make_norm(norm: str, channels: int) -> nn.Module:
    """The norm layer for ``norm`` in {"instance", "batch", "none"}."""
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"norm={norm!r} is not supported; choose one of {list(NORMS)}")
