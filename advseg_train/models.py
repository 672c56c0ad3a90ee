"""CycleGAN and Pix2Pix training models with the adversarial segmentation loss.

Step order, losses, pools and optimisers follow the official AdvSegLoss code
(``docs/official-behaviour.md`` §3 CycleGAN, §4 Pix2Pix):

* CycleGAN: forward (fake_B, rec_A, fake_A, rec_B; segment fake_B and real_B) → G step with
  every D frozen (identity, GAN, cycle, segmentation terms) → D_A, D_B, D_seg step.
* Pix2Pix: forward (fake_B; segment fake_B and real_B) → D and D_seg step (conditional on
  real_A, segmentation Ds on real_B) → G step with every D frozen (GAN + L1 + segmentation).

The deliberate differences from the official code are listed at :class:`GANModel`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .archs import GENERATORS
from .colour_losses import PerceptualLoss, chroma_loss
from .config import TrainConfig
from .image_pool import ImagePool
from .losses import AdvSegLoss, GANLoss
from .networks import (
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    build_discriminator,
    build_generator,
    load_pretrained_encoder,
)
from .segmentation.base import Segmenter

__all__ = ["NonFiniteLossError", "GANModel", "CycleGANModel", "Pix2PixModel", "build_model", "ddp_buffer_kwargs"]


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or Inf; ``terms`` holds the offending names and values."""

    def __init__(self, terms: Mapping[str, float], phase: str) -> None:
        self.terms = dict(terms)
        self.phase = phase
        listing = ", ".join(f"{k}={v}" for k, v in self.terms.items())
        super().__init__(f"non-finite loss in the {phase} step: {listing}")


