"""The benchmark matrix: which combinations run, and a clear reason for every one that does not.

Every model × backend × precision × batch × size of the request becomes either a job combination
(run by a worker) or a ``skipped`` result whose reason says why: the backend is not available,
the backend has no such precision, the model cannot take that size, the estimated memory exceeds
the budget, or the call would take longer than ``max_call_s`` even at the device's measured peak.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .backends import BACKENDS, backend_problem, device_of, precision_problem
from .bundles import bundle_precisions
from .models import ModelSpec, size_problem
from .schema import empty_result

__all__ = ["Job", "Plan", "PlanRequest", "make_plan", "estimate_memory_mb", "estimate_call_s", "peak_for", "peak_basis"]

_BASE_MB = {"torch": 450.0, "ort": 120.0, "tensorrt": 300.0, "pipeline": 200.0}


@dataclass
class Job:
    """One worker process: a model on one backend and precision, over combos (cheapest first)."""

    model: ModelSpec
    backend: str
    precision: str
    device: str
    combos: list[dict[str, Any]] = field(default_factory=list)  # batch, size, est_call_s, est_memory_mb
    costs: dict[str, Any] = field(default_factory=dict)
    peak_gflops: float | None = None
    peak_basis: str | None = None  # the measured peak peak_gflops is (fp32, tf32, bf16, ...)


@dataclass
class Plan:
    jobs: list[Job]
    skipped: list[dict]
    backends: list[dict]

    @property
    def n_combos(self) -> int:
        return sum(len(j.combos) for j in self.jobs)


def peak_basis(device: str, backend: str, precision: str) -> str:
    """Which measured peak bounds ``precision`` on ``device``: on CUDA, fp32 convolutions run in
    TF32 (cuDNN's and ONNX Runtime's default), so their bound is the TF32 matrix rate, not the
    strict-fp32 one; ORT CPU has no fp16 arithmetic to speak of (fp32 peak, the optimistic bound)."""
    if device == "cuda" and precision == "fp32":
        return "tf32"
    if BACKENDS[backend].family != "torch" and precision == "fp16" and device == "cpu":
        return "fp32"
    return precision


def peak_for(peaks: dict[str, Any], device: str, backend: str, precision: str) -> float | None:
    """The measured peak (GFLOP/s) that bounds ``precision`` on ``device`` (see :func:`peak_basis`)."""
    dev = peaks.get(device) or {}
    entry = dev.get(peak_basis(device, backend, precision)) or {}
    return entry.get("gflops")


def estimate_memory_mb(spec: ModelSpec, backend: str, cost: dict[str, Any], batch: int) -> float:
    """A deliberately generous peak-RSS (or GPU) estimate for one call."""
    fam = "pipeline" if spec.kind == "pipeline" else BACKENDS[backend].family
    factor = 3.0 if spec.kind == "pipeline" else 1.6
    weights = cost.get("weights_mb", 0.0) * (2 if fam == "torch" else 3)
    return _BASE_MB[fam] + weights + batch * cost.get("activation_peak_mb", 0.0) * factor


def estimate_call_s(cost: dict[str, Any], batch: int, peak: float | None) -> float | None:
    """Lower bound of one call's time: the batch's FLOPs at the measured peak rate."""
    if not peak or not cost.get("gflops"):
        return None
    return batch * cost["gflops"] / peak


def _bundle_fixed_size(bundle: str) -> tuple[int, int] | None:
    import json
    from pathlib import Path

    m = Path(bundle) / "manifest.json"
    try:
        fixed = json.loads(m.read_text()).get("input", {}).get("fixed_size")
    except (OSError, ValueError):
        return None
    return (int(fixed[0]), int(fixed[1])) if fixed else None


@dataclass
class PlanRequest:
    """What a run asks for (every model × backend × precision × batch × size) and its limits."""

    models: list[ModelSpec]
    backends: list[str]
    precisions: list[str]
    batches: list[int]
    sizes: list[int]
    device: str = "auto"
    memory_budget_mb: float | None = None
    gpu_memory_budget_mb: float | None = None
    max_call_s: float | None = 60.0


def make_plan(
    request: PlanRequest, env: dict[str, Any], costs: dict[str, dict[str, Any]], peaks: dict[str, Any]
) -> Plan:
    """Jobs for what can run on this machine (``env``: the probe's facts), a skipped result for the rest."""
    models, backends, precisions = request.models, request.backends, request.precisions
    batches, sizes, device = request.batches, request.sizes, request.device
    memory_budget_mb, gpu_memory_budget_mb = request.memory_budget_mb, request.gpu_memory_budget_mb
    max_call_s = request.max_call_s
    backend_rows = []
    problems: dict[str, str | None] = {}
    for b in backends:
        why = backend_problem(b, env, device)
        problems[b] = why
        backend_rows.append(
            {
                "backend": b,
                "available": why is None,
                "reason": why,
                "description": BACKENDS[b].description if b in BACKENDS else None,
                "device": device_of(b, env, device) if b in BACKENDS else None,
            }
        )
    jobs: list[Job] = []
    skipped: list[dict] = []

    def skip(spec: ModelSpec, b: str, p: str, batch: int, size: int, reason: str) -> None:
        skipped.append(empty_result(spec.name, spec.kind, b, p, batch, size, "skipped", reason))

    for spec in models:
        mcost = costs.get(spec.name) or {}
        have = bundle_precisions(spec.bundle) if spec.bundle else []
        graph_fixed = _bundle_fixed_size(spec.bundle) if spec.bundle else None
        for b in backends:
            for p in precisions:
                dev = device_of(b, env, device) if b in BACKENDS else "cpu"
                why = problems[b]
                if why is None and spec.notes and any(n.startswith("preparation failed") for n in spec.notes):
                    why = next(n for n in spec.notes if n.startswith("preparation failed"))
                if why is None:
                    why = precision_problem(b, p, dev, spec.kind, have, env)
                if why is None and spec.kind == "pipeline" and b == "ort-cuda-graph":
                    why = "the SDK pipeline does not bind fixed device buffers, which CUDA graphs need"
                if why is None and BACKENDS[b].family == "torch" and spec.kind != "hed" and not spec.checkpoint:
                    why = "no torch weights for this bundle (its source checkpoint is not available)"
                job = Job(
                    spec,
                    b,
                    p,
                    dev,
                    costs={str(s): mcost.get(str(s)) for s in sizes if mcost.get(str(s))},
                    peak_gflops=peak_for(peaks, dev, b, p),
                    peak_basis=peak_basis(dev, b, p),
                )
                for size in sizes:
                    for batch in batches:
                        if why is not None:
                            skip(spec, b, p, batch, size, why)
                            continue
                        sp = size_problem(spec, size)
                        if (
                            sp is None
                            and graph_fixed
                            and BACKENDS[b].family != "torch"
                            and spec.kind == "generator"
                            and (size, size) != graph_fixed
                        ):
                            sp = (
                                f"the bundle's ONNX graph is fixed at {graph_fixed[0]}x{graph_fixed[1]} (its native "
                                "size; the SDK resizes or tiles other sizes), so it cannot run at "
                                f"{size}x{size}; torch backends can"
                            )
                        if sp:
                            skip(spec, b, p, batch, size, sp)
                            continue
                        cost = mcost.get(str(size)) or {}
                        est_mb = estimate_memory_mb(spec, b, cost, batch) if cost else None
                        budget = gpu_memory_budget_mb if dev == "cuda" else memory_budget_mb
                        if est_mb is not None and budget and est_mb > budget:
                            skip(
                                spec,
                                b,
                                p,
                                batch,
                                size,
                                f"estimated {'GPU' if dev == 'cuda' else 'host'} memory {est_mb / 1024:.1f} GiB "
                                f"exceeds the budget {budget / 1024:.1f} GiB (--memory-budget-gb)",
                            )
                            continue
                        est_s = estimate_call_s(cost, batch, job.peak_gflops)
                        if est_s is not None and max_call_s and est_s > max_call_s:
                            skip(
                                spec,
                                b,
                                p,
                                batch,
                                size,
                                f"one call would take >= {est_s:.0f} s ({batch * cost['gflops']:.0f} GFLOP at this "
                                f"{dev}'s measured {p} peak of {job.peak_gflops:.1f} GFLOP/s), "
                                f"over --max-call-s {max_call_s:g}",
                            )
                            continue
                        job.combos.append({"batch": batch, "size": size, "est_call_s": est_s, "est_memory_mb": est_mb})
                if job.combos:
                    job.combos.sort(key=lambda c: (c["size"] * c["size"] * c["batch"], c["size"]))
                    jobs.append(job)
    return Plan(jobs=jobs, skipped=skipped, backends=backend_rows)
