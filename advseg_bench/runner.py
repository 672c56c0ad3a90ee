"""The parent process: probe, plan, one worker process per backend × precision, progress, results.

The parent never imports torch. It starts each worker with the thread count in the environment
(``OMP_NUM_THREADS``/``MKL_NUM_THREADS``), reads its :data:`~advseg_bench.worker.MARK` lines,
shows a progress bar, and enforces a per-combination time limit: a combination that runs past
``combo_timeout_s`` is killed and reported as an error, and the larger combinations of the same
job are skipped with that reason. A worker that dies (e.g. killed for memory) gets its current
combination reported with the exit status and the last lines it printed; the rest of its job
runs in a fresh worker once.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from . import schema
from .bundles import cache_dir
from .environment import LoadMonitor, cpu_count, machine_info, software_versions
from .models import ModelSpec
from .plan import Job, make_plan
from .timing import TimingPolicy
from .worker import MARK

__all__ = ["RunConfig", "run_matrix", "WorkerProcess"]

Log = Callable[[str], None]


@dataclass
class RunConfig:
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

    def settings(self) -> dict[str, Any]:
        return {
            "threads": self.threads, "device": self.device, "backends": self.backends,
            "precisions": self.precisions, "batches": self.batches, "sizes": self.sizes,
            "warmup": self.policy.warmup, "repeats": self.policy.repeats, "min_time_s": self.policy.min_time_s,
            "max_time_s": self.policy.max_time_s, "min_repeats": self.policy.min_repeats,
            "memory_budget_gb": self.memory_budget_gb, "max_call_s": self.max_call_s,
            "combo_timeout_s": self.combo_timeout_s, "compile_mode": self.compile_mode, "seed": self.seed,
            "models": [{"name": m.name, "kind": m.kind, "arch": m.arch, "source": m.source} for m in self.models],
        }


class WorkerProcess:
    """A worker subprocess whose marker lines arrive on a queue; other output goes to a log tail."""

    def __init__(self, task: str, job: dict[str, Any], threads: int, log: Log | None = None):
        fd, name = tempfile.mkstemp(prefix="advseg-bench-job-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(job, f)
        self.job_path = Path(name)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   OPENBLAS_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "advseg_bench.worker", task, str(self.job_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, bufsize=1)
        self.events: queue.Queue = queue.Queue()
        self.tail: deque[str] = deque(maxlen=30)
        self.log = log
        self._threads = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(MARK):
                try:
                    self.events.put(json.loads(line[len(MARK):]))
                except json.JSONDecodeError:
                    self.tail.append(line.rstrip())
            else:
                self.tail.append(line.rstrip())
        self.events.put({"event": "_stdout_closed"})

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.tail.append(line.rstrip())
            if self.log is not None and line.strip():
                self.log(line.rstrip())

    def next_event(self, timeout: float | None) -> dict[str, Any] | None:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def finish(self) -> int:
        rc = self.proc.wait()
        for t in self._threads:
            t.join(timeout=5)
        self.job_path.unlink(missing_ok=True)
        return rc

    def tail_text(self, n: int = 6) -> str:
        lines = [ln for ln in self.tail if ln.strip()][-n:]
        return " | ".join(lines)


# --------------------------------------------------------------------------- probe


def _probe(cfg: RunConfig, log: Log) -> dict[str, Any]:
    need_bundles = any(not b.startswith("torch") for b in cfg.backends)
    export_precisions = ["fp32"] + [p for p in ("fp16", "int8") if p in cfg.precisions]
    job = {"models": [m.to_dict() for m in cfg.models], "sizes": cfg.sizes, "threads": cfg.threads,
           "export_precisions": export_precisions, "need_bundles": need_bundles, "seed": cfg.seed,
           "peak_seconds": cfg.peak_seconds}
    log("probing the machine, preparing models and bundles, counting FLOPs, measuring peaks ...")
    w = WorkerProcess("probe", job, cfg.threads, log)
    out: dict[str, Any] = {"env": {}, "models": {}, "costs": {}, "peaks": {}}
    while True:
        ev = w.next_event(timeout=5.0)
        if ev is None:
            if w.proc.poll() is not None and w.events.empty():
                break
            continue
        kind = ev["event"]
        if kind == "_stdout_closed":
            break
        if kind == "env":
            out["env"] = ev["env"]
        elif kind == "model":
            out["models"][ev["model"]["name"]] = ev["model"]
        elif kind == "cost":
            out["costs"][ev["model"]] = ev["costs"]
        elif kind == "peaks":
            out["peaks"] = ev["peaks"]
    rc = w.finish()
    if rc != 0 or not out["env"]:
        raise RuntimeError(f"the probe worker failed (exit {rc}): {w.tail_text(12)}")
    return out


# --------------------------------------------------------------------------- jobs


def _job_dict(job: Job, cfg: RunConfig, combos: list[dict]) -> dict[str, Any]:
    return {"model": job.model.to_dict(), "backend": job.backend, "precision": job.precision,
            "device": job.device, "threads": cfg.threads, "combos": combos, "costs": job.costs,
            "peak_gflops": job.peak_gflops, "peak_basis": job.peak_basis, "cache": str(cache_dir()), "compile_mode": cfg.compile_mode,
            "policy": {"warmup": cfg.policy.warmup, "repeats": cfg.policy.repeats,
                       "min_time_s": cfg.policy.min_time_s, "max_time_s": cfg.policy.max_time_s,
                       "min_repeats": cfg.policy.min_repeats}}


def _label(job: Job, combo: dict) -> str:
    return f"{job.model.name} {job.backend} {job.precision} b{combo['batch']} {combo['size']}px"


def _run_job(job: Job, cfg: RunConfig, bar: tqdm, say: Log) -> list[dict]:
    results: list[dict] = []
    pending = list(job.combos)
    restarts = 0
    while pending:
        w = WorkerProcess("measure", _job_dict(job, cfg, pending), cfg.threads)
        current: dict | None = None
        started = time.monotonic()
        timed_out = False
        while True:
            ev = w.next_event(timeout=1.0)
            if ev is None:
                # started = worker start (model load included) or the current combination's start
                if time.monotonic() - started > cfg.combo_timeout_s:
                    w.kill()
                    timed_out = True
                    break
                if w.proc.poll() is not None and w.events.empty():
                    break
                continue
            if ev["event"] == "_stdout_closed":
                break
            if ev["event"] == "start":
                current = {"batch": ev["batch"], "size": ev["size"]}
                started = time.monotonic()
                bar.set_description(_label(job, current)[:70])
            elif ev["event"] == "result":
                r = ev["result"]
                results.append(r)
                pending = [c for c in pending if (c["batch"], c["size"]) != (r["batch"], r["size"])]
                current = None
                bar.update(1)
                if r["status"] != "ok":
                    say(f"  {r['status']}: {_label(job, r)}: {r['reason']}")
        rc = w.finish()
        if not pending:
            break
        # the worker stopped with work left: a timeout, a crash, or a load failure
        from .schema import empty_result

        m = job.model
        if current is None:
            current = pending[0]
        if timed_out:
            reason = f"timed out after {cfg.combo_timeout_s:g} s (--combo-timeout-s); worker killed"
        else:
            reason = f"worker exited with status {rc} during this combination: {w.tail_text()}"[:500]
        results.append(empty_result(m.name, m.kind, job.backend, job.precision, current["batch"],
                                    current["size"], "error", reason))
        say(f"  error: {_label(job, current)}: {reason}")
        bar.update(1)
        pending = [c for c in pending if (c["batch"], c["size"]) != (current["batch"], current["size"])]
        restarts += 1
        if timed_out or restarts > 1:
            why = ("a cheaper combination of this model/backend/precision timed out" if timed_out
                   else "the worker died twice; the rest of this job was not run")
            for c in pending:
                results.append(empty_result(m.name, m.kind, job.backend, job.precision, c["batch"], c["size"],
                                            "skipped", why))
                bar.update(1)
            pending = []
    return results


# --------------------------------------------------------------------------- the run


def run_matrix(cfg: RunConfig, log: Log | None = None) -> dict[str, Any]:
    """Probe, plan and measure; returns the ``advseg-bench/1`` document (not yet written)."""
    say = log or (lambda m: tqdm.write(m, file=sys.stderr))
    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    with LoadMonitor() as load:
        probe = _probe(cfg, say)
        env = probe["env"]
        models = [ModelSpec.from_dict(probe["models"].get(m.name, m.to_dict())) for m in cfg.models]
        for m in models:
            for note in m.notes:
                say(f"{m.name}: {note}")
        import psutil

        budget = (cfg.memory_budget_gb * 1024 if cfg.memory_budget_gb
                  else 0.8 * psutil.virtual_memory().available / 2**20)
        machine = machine_info()
        gpu_budget = None
        if machine.get("gpus") and machine["gpus"][0].get("memory_mb"):
            gpu_budget = 0.9 * machine["gpus"][0]["memory_mb"]
        plan = make_plan(models, cfg.backends, cfg.precisions, cfg.batches, cfg.sizes, env, probe["costs"],
                         probe["peaks"], device=cfg.device, memory_budget_mb=budget,
                         gpu_memory_budget_mb=gpu_budget, max_call_s=cfg.max_call_s)
        for row in plan.backends:
            if not row["available"]:
                say(f"skipped backend {row['backend']}: {row['reason']}")
        _say_skips(plan.skipped, plan.backends, say)
        results = list(plan.skipped)
        with tqdm(total=plan.n_combos, unit="combo", disable=not cfg.progress, file=sys.stderr,
                  dynamic_ncols=True) as bar:
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
    return (r["model"], r["size"], r["batch"], order.index(r["backend"]) if r["backend"] in order else 99,
            PRECISIONS.index(r["precision"]) if r["precision"] in PRECISIONS else 9)


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
