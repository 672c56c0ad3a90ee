"""The training loop: ``train(config) -> RunResult``: set up (device, DDP, seeds, data, model),
maybe resume, then epochs of steps with logging, sample grids, periodic checkpoints, and the
final generator. Run directory (``run.out``)::

    config.yaml                 resolved configuration
    checkpoints/latest.pt       every run.checkpoint_every steps, each epoch end, at the end
    checkpoints/epoch_NNNN.pt   every run.save_epoch_freq epochs
    checkpoints/nonfinite.pt    last good state when a loss turned NaN/Inf (run stopped)
    tb/                         TensorBoard scalars: every loss term, lr, images/s
    samples/step_NNNNNNN.png    sketch | fake | real | seg(real) | seg(fake)
    generator.safetensors       the final A→B generator (feeds ``advseg-export``)

Launched by ``torchrun`` (``WORLD_SIZE`` > 1) the loop uses DDP (gloo on CPU, nccl on CUDA)
with a :class:`~advseg_train.data.ResumableSampler`; rank 0 alone logs and writes files.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from advseg_sdk.files import atomic_path, atomic_write_bytes
from advseg_sdk.pixels import to_uint8

from .config import TrainConfig, dump_yaml, to_dict
from .data import ResumableSampler, build_dataset
from .models import GANModel, NonFiniteLossError, build_model
from .train_state import load_checkpoint, rng_state, save_checkpoint, set_rng_state

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

__all__ = [
    "RunResult",
    "TrainingDivergedError",
    "TrainingSetup",
    "train",
    "setup",
    "write_sample_grid",
    "resolve_device",
    "resolve_num_workers",
    "build_loader",
]


class TrainingDivergedError(RuntimeError):
    """A loss became NaN/Inf; ``checkpoint`` holds the last good state."""

    def __init__(self, message: str, checkpoint: Path | None, terms: dict[str, float]) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint
        self.terms = terms


@dataclass
class RunResult:
    run_dir: Path
    global_step: int
    epoch: int  # epoch the run stopped in (or the last one it finished)
    checkpoint: Path | None  # latest.pt (None on ranks > 0)
    generator: Path | None  # generator.safetensors (None on ranks > 0)
    history: list[dict[str, float]] = field(default_factory=list)  # logged loss terms per log step
    images_per_s: float = 0.0
    resumed_from: int | None = None  # global step of the checkpoint the run resumed from
    model: GANModel | None = field(default=None, repr=False)  # the trained model (in-process use)


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0, world: int = 1, cuda_available: bool | None = None) -> torch.device:
    """The device for ``run.device``; a CUDA device always carries an index, because
    ``torch.cuda.set_device`` refuses a bare ``torch.device("cuda")``. Under DDP each process
    takes ``cuda:LOCAL_RANK``."""
    avail = torch.cuda.is_available() if cuda_available is None else cuda_available
    if name == "cpu" or (name == "auto" and not avail):
        return torch.device("cpu")
    if not avail:
        raise RuntimeError(
            f"run.device={name} but CUDA is not available (torch {torch.__version__}); use run.device=cpu"
        )
    if world > 1:
        return torch.device("cuda", local_rank)
    if name.startswith("cuda:"):
        return torch.device("cuda", int(name.split(":", 1)[1]))
    return torch.device("cuda", 0)


def resolve_num_workers(requested: int | None, device: torch.device, cpus: int | None = None) -> int:
    """``data.num_workers``, where ``None`` means: none on CPU (the main process decodes while the
    cores train), up to 8 on CUDA (decoding in the training process starves the GPU)."""
    if requested is not None:
        return int(requested)
    if device.type != "cuda":
        return 0
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cpus - 1))


def build_loader(
    cfg: TrainConfig, dataset: Any, sampler: ResumableSampler, device: torch.device
) -> tuple[DataLoader, int, bool]:
    """The training DataLoader, its worker count and whether it drops the last partial batch
    (with ``run.compile``: compiled networks see one batch shape; a smaller one recompiles)."""
    r = cfg.run
    workers = resolve_num_workers(cfg.data.num_workers, device)
    drop_last = bool(r.compile) and sampler.num_samples >= r.batch_size
    loader = DataLoader(
        dataset,
        batch_size=r.batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=drop_last,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(r.seed),
    )
    return loader, workers, drop_last


def _setup_distributed(device_name: str) -> tuple[_Dist, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    want_cuda = resolve_device(device_name, cuda_available=torch.cuda.is_available()).type == "cuda"
    d = _Dist()
    if world > 1 or dist.is_initialized():
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if want_cuda else "gloo")
            d.owns_group = True
        d.rank, d.world = dist.get_rank(), dist.get_world_size()
        d.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, d.local_rank, d.world)
    if device.type == "cuda":
        torch.cuda.set_device(device.index)
    return d, device


def _time_up(started: float, max_seconds: float, dd: _Dist, device: torch.device) -> bool:
    """``run.max_seconds`` spent (rank 0's clock decides under DDP, so every rank stops together)."""
    flag = torch.tensor([float(time.monotonic() - started >= max_seconds)], device=device if dd.world > 1 else "cpu")
    if dd.world > 1:
        dist.broadcast(flag, src=0)
    return bool(flag.item())


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- sample grids

# fmt: off
_BASE_COLOURS = [  # RGB
    (0, 0, 0), (230, 120, 20), (60, 140, 230), (60, 190, 75), (220, 40, 60), (240, 210, 40),
    (150, 80, 200), (70, 210, 210), (240, 110, 190), (130, 130, 130), (140, 90, 40), (0, 100, 90),
]
# fmt: on


def _palette(n: int) -> np.ndarray:
    """n colours: channel 0 (official "no segment") black, then distinct ones, then random."""
    rng = np.random.default_rng(12345)
    pal = rng.integers(40, 256, size=(max(n, len(_BASE_COLOURS)), 3)).astype(np.uint8)
    pal[: len(_BASE_COLOURS)] = _BASE_COLOURS
    return pal[: max(n, 1)]


def write_sample_grid(path: str | os.PathLike, images: dict[str, torch.Tensor]) -> Path:
    """PNG grid, one row per sample: sketch | fake | real [| seg(real) | seg(fake)]."""
    cols = []
    for key in ("sketch", "fake", "real"):
        cols.append([to_uint8(x.detach().float().permute(1, 2, 0).cpu().numpy()) for x in images[key]])
    for key in ("seg_real", "seg_fake"):
        if key in images:
            maps = images[key]
            pal = _palette(maps.shape[1])
            labels = maps.argmax(1).cpu().numpy()
            cols.append([pal[lab] for lab in labels])
    rows = [np.concatenate([c[i] for c in cols], axis=1) for i in range(len(cols[0]))]
    grid = np.concatenate(rows, axis=0)
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------- the loop


def _gather_rng(dd: _Dist) -> dict[str, Any]:
    """This rank's RNG state; under DDP also every rank's (``"ranks"``), gathered to all."""
    state = rng_state()
    if dd.world > 1:
        gathered: list[Any] = [None] * dd.world
        dist.all_gather_object(gathered, state)
        state = {**state, "ranks": gathered}
    return state


def _checkpoint_state(
    cfg: TrainConfig, model: GANModel, epoch: int, it: int, step: int, rng: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "config": to_dict(cfg),
        "position": {"epoch": epoch, "iter": it, "global_step": step},
        "model": model.train_state(),
        "rng": rng if rng is not None else rng_state(),
        "generator": {"name": model.generator_name, "config": model.generator.config.to_dict()},
    }


def _save_generator(model: GANModel, path: Path, cfg: TrainConfig, step: int) -> Path:
    from .config import to_dict
    from .networks import save_generator

    # The resolved training config travels with the weights: advseg-export records it as provenance.
    save_generator(
        model.generator,
        path,
        extra_metadata={
            "advseg_train": {
                "global_step": step,
                "model": cfg.model.kind,
                "seg_variant": cfg.seg.variant,
                "seg_grad": cfg.seg.grad,
                "preset": cfg.preset,
            },
            "training_config": to_dict(cfg),
        },
    )
    return path


def train(cfg: TrainConfig) -> RunResult:
    """Train per ``cfg`` (validated here); see the module docstring for what is written."""
    cfg.validate()
    r = cfg.run
    if r.threads:
        torch.set_num_threads(r.threads)
    dd, device = _setup_distributed(r.device)
    if device.type == "cuda":
        # fixed shapes every step: let cuDNN pick the fastest convolution algorithms once
        torch.backends.cudnn.benchmark = bool(r.cudnn_benchmark)
    run_dir = Path(r.out)
    ckpt_dir = run_dir / "checkpoints"
    log = _Logger(dd.is_main)
    try:
        return _train(cfg, dd, device, run_dir, ckpt_dir, log)
    finally:
        log.close()
        if dd.owns_group and dist.is_initialized():
            dist.destroy_process_group()


class _Logger:
    def __init__(self, active: bool) -> None:
        self.active = active
        self.writer: SummaryWriter | None = None
        self.bar: tqdm | None = None

    def open(self, tb_dir: Path, purge_step: int | None) -> None:
        if self.active:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(tb_dir), purge_step=purge_step)

    def message(self, text: str) -> None:
        if self.active:
            from tqdm import tqdm

            tqdm.write(text)

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


