"""What the GPU check runs and in which order: the sizes of each step (the GPU run and the CPU
dry run differ only here), the steps and their share of the budget, and the inference plan."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SCHEMA", "STEPS", "Profile", "gpu_profile", "dry_profile", "inference_plan", "inference_problem"]

SCHEMA = "advseg-gpu-session/1"

#: (step, fraction of the budget by which it must end)
STEPS: tuple[tuple[str, float], ...] = (
    ("environment", 0.03),
    ("train_smoke", 0.24),
    ("train_throughput", 0.48),
    ("inference", 0.84),
    ("final_training", 0.97),
)


@dataclass(kw_only=True)
class Profile:
    """Sizes of everything the driver runs (the GPU run and the CPU dry run differ only here)."""

    device: str
    amps: tuple[str, ...] = ("off", "bf16", "fp16")
    # smoke
    smoke_ngf: int
    smoke_size: int
    smoke_steps: int
    train_load: int
    # throughput
    tp_ngf: int
    tp_size: int
    tp_official_batch: int = 1
    tp_fast_batch: int
    tp_fast_workers: int
    tp_official_workers: int
    tp_warmup: int
    tp_seconds: float
    tp_fast_amp: str
    tp_compile: bool
    # inference
    inf_ngf: int
    inf_sizes: tuple[int, ...]
    inf_batches: tuple[int, ...]
    inf_precisions: tuple[str, ...] = ("fp32", "bf16", "fp16")
    inf_backends: tuple[str, ...] = ("torch-cudagraph", "torch-eager", "torch-compile")
    inf_policy: dict[str, Any]
    # final training
    final_ngf: int
    final_size: int
    final_batch: int
    final_min_s: float
    final_max_s: float | None = None
    replicate: int = 8
    step_min_s: dict[str, float] = field(default_factory=dict)


#: Profile field -> (GPU run, CPU dry run): the same steps, on the CPU with tiny networks and sizes.
_PROFILES: dict[str, tuple[Any, Any]] = {
    "device": ("cuda", "cpu"),
    "smoke_ngf": (64, 4),
    "smoke_size": (256, 32),
    "smoke_steps": (3, 1),
    "train_load": (286, 36),
    "tp_ngf": (64, 4),
    "tp_size": (256, 32),
    "tp_fast_batch": (32, 4),
    "tp_fast_workers": (12, 2),
    "tp_official_workers": (4, 0),
    "tp_warmup": (5, 1),
    "tp_seconds": (15.0, 1.0),
    "tp_fast_amp": ("bf16", "off"),
    "tp_compile": (True, False),
    "inf_ngf": (64, 4),
    "inf_sizes": ((256, 512), (32,)),
    "inf_batches": ((1, 8, 32, 64, 128, 256), (1, 2)),
    "inf_policy": (
        {"warmup": 5, "repeats": 30, "min_time_s": 0.3, "max_time_s": 1.5, "min_repeats": 5},
        {"warmup": 1, "repeats": 2, "min_time_s": 0.0, "max_time_s": 0.5, "min_repeats": 1},
    ),
    "final_ngf": (32, 4),
    "final_size": (256, 32),
    "final_batch": (16, 2),
    "final_min_s": (60.0, 2.0),
    "final_max_s": (None, 2.0),
    "replicate": (8, 2),
    "step_min_s": (
        {"environment": 1, "train_smoke": 20, "train_throughput": 30, "inference": 20, "final_training": 60},
        {"environment": 0.5, "train_smoke": 1, "train_throughput": 1, "inference": 1, "final_training": 2},
    ),
}


def _profile(column: int) -> Profile:
    return Profile(**{name: copy.deepcopy(values[column]) for name, values in _PROFILES.items()})


def gpu_profile() -> Profile:
    return _profile(0)


def dry_profile() -> Profile:
    """The same steps on the CPU with tiny networks and sizes."""
    return _profile(1)


def inference_plan(p: Profile) -> list[tuple[str, int, int, str, str]]:
    """(model, size, batch, backend, precision) in priority order: the goals first (resnet_9blocks
    256² batch 1 latency, half-precision throughput), then U-Net and HED, then 512², then compile."""
    graph, eager, comp = "torch-cudagraph", "torch-eager", "torch-compile"
    half = [q for q in ("bf16", "fp16") if q in p.inf_precisions]
    precs = [q for q in ("fp16", "bf16", "fp32") if q in p.inf_precisions]
    s0 = p.inf_sizes[0]
    s1 = p.inf_sizes[1] if len(p.inf_sizes) > 1 else None
    b1, bmax = p.inf_batches[0], p.inf_batches[-1]
    plan: list[tuple[str, int, int, str, str]] = []
    add = plan.append
    for be in (graph, eager):
        for q in precs:
            add(("resnet_9blocks", s0, b1, be, q))
    for q in half:
        for b in p.inf_batches[1:]:
            add(("resnet_9blocks", s0, b, graph, q))
    for q in half:
        add(("resnet_9blocks", s0, bmax, eager, q))
    add(("resnet_9blocks", s0, p.inf_batches[min(3, len(p.inf_batches) - 1)], graph, "fp32"))
    for model in ("unet_256", "hed"):
        for be in (graph, eager):
            for q in precs:
                add((model, s0, b1, be, q))
        for q in half:
            for b in p.inf_batches[2::2] or p.inf_batches[1:]:
                add((model, s0, b, graph, q))
    if s1 is not None:
        for model in ("resnet_9blocks", "hed", "unet_256"):
            for q in precs:
                add((model, s1, b1, graph, q))
            for q in half:
                add((model, s1, p.inf_batches[min(3, len(p.inf_batches) - 1)], graph, q))
    for q in half[:1]:
        add(("resnet_9blocks", s0, b1, comp, q))
        add(("resnet_9blocks", s0, p.inf_batches[min(4, len(p.inf_batches) - 1)], comp, q))
    return list(dict.fromkeys(plan))


def inference_problem(
    spec, size: int, batch: int, backend: str, precision: str, cuda: bool, dry_run: bool
) -> str | None:
    from advseg_bench.models import size_problem

    why = size_problem(spec, size)
    if why:
        return why
    if backend == "torch-cudagraph" and not cuda:
        return "CUDA graphs need CUDA"
    if precision == "fp16" and not cuda:
        return "fp16 autocast is for CUDA (the CPU runs bf16)"
    if backend == "torch-compile" and dry_run:
        return "torch.compile takes minutes on a CPU: not tried in the dry run"
    return None
