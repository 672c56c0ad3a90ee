"""The training smoke check: a few steps of one scheme × amp × segmentation variant × gradient
mode, with finite losses, and the gradient property of the segmentation term (*soft* maps send the
generator a finite, non-zero gradient; *hard* maps exactly none).

The GPU driver runs it over the whole matrix (``train_smoke``), and ``tests/test_gpu_smoke.py``
runs it as pytest tests marked ``gpu`` (skipped without CUDA), which the driver also runs on the
GPU machine."""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["SmokeCase", "smoke_cfg", "smoke_one", "seg_gradient"]


@dataclass(frozen=True)
class SmokeCase:
    """One combination of the smoke matrix and the sizes it runs at."""

    kind: str  # pix2pix | cycle_gan
    amp: str  # off | bf16 | fp16
    variant: str  # binary | multi
    grad: str  # soft | hard
    ngf: int
    size: int
    load: int
    device: str
    steps: int


def smoke_cfg(case: SmokeCase, seg_overrides: Sequence[str]):
    """The official preset of ``case.kind`` at the case's sizes, amp and segmentation settings."""
    from advseg_train.config import resolve_config

    preset = "official-pix2pix" if case.kind == "pix2pix" else "official-cyclegan"
    return resolve_config(
        preset=preset,
        overrides=[
            f"model.ngf={case.ngf}",
            f"model.ndf={case.ngf}",
            "data.root=unused",
            f"seg.variant={case.variant}",
            f"seg.grad={case.grad}",
            f"run.amp='{case.amp}'",
            f"run.device={case.device}",
            f"data.crop_size={case.size}",
            f"data.load_size={case.load}",
            *seg_overrides,
        ],
    )


def smoke_one(
    case: SmokeCase, seg: Any, A: Any, B: Any, seg_overrides: Sequence[str], log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Train ``case.steps`` steps on the (sketch, photo) pairs ``A``, ``B``; the losses, whether
    they stayed finite, the segmentation gradient and whether its property holds (``passed``)."""
    import torch

    from advseg_train.models import build_model
    from advseg_train.trainer import resolve_device

    kind, amp, variant, grad = case.kind, case.amp, case.variant, case.grad
    res: dict[str, Any] = {"kind": kind, "amp": amp, "variant": variant, "grad": grad}
    t0 = time.monotonic()
    try:
        cfg = smoke_cfg(case, seg_overrides)
        device = resolve_device(case.device)
        torch.manual_seed(0)
        model = build_model(cfg, segmenter=seg, device=device)
        model.train()
        losses: dict[str, float] = {}
        finite = True
        for i in range(case.steps):
            j = i % A.shape[0]
            terms = model.train_step({"A": A[j : j + 1], "B": B[j : j + 1]})
            losses = {k: float(v) for k, v in terms.items()}
            finite = finite and all(math.isfinite(v) for v in losses.values())
        res["losses"] = {k: round(v, 5) for k, v in losses.items()}
        res["finite"] = finite
        if model.scaler.is_enabled():
            res["grad_scale"] = float(model.scaler.get_scale())
        res.update(seg_gradient(model, A[:1], B[:1]))
        ok_grad = (res["seg_grad_norm"] > 0 and res["seg_grad_finite"]) if grad == "soft" else res["seg_grad_norm"] == 0
        res["gradient_property"] = "holds" if ok_grad else "VIOLATED"
        res["passed"] = bool(finite and ok_grad)
    except Exception as exc:
        res.update(passed=False, error=f"{type(exc).__name__}: {exc}"[:400])
        log(traceback.format_exc())
    res["seconds"] = round(time.monotonic() - t0, 2)
    log(
        f"   smoke {kind} {amp} {variant} {grad}: {'ok' if res['passed'] else 'FAILED'} "
        f"({res.get('error') or res.get('gradient_property')}) {res['seconds']} s"
    )
    return res


def seg_gradient(model, A, B) -> dict[str, Any]:
    """Norm of the gradient the weighted segmentation term alone sends to the generator(s).

    Soft maps: finite and non-zero. Hard maps: exactly none (the term does not depend on G at
    all; this holds bit-exactly whatever the kernels' determinism). Scaled like the fp16
    GradScaler so half-precision gradients do not underflow."""
    import torch

    real_A, real_B = model._to_device(A), model._to_device(B)
    out = model.forward(real_A, real_B)
    _, t = model.generator_losses(real_A, real_B, out)
    heads = model.adv_seg.heads
    seg = model.adv_seg.weighted({h: t[f"G_seg_{h}"] for h in heads})
    gens = [n for n in ("G_A", "G_B", "G") if n in model.nets]
    params = [q for n in gens for q in model.nets[n].parameters()]
    if not isinstance(seg, torch.Tensor) or not seg.requires_grad:
        return {"seg_loss": float(seg), "seg_grad_norm": 0.0, "seg_grad_finite": True}
    scale = float(model.scaler.get_scale()) if model.scaler.is_enabled() else 1.0
    grads = torch.autograd.grad(seg * scale, params, allow_unused=True)
    sq = sum(float(g.float().pow(2).sum()) for g in grads if g is not None)
    norm = math.sqrt(sq) / scale if math.isfinite(sq) else float("inf")
    return {"seg_loss": round(float(seg.detach()), 5), "seg_grad_norm": norm, "seg_grad_finite": math.isfinite(norm)}