@dataclass
class TrainingSetup:
    """What a training loop needs (:func:`setup`): device, dataset, resumable sampler, loader, steps
    per epoch, and the model: seeded, in train mode, not yet wrapped (DDP / ``torch.compile``: a
    loop loads a checkpoint first, then calls ``model.wrap``)."""

    cfg: TrainConfig
    device: torch.device
    dataset: Any
    sampler: ResumableSampler
    loader: DataLoader
    workers: int
    steps_per_epoch: int
    model: GANModel


def setup(cfg: TrainConfig) -> TrainingSetup:
    """Dataset, sampler, loader and model of ``cfg`` on its ``run.device``, in one process, seeded
    exactly as :func:`train` seeds them (its set-up step; e.g. to time training steps)."""
    cfg.validate()
    device = resolve_device(cfg.run.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(cfg.run.cudnn_benchmark)
    return _setup(cfg, _Dist(), device)


def _setup(cfg: TrainConfig, dd: _Dist, device: torch.device) -> TrainingSetup:
    r = cfg.run
    # data first: a wrong folder fails fast, before any model is loaded
    dataset = build_dataset(cfg.data, paired=cfg.model.kind == "pix2pix", seed=r.seed, hints=cfg.model.hint_nc > 0)
    sampler = ResumableSampler(
        dataset, num_replicas=dd.world, rank=dd.rank, shuffle=not cfg.data.serial_batches, seed=r.seed
    )
    loader, workers, drop_last = build_loader(cfg, dataset, sampler, device)
    steps_per_epoch = (
        sampler.num_samples // r.batch_size if drop_last else math.ceil(sampler.num_samples / r.batch_size)
    )
    # the model: identical init on every rank, then per-rank randomness
    _seed_all(r.seed)
    model = build_model(cfg, device=device)
    model.train()
    _seed_all(r.seed + dd.rank)
    return TrainingSetup(cfg, device, dataset, sampler, loader, workers, steps_per_epoch, model)


@dataclass
class _Position:
    """Where the loop is: epoch, iteration within it, global step."""

    epoch: int
    it: int
    step: int


def _prepare_run_dir(cfg: TrainConfig, dd: _Dist, run_dir: Path, ckpt_dir: Path) -> None:
    if dd.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run_dir / "config.yaml", dump_yaml(cfg).encode())
        for stale in ckpt_dir.glob(".*.part*"):  # temp files of a write that was killed
            stale.unlink(missing_ok=True)


