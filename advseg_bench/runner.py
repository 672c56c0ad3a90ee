"""The parent process: probe, plan, one worker process per backend × precision, progress, results.

The parent never imports torch. It runs each worker through :mod:`advseg_bench.process`,
shows a progress bar, and enforces a per-combination time limit: a combination that runs past
``combo_timeout_s`` is killed and reported as an error, and the larger combinations of the same
job are skipped with that reason. A worker that dies (e.g. killed for memory) gets its current
combination reported with the exit status and the last lines it printed; the rest of its job
runs in a fresh worker once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from advseg_sdk.files import utc_timestamp

from . import schema
from .backends import BACKENDS
from .bundles import cache_dir
from .environment import LoadMonitor, cli_fields, cpu_count, machine_info, software_versions
from .models import ModelSpec
from .plan import Job, PlanRequest, make_plan
from .process import WorkerProcess, collect_probe, run_worker
from .schema import empty_result
from .timing import TimingPolicy

__all__ = ["BenchRunConfig", "run_matrix", "WorkerProcess"]

Log = Callable[[str], None]


@dataclass
class BenchRunConfig:
    models: list[ModelSpec]
    backends: list[str]
    precisions: list[str]
    batches: list[int]
    sizes: list[int]
    threads: int = field(default_factory=cpu_count)
    device: str = "auto"
    policy: TimingPolicy = field(default_factory=TimingPolicy)
    memory_budget_gb: float | None = None
    max_call_s: float | None = 60.0
    combo_timeout_s: float = 900.0
    compile_mode: str = "default"
    seed: int = 0
    peak_seconds: float = 1.0
    progress: bool = True
    command: list[str] = field(default_factory=lambda: list(sys.argv))

    @classmethod
    def from_cli(cls, options: dict[str, Any], command: list[str]) -> BenchRunConfig:
        """From the options of ``advseg-bench run`` (ValueError for a bad model list or timing)."""
        from .models import parse_models

        o = options
        policy = TimingPolicy(
            warmup=o["warmup"],
            repeats=o["repeats"],
            min_time_s=o["min_time"],
            max_time_s=o["max_time"],
            min_repeats=o["min_repeats"],
        )
        same: tuple[str, ...] = ("backends", "precisions", "batches", "sizes", "threads", "device", "memory_budget_gb")
        same += ("combo_timeout_s", "compile_mode", "seed", "peak_seconds")
        return cls(
            models=parse_models(o["models"], o["ngf"], o["norm"]),
            policy=policy,
            max_call_s=o["max_call_s"] or None,
            progress=not o["no_progress"],
            command=command,
            **cli_fields(o, *same),
        )

    def settings(self) -> dict[str, Any]:
        return {
            "threads": self.threads,
            "device": self.device,
            "backends": self.backends,
            "precisions": self.precisions,
            "batches": self.batches,
            "sizes": self.sizes,
            "warmup": self.policy.warmup,
            "repeats": self.policy.repeats,
            "min_time_s": self.policy.min_time_s,
            "max_time_s": self.policy.max_time_s,
            "min_repeats": self.policy.min_repeats,
            "memory_budget_gb": self.memory_budget_gb,
            "max_call_s": self.max_call_s,
            "combo_timeout_s": self.combo_timeout_s,
            "compile_mode": self.compile_mode,
            "seed": self.seed,
            "models": [{"name": m.name, "kind": m.kind, "arch": m.arch, "source": m.source} for m in self.models],
        }


# --------------------------------------------------------------------------- probe


def _probe(cfg: BenchRunConfig, log: Log) -> dict[str, Any]:
    need_bundles = any(getattr(BACKENDS.get(b), "family", None) != "torch" for b in cfg.backends)
    export_precisions = ["fp32"] + [p for p in ("fp16", "int8") if p in cfg.precisions]
    job = {
        "models": [m.to_dict() for m in cfg.models],
        "sizes": cfg.sizes,
        "threads": cfg.threads,
        "export_precisions": export_precisions,
        "need_bundles": need_bundles,
        "seed": cfg.seed,
        "peak_seconds": cfg.peak_seconds,
    }
    log("probing the machine, preparing models and bundles, counting FLOPs, measuring peaks ...")
    out, end = collect_probe(job, cfg.threads, log)
    if end.rc != 0 or not out["env"]:
        raise RuntimeError(f"the probe worker failed (exit {end.rc}): {end.tail_text(12)}")
    return out


# --------------------------------------------------------------------------- jobs


def _job_dict(job: Job, cfg: BenchRunConfig, combos: list[dict]) -> dict[str, Any]:
    return {
        "model": job.model.to_dict(),
        "backend": job.backend,
        "precision": job.precision,
        "device": job.device,
        "threads": cfg.threads,
        "combos": combos,
        "costs": job.costs,
        "peak_gflops": job.peak_gflops,
        "peak_basis": job.peak_basis,
        "cache": str(cache_dir()),
        "compile_mode": cfg.compile_mode,
        "policy": {
            "warmup": cfg.policy.warmup,
            "repeats": cfg.policy.repeats,
            "min_time_s": cfg.policy.min_time_s,
            "max_time_s": cfg.policy.max_time_s,
            "min_repeats": cfg.policy.min_repeats,
        },
    }


def _label(job: Job, combo: dict) -> str:
    return f"{job.model.name} {job.backend} {job.precision} b{combo['batch']} {combo['size']}px"


def _run_job(job: Job, cfg: BenchRunConfig, bar: tqdm, say: Log) -> list[dict]:
    results: list[dict] = []
    pending = list(job.combos)
    restarts = 0
    while pending:
        current: dict | None = None

        def on_event(ev: dict[str, Any]) -> None:
            nonlocal current, pending
            if ev["event"] == "start":
                current = {"batch": ev["batch"], "size": ev["size"]}
                bar.set_description(_label(job, current)[:70])
            elif ev["event"] == "result":
                r = ev["result"]
                results.append(r)
                pending = [c for c in pending if (c["batch"], c["size"]) != (r["batch"], r["size"])]
                current = None
                bar.update(1)
                if r["status"] != "ok":
                    say(f"  {r['status']}: {_label(job, r)}: {r['reason']}")

        # the time limit runs from the worker's start (model load included), then from each combination's
        end = run_worker(
            "measure",
            _job_dict(job, cfg, pending),
            cfg.threads,
            on_event,
            timeout_s=cfg.combo_timeout_s,
            restart_on=("start",),
        )
        if not pending:
            break
        # the worker stopped with work left: a timeout, a crash, or a load failure
        m = job.model
        if current is None:
            current = pending[0]
        if end.timed_out:
            reason = f"timed out after {cfg.combo_timeout_s:g} s (--combo-timeout-s); worker killed"
        else:
            reason = f"worker exited with status {end.rc} during this combination: {end.tail_text()}"[:500]
        results.append(
            empty_result(m.name, m.kind, job.backend, job.precision, current["batch"], current["size"], "error", reason)
        )
        say(f"  error: {_label(job, current)}: {reason}")
        bar.update(1)
        pending = [c for c in pending if (c["batch"], c["size"]) != (current["batch"], current["size"])]
        restarts += 1
        if end.timed_out or restarts > 1:
            why = (
                "a cheaper combination of this model/backend/precision timed out"
                if end.timed_out
                else "the worker died twice; the rest of this job was not run"
            )
            for c in pending:
                results.append(
                    empty_result(m.name, m.kind, job.backend, job.precision, c["batch"], c["size"], "skipped", why)
                )
                bar.update(1)
            pending = []
    return results


# --------------------------------------------------------------------------- the run


def run_matrix(cfg: BenchRunConfig, log: Log | None = None) -> dict[str, Any]:
    """Probe, plan and measure; returns the ``advseg-bench/1`` document (not yet written)."""
    say = log or (lambda m: tqdm.write(m, file=sys.stderr))
    created = utc_timestamp()
    with LoadMonitor() as load:
        probe = _probe(cfg, say)
        env = probe["env"]
        models = [ModelSpec.from_dict(probe["models"].get(m.name, m.to_dict())) for m in cfg.models]
        for m in models:
            for note in m.notes:
                say(f"{m.name}: {note}")
        import psutil

        budget = (
            cfg.memory_budget_gb * 1024 if cfg.memory_budget_gb else 0.8 * psutil.virtual_memory().available / 2**20
        )
        machine = machine_info()
        gpu_budget = None
        if machine.get("gpus") and machine["gpus"][0].get("memory_mb"):
            gpu_budget = 0.9 * machine["gpus"][0]["memory_mb"]
        request = PlanRequest(
            models,
            cfg.backends,
            cfg.precisions,
            cfg.batches,
            cfg.sizes,
            device=cfg.device,
            memory_budget_mb=budget,
            gpu_memory_budget_mb=gpu_budget,
            max_call_s=cfg.max_call_s,
        )
        plan = make_plan(request, env, probe["costs"], probe["peaks"])
        for row in plan.backends:
            if not row["available"]:
                say(f"skipped backend {row['backend']}: {row['reason']}")
        _say_skips(plan.skipped, plan.backends, say)
        results = list(plan.skipped)
        with tqdm(
            total=plan.n_combos, unit="combo", disable=not cfg.progress, file=sys.stderr, dynamic_ncols=True
        ) as bar:
            for job in plan.jobs:
                results.extend(_run_job(job, cfg, bar, say))
    doc = {
        "schema": schema.SCHEMA_VERSION,
        "kind": "matrix",
        "created": created,
        "command": cfg.command,
        "machine": machine,
        "software": software_versions(),
        "environment_probe": env,
        "settings": {**cfg.settings(), "memory_budget_mb_used": round(budget, 1)},
        "peaks": probe["peaks"],
        "costs": probe["costs"],
        "models": [m.to_dict() for m in models],
        "load": load.summary(),
        "backends": plan.backends,
        "results": sorted(results, key=_sort_key),
    }
    from .report import compute_targets

    doc["targets"] = compute_targets(doc)
    return doc


def _sort_key(r: dict) -> tuple:
    from .backends import BACKENDS, PRECISIONS

    order = list(BACKENDS)
    return (
        r["model"],
        r["size"],
        r["batch"],
        order.index(r["backend"]) if r["backend"] in order else 99,
        PRECISIONS.index(r["precision"]) if r["precision"] in PRECISIONS else 9,
    )


def _say_skips(skipped: list[dict], backends: list[dict], say: Log) -> None:
    """One line per distinct (backend, precision, reason), not per combination."""
    unavailable = {b["backend"] for b in backends if not b["available"]}
    groups: dict[tuple, list[str]] = {}
    for r in skipped:
        if r["backend"] in unavailable:
            continue
        key = (r["backend"], r["precision"], r["reason"])
        groups.setdefault(key, []).append(f"{r['model']} b{r['batch']} {r['size']}px")
    for (b, p, reason), where in groups.items():
        shown = ", ".join(where[:4]) + (f" (+{len(where) - 4} more)" if len(where) > 4 else "")
        say(f"skipped {b} {p} [{shown}]: {reason}")
