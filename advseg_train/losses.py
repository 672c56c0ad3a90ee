"""GAN losses and the adversarial segmentation loss (AdvSegLoss, ICIP 2021).

Objective of the generator (paper: L = wg·LG + wb·LB + wm·LM)::

    L_G_total = wg · LG  +  lambda_seg · (wb · LB + wm · LM)

``LG`` is the baseline GAN objective (CycleGAN: GAN + cycle + identity; Pix2Pix: GAN + L1),
``LB`` / ``LM`` the generator-side GAN losses of the binary / multi-class segmentation
discriminators (D_B, D_M). The official code scales the segmentation terms by λ_Seg (10 CycleGAN,
100 Pix2Pix; official-behaviour.md §3-4) with wg = wb = wm = 1; ``lambda_seg`` keeps both readings.

Gradient modes (official-behaviour.md §6): ``soft``: the segmenter runs with autograd on
``fake_B`` and its class probabilities are the maps, so LB / LM train the generator (only the
discriminators' parameters are frozen during the G step). ``hard``: the released behaviour,
one-hot maps under ``no_grad``; the generator's gradient is bit-identical to ``lambda_seg = 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .segmentation import maps as seg_maps
from .segmentation.base import Segmenter, map_dtype

__all__ = ["GANLoss", "AdvSegLoss", "HEADS"]

#: Segmentation discriminator heads and the variants that use them.
HEADS: dict[str, tuple[str, ...]] = {
    "none": (),
    "binary": ("binary",),
    "multi": ("multi",),
    "both": ("binary", "multi"),
}


class GANLoss(nn.Module):
    """Official GANLoss: target 1/0 expanded to the prediction; ``lsgan`` = MSE on raw scores,
    ``vanilla`` = BCE on the discriminator's *logits* (``binary_cross_entropy_with_logits``:
    the official sigmoid + BCE as one function, which stays finite where a patch saturates, so a
    shared fp16 GradScaler is never halved by an inf). Computed in float32 outside autocast."""

    def __init__(self, mode: str = "lsgan") -> None:
        super().__init__()
        if mode not in ("lsgan", "vanilla"):
            raise ValueError(f"gan mode must be 'lsgan' or 'vanilla', got {mode!r}")
        self.mode = mode

    def forward(self, pred: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred = pred.float()
            target = torch.full_like(pred, 1.0 if target_is_real else 0.0)
            if self.mode == "lsgan":
                return F.mse_loss(pred, target)
            return F.binary_cross_entropy_with_logits(pred, target)


class AdvSegLoss(nn.Module):
    """Frozen segmenter + map making + the segmentation discriminators' losses.

    The discriminators themselves live with the model (they are trained, checkpointed and
    maybe wrapped in DDP there); the loss functions take them as callables by head name
    (``"binary"``, ``"multi"``).

    Args:
        segmenter: a frozen :class:`advseg_train.segmentation.Segmenter`.
        variant: ``none`` | ``binary`` | ``multi`` | ``both``.
        grad: ``soft`` | ``hard`` (see the module docstring).
        gan_loss: the model's :class:`GANLoss`.
        cond_nc: channels of the image the discriminators are conditioned on (Pix2Pix: 3, the
            official code concatenates ``real_B``), 0 for CycleGAN.
    """

    def __init__(
        self,
        segmenter: Segmenter | None,
        variant: str = "both",
        grad: str = "soft",
        gan_loss: GANLoss | None = None,
        cond_nc: int = 0,
        wb: float = 1.0,
        wm: float = 1.0,
        lambda_seg: float = 1.0,
    ) -> None:
        super().__init__()
        if variant not in HEADS:
            raise ValueError(f"seg variant must be one of {', '.join(HEADS)}, got {variant!r}")
        if grad not in seg_maps.MODES:
            raise ValueError(f"seg grad must be one of {', '.join(seg_maps.MODES)}, got {grad!r}")
        if HEADS[variant] and segmenter is None:
            raise ValueError(f"seg variant {variant!r} needs a segmenter")
        self.segmenter = segmenter
        self.variant = variant
        self.grad = grad
        self.gan_loss = gan_loss or GANLoss("lsgan")
        self.cond_nc = int(cond_nc)
        self.weights = {"binary": float(wb), "multi": float(wm)}
        self.lambda_seg = float(lambda_seg)

    @property
    def heads(self) -> tuple[str, ...]:
        return HEADS[self.variant]

    def input_channels(self, head: str) -> int:
        """Input channels of the discriminator of ``head`` (map channels + condition)."""
        if head == "binary":
            return seg_maps.binary_channels(self.segmenter) + self.cond_nc
        if head == "multi":
            assert self.segmenter is not None  # checked in __init__
            return seg_maps.multi_channels(self.segmenter) + self.cond_nc
        raise ValueError(f"unknown segmentation head {head!r}")

    # ------------------------------------------------------------------ maps
    def maps(self, images: torch.Tensor, differentiable: bool) -> dict[str, torch.Tensor]:
        """Maps of every active head for ``images`` in [-1, 1].

        ``differentiable`` asks for a graph to ``images`` (only honoured in soft mode; hard maps
        never carry one, as officially)."""
        if not self.heads:
            return {}
        seg = self.segmenter
        assert seg is not None  # checked in __init__: a variant with heads has a segmenter
        if self.grad == "hard":
            with torch.no_grad():
                labels = seg.labels(images)
                out = {}
                if "binary" in self.heads:
                    out["binary"] = seg_maps.binary_map(labels, seg.is_thing, "hard")
                if "multi" in self.heads:
                    out["multi"] = seg_maps.multi_map(labels, seg, "hard")
                dtype = map_dtype(images)
                return {k: v.to(dtype) for k, v in out.items()}
        with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
            probs = seg(images)
            out = {}
            if "binary" in self.heads:
                out["binary"] = seg_maps.binary_map(probs, seg.is_thing, "soft")
            if "multi" in self.heads:
                out["multi"] = seg_maps.multi_map(probs, seg, "soft")
            return out

    def d_input(self, seg_map: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if self.cond_nc:
            if cond is None:
                raise ValueError("conditional segmentation discriminators need the condition image")
            return torch.cat([cond.to(seg_map.dtype), seg_map], 1)
        return seg_map

    # ---------------------------------------------------------------- losses
    def generator_losses(
        self,
        fake_maps: Mapping[str, torch.Tensor],
        discriminators: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
        cond: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Unweighted G-side losses per head: ``GAN(D(map(fake_B)), real)``."""
        return {h: self.gan_loss(discriminators[h](self.d_input(fake_maps[h], cond)), True) for h in self.heads}

    def weighted(self, g_losses: Mapping[str, torch.Tensor]) -> torch.Tensor | float:
        """``lambda_seg · (wb·LB + wm·LM)`` over the active heads (0.0 for ``none``)."""
        total: torch.Tensor | float = 0.0
        for h, loss in g_losses.items():
            total = total + self.lambda_seg * self.weights[h] * loss
        return total

    def discriminator_losses(
        self,
        real_maps: Mapping[str, torch.Tensor],
        fake_maps: Mapping[str, torch.Tensor],
        discriminators: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
        cond: torch.Tensor | None = None,
        fake_cond: torch.Tensor | None = None,
        fake_first: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Official D loss per head: ``0.5·(GAN(D(real), 1) + GAN(D(fake.detach()), 0))``."""
        fake_cond = cond if fake_cond is None else fake_cond
        out = {}
        for h in self.heads:
            d = discriminators[h]
            fake_in = self.d_input(fake_maps[h].detach(), fake_cond).detach()
            real_in = self.d_input(real_maps[h], cond)
            if fake_first:  # official Pix2Pix order (matters only for BatchNorm running stats)
                loss_fake = self.gan_loss(d(fake_in), False)
                loss_real = self.gan_loss(d(real_in), True)
            else:  # official CycleGAN order
                loss_real = self.gan_loss(d(real_in), True)
                loss_fake = self.gan_loss(d(fake_in), False)
            out[h] = 0.5 * (loss_real + loss_fake)
        return out