def _resume(
    cfg: TrainConfig, model: GANModel, latest: Path, log: _Logger
) -> tuple[_Position, int | None, dict[str, Any] | None]:
    """The start position, the step resumed from and the saved RNG state (``run.resume``), or
    networks initialised from ``run.init_from``."""
    r = cfg.run
    pos, resumed_from, restored_rng = _Position(cfg.optim.epoch_count, 0, 0), None, None
    if r.resume:
        if latest.is_file():
            state = load_checkpoint(latest)
            model.load_train_state(state["model"])
            p = state["position"]
            pos = _Position(int(p["epoch"]), int(p["iter"]), int(p["global_step"]))
            resumed_from, restored_rng = pos.step, state["rng"]
            log.message(f"resumed from {latest} at epoch {pos.epoch}, iteration {pos.it}, step {pos.step}")
        else:
            log.message(f"run.resume: no checkpoint at {latest}; starting a new run")
    if r.init_from and resumed_from is None:
        init_path = Path(r.init_from)
        if not init_path.is_file():
            raise FileNotFoundError(f"run.init_from: checkpoint not found: {init_path}")
        loaded = model.load_networks(load_checkpoint(init_path)["model"])
        log.message(f"initialised networks {', '.join(loaded)} from {init_path}")
    return pos, resumed_from, restored_rng


def _wrap(cfg: TrainConfig, model: GANModel, dd: _Dist, device: torch.device, log: _Logger) -> None:
    model.wrap(
        ddp=dd.world > 1,
        compile=cfg.run.compile,
        device_ids=[device.index] if device.type == "cuda" and dd.world > 1 else None,
    )
    if cfg.run.compile:
        log.message(f"torch.compile: {model.compile_summary}")


