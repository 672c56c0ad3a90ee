"""Strided ``ConvTranspose2d`` rewritten as a sub-pixel convolution for export.

A transposed convolution with stride ``s`` whose output is exactly ``s`` times its input
(``K - 2p + output_padding == s``, true for every up-sampling layer in our generators: U-Net
``k4 s2 p1`` and ResNet ``k3 s2 p1 op1``) splits into ``s*s`` output phases. Phase ``(a, b)`` (the
output pixels at ``(s*m + a, s*n + b)``) is an ordinary correlation of the input with a subset of
the kernel taps. This module computes the phases as ordinary convolutions and interleaves them
with ``pixel_shuffle`` (ONNX ``DepthToSpace``): the same function up to float summation order.

Why: ONNX Runtime's CPU ``ConvTranspose`` kernel is a GEMM followed by col2im, about 2.5x slower
per FLOP than its ``Conv`` (64 % of the fp32 graph's time on unet_256 at 256²), and its int8
quantiser has no ``ConvTranspose`` kernel. As ``Conv`` those layers run on the fast path and
quantise too. The two layouts are described at :class:`SubPixelConvTranspose2d`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SUBPIXEL_LAYOUTS", "SubPixelConvTranspose2d", "subpixel_conv_transposes", "supports_subpixel"]

SUBPIXEL_LAYOUTS = ("phases", "fused")


def supports_subpixel(deconv: nn.ConvTranspose2d) -> bool:
    """True when ``deconv`` is a plain 2-D transposed conv whose output is exactly ``stride`` x its
    input: groups 1, dilation 1, zero padding mode, ``K - 2p + output_padding == stride``."""
    if not isinstance(deconv, nn.ConvTranspose2d) or deconv.groups != 1 or deconv.padding_mode != "zeros":
        return False
    if tuple(deconv.dilation) != (1, 1) or not isinstance(deconv.padding, tuple):
        return False
    return all(
        k - 2 * p + op == s and s >= 1
        for k, p, op, s in zip(deconv.kernel_size, deconv.padding, deconv.output_padding, deconv.stride)
    )


def _phase_taps(kernel: int, stride: int, padding: int) -> list[list[tuple[int, int]]]:
    """For each output phase ``a``: the ``(kernel index k, input offset d)`` pairs with
    ``y[s*m + a] += w[k] * x[m + d]``."""
    phases = []
    for a in range(stride):
        phases.append([(k, (a + padding - k) // stride) for k in range(kernel) if (k - a - padding) % stride == 0])
    return phases


class SubPixelConvTranspose2d(nn.Module):
    """The same function as the given ``ConvTranspose2d`` (see :func:`supports_subpixel`), built
    from ``Conv2d`` + ``pixel_shuffle``; ``layout`` is ``"phases"`` or ``"fused"``.

    ``"phases"`` runs one conv per phase, each with only its own taps, so the FLOPs equal the
    transposed conv's. ``"fused"`` runs one conv that writes all phases: it has zero taps where a
    phase has none (2.25x the FLOPs for k4 s2 p1), but it is a single big GEMM.
    """

    def __init__(self, deconv: nn.ConvTranspose2d, layout: str = "phases"):
        super().__init__()
        if layout not in SUBPIXEL_LAYOUTS:
            raise ValueError(f"layout must be one of {list(SUBPIXEL_LAYOUTS)}, got {layout!r}")
        if not supports_subpixel(deconv):
            raise ValueError(
                f"{deconv} cannot be written as a sub-pixel convolution (needs groups=1, dilation=1, "
                "zero padding and K - 2*padding + output_padding == stride)"
            )
        self.layout = layout
        self.stride = int(deconv.stride[0])
        if deconv.stride[0] != deconv.stride[1]:
            raise ValueError(f"{deconv}: only equal strides along H and W are supported")
        w = deconv.weight.detach()  # (Cin, Cout, kh, kw)
        cin, cout = w.shape[0], w.shape[1]
        taps_h = _phase_taps(deconv.kernel_size[0], self.stride, int(deconv.padding[0]))
        taps_w = _phase_taps(deconv.kernel_size[1], self.stride, int(deconv.padding[1]))
        offs_h = [d for ph in taps_h for _, d in ph]
        offs_w = [d for ph in taps_w for _, d in ph]
        lo_h, hi_h, lo_w, hi_w = min(offs_h), max(offs_h), min(offs_w), max(offs_w)
        # F.pad order: (left, right, top, bottom); offsets d in [lo, hi] read x[m + d]
        self.pad = (max(0, -lo_w), max(0, hi_w), max(0, -lo_h), max(0, hi_h))
        base_h, base_w = -self.pad[2], -self.pad[0]  # offset read by padded index 0
        bias = deconv.bias.detach() if deconv.bias is not None else None
        s = self.stride
        if layout == "fused":
            th, tw = hi_h - base_h + 1, hi_w - base_w + 1
            fused = torch.zeros(cout, s, s, cin, th, tw, dtype=w.dtype)
            for a, ph in enumerate(taps_h):
                for b, pw in enumerate(taps_w):
                    for kh, dh in ph:
                        for kw, dw in pw:
                            fused[:, a, b, :, dh - base_h, dw - base_w] = w[:, :, kh, kw].t()
            self.conv = nn.Conv2d(cin, cout * s * s, (th, tw), bias=bias is not None)
            self.conv.weight.data.copy_(fused.reshape(cout * s * s, cin, th, tw))
            if bias is not None and self.conv.bias is not None:
                self.conv.bias.data.copy_(bias.repeat_interleave(s * s))
            self.crops = None
        else:
            convs, crops = [], []
            for ph in taps_h:
                for pw in taps_w:
                    dmin_h, dmax_h = min(d for _, d in ph), max(d for _, d in ph)
                    dmin_w, dmax_w = min(d for _, d in pw), max(d for _, d in pw)
                    th, tw = dmax_h - dmin_h + 1, dmax_w - dmin_w + 1
                    pw_ = torch.zeros(cout, cin, th, tw, dtype=w.dtype)
                    for kh, dh in ph:
                        for kw, dw in pw:
                            pw_[:, :, dh - dmin_h, dw - dmin_w] = w[:, :, kh, kw].t()
                    conv = nn.Conv2d(cin, cout, (th, tw), bias=bias is not None)
                    conv.weight.data.copy_(pw_)
                    if bias is not None and conv.bias is not None:
                        conv.bias.data.copy_(bias)
                    convs.append(conv)
                    # rows of the padded input this phase reads start at dmin - base
                    crops.append((dmin_h - base_h, dmin_w - base_w, th, tw))
            self.convs = nn.ModuleList(convs)
            self.crops = crops

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        xp = F.pad(x, self.pad) if any(self.pad) else x
        s = self.stride
        if self.crops is None:
            return F.pixel_shuffle(self.conv(xp), s)
        outs = []
        for conv, (r0, c0, th, tw) in zip(self.convs, self.crops):
            outs.append(conv(xp[:, :, r0 : r0 + h + th - 1, c0 : c0 + w + tw - 1]))
        y = torch.stack(outs, dim=2)  # (N, Cout, s*s, H, W): channel c*s*s + a*s + b after reshape
        return F.pixel_shuffle(y.flatten(1, 2), s)


def subpixel_conv_transposes(module: nn.Module, layout: str = "phases") -> tuple[nn.Module, int]:
    """A deep copy of ``module`` with every supported ``ConvTranspose2d`` replaced by
    :class:`SubPixelConvTranspose2d`; returns ``(copy, count)``. ``module`` is not changed."""
    out = copy.deepcopy(module)
    count = 0
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ConvTranspose2d) and supports_subpixel(child):
                setattr(parent, name, SubPixelConvTranspose2d(child, layout))
                count += 1
    return out, count