def ddp_buffer_kwargs() -> dict[str, Any]:
    """DDP keyword that turns off the per-forward buffer broadcast (``forward_sync_buffers`` where
    this torch has it, else ``broadcast_buffers``)."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    params = inspect.signature(DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}


def set_requires_grad(nets: Iterable[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def _check_finite(terms: Mapping[str, torch.Tensor], phase: str) -> None:
    values = torch.stack([t.detach().float().reshape(()) for t in terms.values()])
    bad = (~torch.isfinite(values)).any().float()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)  # every rank stops together (no DDP hang)
    if bool(bad):
        if bool(torch.isfinite(values).all()):
            raise NonFiniteLossError({"(another rank)": float("nan")}, phase)
        bad_terms = {k: float(v) for k, v in zip(terms, values.tolist(), strict=True) if not math.isfinite(v)}
        raise NonFiniteLossError(bad_terms, phase)


class GANModel(nn.Module):
    """Shared machinery: networks, optimisers, schedules, pools, AMP, DDP/compile wrappers.

    Deliberate, documented differences from the official code:

    * Segmentation maps can be soft (``seg.grad="soft"``, default): the generator gets their
      gradient. ``"hard"`` is the released behaviour (no gradient; official-behaviour.md §6).
    * The segmentation discriminators draw their history from one pool of generated *images*
      (the maps are recomputed from a drawn image; the segmenter is frozen and deterministic, so
      this equals pooling maps), instead of two pools of 135-channel maps. Pools use their own RNG.
    * Each loss is checked for NaN/Inf before any optimiser step that would use it
      (:class:`NonFiniteLossError`). CycleGAN therefore evaluates the D losses before the G
      update, which computes exactly what the official order does (the D losses depend neither on
      the G update nor on each other). In Pix2Pix the G loss needs the updated D, so a non-finite
      G loss found after a finite D loss leaves that D update applied.
    """

    generator_name = "G"
    optimizer_groups: dict[str, tuple[str, ...]] = {}

    def __init__(self, cfg: TrainConfig, segmenter: Segmenter | None, device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.cfg = cfg
        self.device = torch.device(device)
        m = cfg.model
        self.gan_loss = GANLoss(m.gan_mode)
        self.nets = nn.ModuleDict()
        self.adv_seg = AdvSegLoss(
            segmenter if cfg.seg.variant != "none" else None,
            variant=cfg.seg.variant,
            grad=cfg.seg.grad,
            gan_loss=self.gan_loss,
            cond_nc=self.seg_cond_nc,
            wb=cfg.seg.wb,
            wm=cfg.seg.wm,
            lambda_seg=cfg.seg.lambda_seg,
        )
        self.build_networks()
        for head in self.adv_seg.heads:
            self.nets[f"D_seg_{head}"] = self._discriminator(self.adv_seg.input_channels(head))
        self.seg_heads = {h: f"D_seg_{h}" for h in self.adv_seg.heads}
        self.to(self.device)
        if cfg.run.channels_last:
            self.nets.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub lacks it
        o = cfg.optim
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        for name, members in self.optimizer_groups.items():
            if name == "D_seg":
                members = tuple(self.seg_heads.values())
            params = [p for n in members for p in self.nets[n].parameters()]
            if params:
                self.optimizers[name] = torch.optim.Adam(params, lr=o.lr, betas=(o.beta1, o.beta2))
        self.schedulers = {
            name: torch.optim.lr_scheduler.LambdaLR(opt, self._lr_rule) for name, opt in self.optimizers.items()
        }
        amp = cfg.run.amp
        if amp == "fp16" and self.device.type != "cuda":
            raise ValueError(f"run.amp=fp16 needs a CUDA device (got {self.device}); use bf16 or off on CPU")
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16")
        self.pools = {
            name: ImagePool(self._pool_size(name), seed=cfg.run.seed * 1000 + i)
            for i, name in enumerate(self.pool_names)
        }
        self._hints: torch.Tensor | None = None  # the current batch's colour hints (Pix2Pix with hint_nc)
        self._call: dict[str, Callable] = {}  # trained-network calls (maybe DDP/compiled)
        self._frozen_call: dict[str, Callable] = {}  # calls of frozen Ds in the G step
        self.wrap()

    # ----------------------------------------------------------- construction
    pool_names: tuple[str, ...] = ()

    @property
    def seg_cond_nc(self) -> int:
        """Channels the segmentation discriminators are conditioned on besides the map (0: none)."""
        return 0

    def build_networks(self) -> None:
        raise NotImplementedError

    def _pool_size(self, name: str) -> int:
        return self.cfg.loss.pool_size

    def _generator(self, input_nc: int, output_nc: int, hint_nc: int = 0) -> nn.Module:
        m = self.cfg.model
        gcfg = GeneratorConfig(
            arch=m.netG,
            input_nc=input_nc,
            output_nc=output_nc,
            ngf=m.ngf,
            norm=m.norm,
            use_dropout=m.use_dropout,
            hint_nc=hint_nc,
        )
        net = build_generator(gcfg, init_type=m.init_type, init_gain=m.init_gain)
        asset = GENERATORS[m.netG].pretrained_encoder
        if asset and m.pretrained_encoder:
            from advseg_sdk.assets import asset_path

            load_pretrained_encoder(net, asset_path(asset))
        return net

    def _discriminator(self, input_nc: int) -> nn.Module:
        m = self.cfg.model
        # no sigmoid even for vanilla GANs: the loss takes logits (BCE-with-logits is the official
        # sigmoid + BCE without its saturation), and a training D is never exported
        dcfg = DiscriminatorConfig(
            arch=m.netD, input_nc=input_nc, ndf=m.ndf, n_layers=m.n_layers_D, norm=m.norm, use_sigmoid=False
        )
        return build_discriminator(dcfg, init_type=m.init_type, init_gain=m.init_gain)

    def _lr_rule(self, e: int) -> float:
        o = self.cfg.optim
        if o.lr_policy == "constant":
            return 1.0
        return 1.0 - max(0, e + o.epoch_count - o.niter) / float(o.niter_decay + 1)

    def wrap(self, ddp: bool = False, compile: bool = False, device_ids: list[int] | None = None) -> None:
        """Set how networks are called: plain, DDP-wrapped and/or ``torch.compile``d.

        Only generators are compiled: they hold most of the arithmetic and see one input layout.
        Discriminators stay eager: each is called with and without gradient to its input, frozen
        and unfrozen, on 3- to 135-channel maps, which would recompile them up to dynamo's limit
        and then silently fall back to eager. Discriminators called with frozen parameters in the
        G step use the unwrapped module (DDP would wait for gradients that never come). DDP does
        not broadcast buffers before each forward: a discriminator runs twice before one backward,
        and an in-place broadcast of BatchNorm statistics between the two breaks autograd."""
        compiled: list[str] = []
        for name, net in self.nets.items():
            call: Callable = net
            if ddp:
                from torch.nn.parallel import DistributedDataParallel

                call = DistributedDataParallel(net, device_ids=device_ids, **ddp_buffer_kwargs())
            if compile and name.startswith("G"):
                call = torch.compile(call)
                compiled.append(name)
            self._call[name] = call
            self._frozen_call[name] = net
        eager = [n for n in self.nets if n not in compiled]
        self.compiled = compiled
        self.compile_summary = f"compiled {', '.join(compiled) or 'nothing'}; eager {', '.join(eager) or 'nothing'}" + (
            " (discriminators: varying input grad/channels would recompile)" if compile else ""
        )

    @property
    def generator(self) -> Generator:
        """The sketch→colour generator (A→B)."""
        net = self.nets[self.generator_name]
        assert isinstance(net, Generator)
        return net

    @property
    def discriminator_names(self) -> list[str]:
        return [n for n in self.nets if n.startswith("D")]

    # ----------------------------------------------------------------- helpers
    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.cfg.run.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _seg_calls(self, frozen: bool) -> dict[str, Callable]:
        table = self._frozen_call if frozen else self._call
        return {h: table[n] for h, n in self.seg_heads.items()}

    def _pooled_fake_maps(
        self,
        pool: ImagePool,
        fake: torch.Tensor,
        fake_maps: Mapping[str, torch.Tensor],
        cond: torch.Tensor | None = None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """History for the segmentation Ds: pool ``[cond,] fake`` images, re-segment drawn ones."""
        if not self.adv_seg.heads:
            return {}, cond
        item = fake if cond is None else torch.cat([cond, fake], 1)
        pooled, swapped = pool.query(item)
        if not swapped:
            return {k: v.detach() for k, v in fake_maps.items()}, cond
        pooled_cond = None if cond is None else pooled[:, : cond.shape[1]]
        pooled_fake = pooled if cond is None else pooled[:, cond.shape[1] :]
        with torch.no_grad():
            return self.adv_seg.maps(pooled_fake, differentiable=False), pooled_cond

    def _generator_input(self, real_A: torch.Tensor, hints: torch.Tensor | None) -> torch.Tensor:
        """The sketch, followed by the hint channels if G takes hints (zeros: no hints)."""
        hint_nc = self.generator.config.hint_nc
        if not hint_nc:
            return real_A
        if hints is None:
            hints = real_A.new_zeros(real_A.shape[0], hint_nc, *real_A.shape[2:])
        return torch.cat([real_A, hints.to(real_A.dtype)], 1)

    def _backward_step(self, loss: torch.Tensor, names: Iterable[str]) -> None:
        opts = [self.optimizers[n] for n in names if n in self.optimizers]
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        for opt in opts:
            self.scaler.step(opt)

    def train_step(self, batch: Mapping[str, Any], inject_nan: bool = False) -> dict[str, torch.Tensor]:
        """One iteration (official order); returns the detached loss terms."""
        real_A = self._to_device(batch["A"])
        real_B = self._to_device(batch["B"])
        if inject_nan:  # debug hook: a real NaN through the real forward
            real_A = real_A * float("nan")
        self._hints = self._to_device(batch["H"]) if "H" in batch else None
        terms = self._step(real_A, real_B)
        self.scaler.update()
        return {k: v.detach() for k, v in terms.items()}

    def _step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def discriminator_losses(
        self, real_A: torch.Tensor, real_B: torch.Tensor, out: Mapping[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(total, terms)`` of every discriminator's loss, computed under autocast."""
        t: dict[str, torch.Tensor] = {}
        with self.autocast():
            total = self._discriminator_terms(t, real_A, real_B, out)
        return total, t

    def _discriminator_terms(
        self, t: dict[str, torch.Tensor], real_A: torch.Tensor, real_B: torch.Tensor, out: Mapping[str, Any]
    ) -> torch.Tensor:
        """Put each discriminator's loss into ``t``; return their total."""
        raise NotImplementedError

    def update_learning_rate(self) -> float:
        """Step every schedule (once per epoch, as officially); returns the new lr."""
        for s in self.schedulers.values():
            s.step()
        return self.lr

    @property
    def lr(self) -> float:
        opt = next(iter(self.optimizers.values()))
        return float(opt.param_groups[0]["lr"])

    @torch.no_grad()
    def sample(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images for a sample grid, G in eval mode, RNG untouched: sketch, fake, real (+ maps)."""
        real_A, real_B = self._to_device(real_A), self._to_device(real_B)
        g = self.generator
        was_training = g.training
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type=self.device.type):
            g.eval()
            try:
                with self.autocast():
                    fake_B = g(self._generator_input(real_A, None)).float()
            finally:
                g.train(was_training)
            out = {"sketch": real_A.float(), "fake": fake_B, "real": real_B.float()}
            if self.adv_seg.heads:
                head = "multi" if "multi" in self.adv_seg.heads else "binary"
                with self.autocast():
                    out["seg_real"] = self.adv_seg.maps(real_B, differentiable=False)[head].float()
                    out["seg_fake"] = self.adv_seg.maps(fake_B, differentiable=False)[head].float()
        return out

    # ------------------------------------------------------------------ state
    def train_state(self) -> dict[str, Any]:
        """Everything a resume needs from the model (tensors, numbers, strings only)."""
        return {
            "nets": {n: {k: v.detach().cpu() for k, v in net.state_dict().items()} for n, net in self.nets.items()},
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "pools": {n: p.state_dict() for n, p in self.pools.items()},
        }

    def load_train_state(self, state: Mapping[str, Any]) -> None:
        missing = sorted(set(self.nets) - set(state["nets"]))
        extra = sorted(set(state["nets"]) - set(self.nets))
        if missing or extra:
            raise ValueError(
                f"checkpoint networks do not match the config: missing {missing}, unexpected {extra} "
                "(was it written with another model.kind or seg.variant?)"
            )
        for n, net in self.nets.items():
            net.load_state_dict(state["nets"][n])
        for n, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][n])
        for n, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][n])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        for n, p in self.pools.items():
            p.load_state_dict(state["pools"][n], device=self.device)

    def load_networks(self, state: Mapping[str, Any]) -> list[str]:
        """Load the weights of the networks ``state`` (a :meth:`train_state`) shares with this model;
        optimisers, schedulers and pools are left fresh. Returns the names loaded."""
        shared = sorted(set(self.nets) & set(state["nets"]))
        if not shared:
            raise ValueError(f"the checkpoint holds none of this model's networks ({', '.join(self.nets)})")
        for n in shared:
            self.nets[n].load_state_dict(state["nets"][n])
        return shared

    def snapshot_volatile(self) -> dict[str, Any]:
        """Cheap copy of what a forward changes besides parameters (norm buffers, pools, RNG),
        to restore the last good state when a loss turns out non-finite."""
        return {
            "buffers": {n: {k: b.clone() for k, b in net.named_buffers()} for n, net in self.nets.items()},
            "pools": {n: (list(p.images), p.generator.get_state()) for n, p in self.pools.items()},
        }

    def restore_volatile(self, snap: Mapping[str, Any]) -> None:
        with torch.no_grad():
            for n, net in self.nets.items():
                for k, b in net.named_buffers():
                    b.copy_(snap["buffers"][n][k])
        for n, p in self.pools.items():
            images, rng = snap["pools"][n]
            p.images = list(images)
            p.generator.set_state(rng)


class CycleGANModel(GANModel):
    """Unpaired: G_A (A→B, sketch→colour), G_B, D_A (judges B), D_B (judges A) + D_seg_*."""

    generator_name = "G_A"
    optimizer_groups = {"G": ("G_A", "G_B"), "D": ("D_A", "D_B"), "D_seg": ()}
    pool_names = ("fake_A", "fake_B", "seg")

    def build_networks(self) -> None:
        m = self.cfg.model
        # official creation (and so init RNG) order: G_A, G_B, D_A, D_B, then the seg Ds
        self.nets["G_A"] = self._generator(m.input_nc, m.output_nc)
        self.nets["G_B"] = self._generator(m.output_nc, m.input_nc)
        self.nets["D_A"] = self._discriminator(m.output_nc)
        self.nets["D_B"] = self._discriminator(m.input_nc)

    def forward(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, Any]:
        """fake_B = G_A(A), rec_A = G_B(fake_B), fake_A = G_B(B), rec_B = G_A(fake_A); maps of
        fake_B (with a graph in soft mode) and real_B."""
        c = self._call
        with self.autocast():
            fake_B = c["G_A"](real_A)
            rec_A = c["G_B"](fake_B)
            fake_A = c["G_B"](real_B)
            rec_B = c["G_A"](fake_A)
            fake_maps = self.adv_seg.maps(fake_B, differentiable=True)
            real_maps = self.adv_seg.maps(real_B, differentiable=False)
        return {
            "fake_B": fake_B,
            "rec_A": rec_A,
            "fake_A": fake_A,
            "rec_B": rec_B,
            "fake_maps": fake_maps,
            "real_maps": real_maps,
        }

    def generator_losses(
        self, real_A: torch.Tensor, real_B: torch.Tensor, out: Mapping[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``wg·(identity + GAN + cycle) + lambda_seg·(wb·LB + wm·LM)`` with every D frozen."""
        L = self.cfg.loss
        c, f = self._call, self._frozen_call
        d_nets = [self.nets[n] for n in self.discriminator_names]
        set_requires_grad(d_nets, False)
        t: dict[str, torch.Tensor] = {}
        try:
            with self.autocast():
                if L.lambda_identity > 0:
                    t["idt_A"] = F.l1_loss(c["G_A"](real_B).float(), real_B.float()) * L.lambda_B * L.lambda_identity
                    t["idt_B"] = F.l1_loss(c["G_B"](real_A).float(), real_A.float()) * L.lambda_A * L.lambda_identity
                t["G_A"] = self.gan_loss(f["D_A"](out["fake_B"]), True)
                t["G_B"] = self.gan_loss(f["D_B"](out["fake_A"]), True)
                t["cycle_A"] = F.l1_loss(out["rec_A"].float(), real_A.float()) * L.lambda_A
                t["cycle_B"] = F.l1_loss(out["rec_B"].float(), real_B.float()) * L.lambda_B
                t["G_baseline"] = cast(torch.Tensor, sum(t[k] for k in list(t)))
                seg_g = self.adv_seg.generator_losses(out["fake_maps"], self._seg_calls(frozen=True))
                t.update({f"G_seg_{h}": v for h, v in seg_g.items()})
                t["G_total"] = self.cfg.seg.wg * t["G_baseline"] + self.adv_seg.weighted(seg_g)
        finally:
            set_requires_grad(d_nets, True)
        return t["G_total"], t

    def _discriminator_terms(
        self, t: dict[str, torch.Tensor], real_A: torch.Tensor, real_B: torch.Tensor, out: Mapping[str, Any]
    ) -> torch.Tensor:
        """D_A: real_B vs pooled fake_B; D_B: real_A vs pooled fake_A; D_seg_*: maps."""
        c = self._call
        pooled_B, _ = self.pools["fake_B"].query(out["fake_B"])
        pooled_A, _ = self.pools["fake_A"].query(out["fake_A"])
        t["D_A"] = 0.5 * (self.gan_loss(c["D_A"](real_B), True) + self.gan_loss(c["D_A"](pooled_B), False))
        t["D_B"] = 0.5 * (self.gan_loss(c["D_B"](real_A), True) + self.gan_loss(c["D_B"](pooled_A), False))
        pooled_maps, _ = self._pooled_fake_maps(self.pools["seg"], out["fake_B"], out["fake_maps"])
        seg_d = self.adv_seg.discriminator_losses(out["real_maps"], pooled_maps, self._seg_calls(frozen=False))
        t.update({f"D_seg_{h}": v for h, v in seg_d.items()})
        return t["D_A"] + t["D_B"] + sum(seg_d.values())

    def _step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.forward(real_A, real_B)
        loss_G, t = self.generator_losses(real_A, real_B, out)
        # the D losses depend on neither the G update nor on each other: evaluated before any
        # update so that a non-finite value stops the step with every weight untouched
        loss_D, t_d = self.discriminator_losses(real_A, real_B, out)
        t.update(t_d)
        _check_finite(t, "CycleGAN")
        self._backward_step(loss_G, ["G"])
        self._backward_step(loss_D, ["D", "D_seg"])
        return t


class Pix2PixModel(GANModel):
    """Paired: G (A→B), conditional D on cat(A, B); segmentation Ds on cat(real_B, map)."""

    generator_name = "G"
    optimizer_groups = {"G": ("G",), "D": ("D",), "D_seg": ()}
    pool_names = ("fake_AB", "seg")

    @property
    def seg_cond_nc(self) -> int:  # the official code conditions the seg Ds on real_B
        return self.cfg.model.output_nc

    def build_networks(self) -> None:
        m, loss = self.cfg.model, self.cfg.loss
        self.nets["G"] = self._generator(m.input_nc, m.output_nc, m.hint_nc)
        self.nets["D"] = self._discriminator(m.input_nc + m.output_nc)
        self.perceptual: PerceptualLoss | None = None
        if loss.lambda_perceptual > 0:
            from advseg_sdk.assets import asset_path

            self.perceptual = PerceptualLoss(asset_path("efficientnet-lite0"))

    def forward(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, Any]:
        """fake_B = G(A [+ hints]); maps of fake_B (with a graph in soft mode) and real_B."""
        with self.autocast():
            fake_B = self._call["G"](self._generator_input(real_A, self._hints))
            fake_maps = self.adv_seg.maps(fake_B, differentiable=True)
            real_maps = self.adv_seg.maps(real_B, differentiable=False)
        return {"fake_B": fake_B, "fake_maps": fake_maps, "real_maps": real_maps}

    def _discriminator_terms(
        self, t: dict[str, torch.Tensor], real_A: torch.Tensor, real_B: torch.Tensor, out: Mapping[str, Any]
    ) -> torch.Tensor:
        """D: cat(A, fake_B) (pooled) vs cat(A, B); D_seg_*: cat(B, map(fake_B)) vs cat(B, map(B))."""
        fake_AB, _ = self.pools["fake_AB"].query(torch.cat([real_A, out["fake_B"]], 1))
        loss_fake = self.gan_loss(self._call["D"](fake_AB), False)
        loss_real = self.gan_loss(self._call["D"](torch.cat([real_A, real_B], 1)), True)
        t["D"] = 0.5 * (loss_fake + loss_real)
        pooled_maps, pooled_cond = self._pooled_fake_maps(
            self.pools["seg"], out["fake_B"], out["fake_maps"], cond=real_B
        )
        seg_d = self.adv_seg.discriminator_losses(
            out["real_maps"],
            pooled_maps,
            self._seg_calls(frozen=False),
            cond=real_B,
            fake_cond=pooled_cond,
            fake_first=True,
        )
        t.update({f"D_seg_{h}": v for h, v in seg_d.items()})
        return t["D"] + sum(seg_d.values())

    def generator_losses(
        self, real_A: torch.Tensor, real_B: torch.Tensor, out: Mapping[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``wg·(GAN + L1) + lambda_seg·(wb·LB + wm·LM)`` with every D frozen."""
        f = self._frozen_call
        d_nets = [self.nets[n] for n in self.discriminator_names]
        set_requires_grad(d_nets, False)
        t: dict[str, torch.Tensor] = {}
        try:
            with self.autocast():
                fake_B = out["fake_B"]
                t["G_GAN"] = self.gan_loss(f["D"](torch.cat([real_A, fake_B], 1)), True)
                t["G_L1"] = F.l1_loss(fake_B.float(), real_B.float()) * self.cfg.loss.lambda_L1
                t["G_baseline"] = t["G_GAN"] + t["G_L1"] + self._colour_terms(t, fake_B, real_B)
                seg_g = self.adv_seg.generator_losses(out["fake_maps"], self._seg_calls(frozen=True), cond=real_B)
                t.update({f"G_seg_{h}": v for h, v in seg_g.items()})
                t["G_total"] = self.cfg.seg.wg * t["G_baseline"] + self.adv_seg.weighted(seg_g)
        finally:
            set_requires_grad(d_nets, True)
        return t["G_total"], t

    def _colour_terms(self, t: dict[str, torch.Tensor], fake_B: torch.Tensor, real_B: torch.Tensor) -> torch.Tensor:
        """The optional perceptual and chroma terms (``colour_losses``), put into ``t``; their sum."""
        loss = self.cfg.loss
        total = fake_B.new_zeros((), dtype=torch.float32)
        if self.perceptual is not None:
            t["G_perceptual"] = self.perceptual(fake_B, real_B) * loss.lambda_perceptual
            total = total + t["G_perceptual"]
        if loss.lambda_chroma > 0:
            t["G_chroma"] = chroma_loss(fake_B, real_B) * loss.lambda_chroma
            total = total + t["G_chroma"]
        return total

    def _step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.forward(real_A, real_B)
        loss_D, t = self.discriminator_losses(real_A, real_B, out)  # official: D first
        _check_finite(t, "Pix2Pix discriminator")
        self._backward_step(loss_D, ["D", "D_seg"])
        loss_G, t_g = self.generator_losses(real_A, real_B, out)  # with the updated D
        _check_finite(t_g, "Pix2Pix generator")
        self._backward_step(loss_G, ["G"])
        t.update(t_g)
        return t


def build_model(cfg: TrainConfig, segmenter: Segmenter | None = None, device: torch.device | str = "cpu") -> GANModel:
    """The training model for ``cfg.model.kind``; builds the segmenter when none is given."""
    if segmenter is None and cfg.seg.variant != "none":
        from .segmentation import build_segmenter

        # A segmenter's construction must not consume the global random stream: with one seed, a
        # run with the seg loss starts from the same G and D weights as the baseline run.
        with torch.random.fork_rng(devices=[]):
            segmenter = build_segmenter(cfg.seg.segmenter, **cfg.seg.segmenter_kwargs)
    cls = {"cycle_gan": CycleGANModel, "pix2pix": Pix2PixModel}[cfg.model.kind]
    return cls(cfg, segmenter, device)