def _restore_rng(restored_rng: dict[str, Any] | None, dd: _Dist) -> None:
    if restored_rng is not None:
        ranks = restored_rng.get("ranks") or []
        if len(ranks) == dd.world:
            set_rng_state(ranks[dd.rank])
        else:  # other world size than the saving run: rank 0's streams, offset per rank
            set_rng_state(restored_rng)
            if dd.rank:
                torch.manual_seed(int(torch.randint(0, 2**62, (1,))) + dd.rank)


def _announce(
    s: TrainingSetup, dd: _Dist, run_dir: Path, pos: _Position, resumed_from: int | None, log: _Logger
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Open the logs, say what runs, start the progress bar; the fixed sample batch (rank 0)."""
    cfg, device, dataset, r, o = s.cfg, s.device, s.dataset, s.cfg.run, s.cfg.optim
    first_epoch, last_epoch = o.epoch_count, o.niter + o.niter_decay
    log.open(run_dir / "tb", purge_step=pos.step + 1 if resumed_from is not None else None)
    sample_batch = None
    if dd.is_main:
        n = min(r.num_samples, len(dataset))
        items = [dataset[(0, i)] for i in range(n)]
        sample_batch = (torch.stack([x["A"] for x in items]), torch.stack([x["B"] for x in items]))
    total = (last_epoch - first_epoch + 1) * s.steps_per_epoch
    if r.max_steps is not None:
        total = min(total, r.max_steps)
    log.message(
        f"advseg-train: {cfg.model.kind} {cfg.model.netG} seg={cfg.seg.variant}/{cfg.seg.grad} "
        f"({cfg.seg.segmenter if cfg.seg.variant != 'none' else '-'}) on {device}"
        f"{f' x{dd.world} ranks' if dd.world > 1 else ''}; {len(dataset)} items, "
        f"{s.steps_per_epoch} steps/epoch, epochs {first_epoch}..{last_epoch}, run dir {run_dir}"
        + (
            f"; amp {r.amp}, cudnn.benchmark {torch.backends.cudnn.benchmark}, {s.workers} loader workers"
            if device.type == "cuda"
            else ""
        )
    )
    if dd.is_main and r.progress:
        from tqdm import tqdm

        log.bar = tqdm(total=total, initial=min(pos.step, total), unit="it", dynamic_ncols=True, desc="train")
    return sample_batch


def _diverged(
    cfg: TrainConfig,
    model: GANModel,
    dd: _Dist,
    ckpt_dir: Path,
    pos: _Position,
    snap_rng: dict[str, Any],
    exc: NonFiniteLossError,
) -> TrainingDivergedError:
    """Non-finite recovery: the state before the failed step is saved to ``nonfinite.pt`` and the
    error to raise says how to go on from it."""
    path = ckpt_dir / "nonfinite.pt"
    if dd.is_main:
        save_checkpoint(path, _checkpoint_state(cfg, model, pos.epoch, pos.it, pos.step, rng=snap_rng))
    if dd.world > 1:
        dist.barrier()
    latest = ckpt_dir / "latest.pt"
    return TrainingDivergedError(
        f"training stopped: {exc} at epoch {pos.epoch}, iteration {pos.it + 1}, global step {pos.step + 1}. "
        f"The last good state (before this step) was saved to {path}; "
        f"{latest} holds the last periodic checkpoint. Lower optim.lr or check the data, then "
        f"resume from it (copy it to latest.pt and pass --resume).",
        path if dd.is_main else None,
        exc.terms,
    )


class _Loop:
    """Epochs of steps from ``pos``: logging, periodic checkpoints and samples, the per-epoch
    schedule, stops at ``run.max_steps`` / ``run.max_seconds``."""

    def __init__(
        self, s: TrainingSetup, dd: _Dist, run_dir: Path, ckpt_dir: Path, log: _Logger, sample_batch: Any
    ) -> None:
        self.s, self.dd, self.run_dir, self.ckpt_dir, self.log = s, dd, run_dir, ckpt_dir, log
        self.sample_batch = sample_batch
        self.latest = ckpt_dir / "latest.pt"
        self.history: list[dict[str, float]] = []
        self.images_per_s = 0.0

    def save_latest(self, pos: _Position) -> None:
        rng = _gather_rng(self.dd)  # collective: every rank calls save_latest at the same steps
        if self.dd.is_main:
            state = _checkpoint_state(self.s.cfg, self.s.model, pos.epoch, pos.it, pos.step, rng)
            save_checkpoint(self.latest, state, sleep_s=self.s.cfg.debug.save_sleep_s)

    def samples(self, step: int) -> None:
        if self.dd.is_main and self.sample_batch is not None:
            write_sample_grid(
                self.run_dir / "samples" / f"step_{step:07d}.png", self.s.model.sample(*self.sample_batch)
            )

    def run(self, pos: _Position) -> _Position:
        cfg, model, r = self.s.cfg, self.s.model, self.s.cfg.run
        last_epoch = cfg.optim.niter + cfg.optim.niter_decay
        self.t0, self.steps_timed = time.perf_counter(), 0
        started = time.monotonic()
        done = r.max_steps is not None and pos.step >= r.max_steps
        while pos.epoch <= last_epoch and not done:
            self.s.sampler.set_epoch(pos.epoch, skip=pos.it * r.batch_size)
            for batch in self.s.loader:
                if r.max_steps is not None and pos.step >= r.max_steps:
                    done = True
                    break
                if r.max_seconds is not None and _time_up(started, r.max_seconds, self.dd, self.s.device):
                    done = True
                    break
                snap_rng, snap = rng_state(), model.snapshot_volatile()
                try:
                    terms = model.train_step(batch, inject_nan=cfg.debug.inject_nan_step == pos.step + 1)
                except NonFiniteLossError as exc:
                    model.restore_volatile(snap)
                    set_rng_state(snap_rng)
                    raise _diverged(cfg, model, self.dd, self.ckpt_dir, pos, snap_rng, exc) from None
                pos.step += 1
                pos.it += 1
                self.after_step(pos, terms)
            else:
                self.end_epoch(pos)
                if r.max_steps is not None and pos.step >= r.max_steps:
                    done = True
        return pos

    def after_step(self, pos: _Position, terms: dict[str, Any]) -> None:
        r, dd, log = self.s.cfg.run, self.dd, self.log
        self.steps_timed += 1
        if log.bar is not None:
            log.bar.update(1)
        if r.log_every and pos.step % r.log_every == 0:
            values = {k: float(v) for k, v in terms.items()}
            dt = time.perf_counter() - self.t0
            self.images_per_s = self.steps_timed * r.batch_size * dd.world / max(dt, 1e-9)
            self.history.append({"step": pos.step, "epoch": pos.epoch, **values})
            log.scalars({f"loss/{k}": v for k, v in values.items()}, pos.step)
            log.scalars({"lr": self.s.model.lr, "images_per_s": self.images_per_s}, pos.step)
            if log.bar is not None:
                log.bar.set_postfix({k: f"{values[k]:.3g}" for k in ("G_total", "D_A", "D") if k in values})
            self.t0, self.steps_timed = time.perf_counter(), 0
        if r.checkpoint_every and pos.step % r.checkpoint_every == 0:
            self.save_latest(pos)
        if r.sample_every and pos.step % r.sample_every == 0:
            self.samples(pos.step)

    def end_epoch(self, pos: _Position) -> None:
        """The epoch finished: the official per-epoch schedule step, checkpoints."""
        r = self.s.cfg.run
        lr = self.s.model.update_learning_rate()
        self.log.scalars({"lr_epoch": lr}, pos.epoch)
        finished = pos.epoch
        pos.epoch, pos.it = pos.epoch + 1, 0
        self.save_latest(pos)
        if self.dd.is_main and r.save_epoch_freq and finished % r.save_epoch_freq == 0:
            with atomic_path(self.ckpt_dir / f"epoch_{finished:04d}.pt") as tmp:
                shutil.copyfile(self.latest, tmp)


def _train(cfg: TrainConfig, dd: _Dist, device: torch.device, run_dir: Path, ckpt_dir: Path, log: _Logger) -> RunResult:
    _prepare_run_dir(cfg, dd, run_dir, ckpt_dir)
    s = _setup(cfg, dd, device)
    latest = ckpt_dir / "latest.pt"
    pos, resumed_from, restored_rng = _resume(cfg, s.model, latest, log)
    _wrap(cfg, s.model, dd, device, log)
    _restore_rng(restored_rng, dd)
    loop = _Loop(s, dd, run_dir, ckpt_dir, log, _announce(s, dd, run_dir, pos, resumed_from, log))
    pos = loop.run(pos)
    # the end: final checkpoint, samples, generator
    loop.save_latest(pos)
    loop.samples(pos.step)
    gen_path = None
    if dd.is_main:
        gen_path = _save_generator(s.model, run_dir / "generator.safetensors", cfg, pos.step)
        log.message(f"finished at step {pos.step}: {latest}, {gen_path}")
    if dd.world > 1:
        dist.barrier()
    return RunResult(
        run_dir=run_dir,
        global_step=pos.step,
        epoch=pos.epoch,
        checkpoint=latest if dd.is_main else None,
        generator=gen_path,
        history=loop.history,
        images_per_s=loop.images_per_s,
        resumed_from=resumed_from,
        model=s.model,
    )
