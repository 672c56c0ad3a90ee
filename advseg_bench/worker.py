"""Worker processes: ``python -m advseg_bench.worker {probe|measure|scale} JOB.json``.

Each backend × precision runs in its own worker, so torch's and ONNX Runtime's thread pools never
share a process (they compete for the cores and distort each other's timings). Workers report
to the parent with the events of :mod:`advseg_bench.process`.

- ``probe``: what this machine offers (torch/CUDA, ORT providers, TensorRT, a C++ compiler),
  prepares checkpoints and bundles, counts GFLOPs and activation memory, measures peaks.
- ``measure``: one model on one backend and precision over a list of (batch, size), smallest
  first; per combination it reports ``{"event": "start"}`` then ``{"event": "result"}``.
- ``scale``: one size of ``advseg-bench scale`` (:func:`advseg_bench.scale.run_scale_worker`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .backends import BACKENDS, BenchSession
from .process import MARK, emit, log

__all__ = ["MARK", "emit", "probe_environment", "main"]


# --------------------------------------------------------------------------- probe


def probe_environment() -> dict[str, Any]:
    env: dict[str, Any] = {}
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = bool(torch.cuda.is_available())
        env["torch_cuda_reason"] = (
            torch.cuda.get_device_name(0)
            if env["torch_cuda"]
            else ("torch is a CPU-only build" if torch.version.cuda is None else "torch sees no CUDA device")
        )
    except ImportError as exc:
        env.update(torch=None, torch_error=str(exc), torch_cuda=False, torch_cuda_reason="torch missing")
    try:
        import onnxruntime as ort

        env["ort_providers"] = list(ort.get_available_providers())
    except ImportError:
        env["ort_providers"] = []
    try:
        import tensorrt  # noqa: F401

        env["tensorrt"] = tensorrt.__version__
    except ImportError as exc:
        env["tensorrt"], env["tensorrt_error"] = None, f"import tensorrt failed: {exc}"
    try:
        from advseg_sdk.runtime import _import_cudart

        _import_cudart()
        env["cuda_python"] = True
    except Exception:
        env["cuda_python"] = False
    env["gpu"] = env.get("torch_cuda") or bool(shutil.which("nvidia-smi"))
    env["cxx_compiler"] = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("clang++")
    return env


def run_probe(job: dict[str, Any]) -> None:
    from .bundles import prepare_generator, prepare_hed
    from .models import ModelSpec
    from .probe import measure_peaks, model_cost

    env = probe_environment()
    emit("env", env=env)
    specs = [ModelSpec.from_dict(d) for d in job["models"]]
    ort_precisions = job.get("export_precisions", ["fp32", "int8"])
    hed_bundle = None
    # pipelines reuse the HED model's bundle when the run has one; alone they only need HED fp32
    pipeline_hed_precisions = ort_precisions if any(s.kind == "hed" for s in specs) else ["fp32"]
    specs.sort(key=lambda s: s.kind == "pipeline")
    for spec in specs:
        try:
            if spec.kind == "hed":
                if job.get("need_bundles", True):
                    spec.bundle = hed_bundle = prepare_hed(ort_precisions, log=log)
            elif spec.kind == "generator":
                prepare_generator(
                    spec, ort_precisions, seed=job.get("seed", 0), log=log, export=job.get("need_bundles", True)
                )
            elif spec.kind == "pipeline":
                prepare_generator(spec, ort_precisions, seed=job.get("seed", 0), log=log)
                hed_bundle = hed_bundle or prepare_hed(pipeline_hed_precisions, log=log)
                spec.hed_bundle = hed_bundle
        except Exception as exc:
            spec.notes.append(f"preparation failed: {type(exc).__name__}: {exc}")
            log(traceback.format_exc())
        emit("model", model=spec.to_dict())
    for spec in specs:
        try:
            costs = model_cost(spec, job["sizes"]) if spec.config or spec.kind == "hed" else {}
        except Exception as exc:
            log(traceback.format_exc())
            costs = {}
            spec.notes.append(f"cost model failed: {exc}")
        emit("cost", model=spec.name, costs={str(k): v for k, v in costs.items()})
    devices = ["cpu"] + (["cuda"] if env.get("torch_cuda") else [])
    seconds = float(job.get("peak_seconds", 1.0))
    emit("peaks", peaks=measure_peaks(devices, job["threads"], seconds) if seconds > 0 else {})


# --------------------------------------------------------------------------- measure


def _open_torch(job: dict[str, Any], spec: Any) -> BenchSession:
    from .run_torch import TorchSession

    return TorchSession(
        spec, job["backend"], job["precision"], job["device"], job["threads"], job.get("compile_mode", "default")
    )


def _open_ort(job: dict[str, Any], spec: Any) -> BenchSession:
    from .run_ort import OrtSession

    return OrtSession(spec, job["backend"], job["precision"], job["threads"], Path(job["cache"]))


def _open_tensorrt(job: dict[str, Any], spec: Any) -> BenchSession:
    from .run_trt import TensorRTSession

    batches, sizes = [c["batch"] for c in job["combos"]], [c["size"] for c in job["combos"]]
    return TensorRTSession(spec, job["precision"], Path(job["cache"]), batches, sizes)


#: ``Backend.family`` -> the function that opens its session.
_OPENERS: dict[str, Callable[[dict[str, Any], Any], BenchSession]] = {
    "torch": _open_torch,
    "ort": _open_ort,
    "tensorrt": _open_tensorrt,
}


def _open_session(job: dict[str, Any]) -> BenchSession:
    from .models import ModelSpec

    spec = ModelSpec.from_dict(job["model"])
    backend = job["backend"]
    if spec.kind == "pipeline":
        from .run_pipeline import PipelineSession

        return PipelineSession(spec, backend, job["precision"], job["threads"], Path(job["cache"]))
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}")
    return _OPENERS[BACKENDS[backend].family](job, spec)


def _inputs(spec: Any, batch: int, size: int):
    from .models import example_photos, generator_input, hed_input

    if spec.kind == "pipeline":
        return example_photos(batch, size)
    return hed_input(batch, size) if spec.kind == "hed" else generator_input(batch, size, None, spec.hint_channels)


def _measure_one(session, job: dict[str, Any], combo: dict[str, Any], accuracy_done: set[int]) -> dict[str, Any]:
    from .memory import PeakRSS
    from .models import ModelSpec, psnr
    from .schema import empty_result
    from .timing import TimingPolicy, measure

    spec = ModelSpec.from_dict(job["model"])
    batch, size = combo["batch"], combo["size"]
    res = empty_result(spec.name, spec.kind, job["backend"], job["precision"], batch, size, status="ok")
    pol = TimingPolicy(**job["policy"])
    x = _inputs(spec, batch, size)
    with PeakRSS() as mem:
        bound = session.bind(x)
        # peak GPU memory of the timed calls: reset after warm-up (cuDNN autotuning, compilation
        # and graph capture allocate workspaces a steady-state call does not hold)
        timing = measure(bound["call"], pol, bound.get("timer"), after_warmup=session.reset_gpu_peak)
    res["latency_ms"] = timing.stats_ms()
    res["iterations"], res["warmup"] = len(timing.times_s), timing.warmup
    res["timer"] = "cuda_event" if bound.get("timer") else "perf_counter"
    res["first_run_s"] = timing.first_call_s
    res["peak_rss_mb"] = round(mem.peak_mb, 1) if mem.peak_mb is not None else None
    res["peak_gpu_mb"] = session.gpu_peak_mb()
    res["throughput_ips"] = batch / (res["latency_ms"]["mean"] / 1e3)
    if bound.get("host_call"):
        host_pol = TimingPolicy(
            warmup=1,
            repeats=max(3, pol.repeats // 2),
            min_time_s=pol.min_time_s / 2,
            max_time_s=pol.max_time_s / 2,
            min_repeats=min(3, pol.min_repeats),
        )
        res["host_latency_ms"] = measure(bound["host_call"], host_pol).stats_ms()
    details = dict(session.details)
    details["rss_method"] = mem.method
    if timing.stopped_early:
        details["stopped_early"] = f"max_time_s {pol.max_time_s} reached after {len(timing.times_s)} calls"
    cost = (job.get("costs") or {}).get(str(size))
    if cost:
        res["gflops_per_image"] = round(cost["gflops"], 3)
        res["achieved_gflops"] = round(cost["gflops"] * res["throughput_ips"], 2)
        peak = job.get("peak_gflops")
        if peak:
            res["peak_fraction"] = round(res["achieved_gflops"] / peak, 4)
            details["peak_gflops"] = peak
            details["peak_basis"] = job.get("peak_basis") or job["precision"]
    # accuracy once per size, on the first image, against the same runtime's fp32 path
    if size not in accuracy_done and spec.kind != "pipeline":
        accuracy_done.add(size)
        try:
            x1 = x[:1]
            ref, label = session.reference(x1)
            if ref is not None:
                session.bind(x1)["call"]()
                res["accuracy"] = {
                    **psnr(ref, session.output(), spec.out_range),
                    "reference": label,
                    "convention": "advseg_export.parity (output range mapped to 0..255)",
                }
        except Exception as exc:
            details["accuracy_error"] = f"{type(exc).__name__}: {exc}"
    res["details"] = details
    return res


def _error_result(job: dict[str, Any], combo: dict[str, Any], reason: str) -> dict[str, Any]:
    """The ``error`` result of one (batch, size) combination of ``job``."""
    from .schema import empty_result

    model = job["model"]
    return empty_result(
        model["name"],
        model["kind"],
        job["backend"],
        job["precision"],
        combo["batch"],
        combo["size"],
        status="error",
        reason=reason,
    )


def run_measure(job: dict[str, Any]) -> None:
    threads = job["threads"]
    t0 = time.perf_counter()
    try:
        session = _open_session(job)
    except Exception as exc:
        log(traceback.format_exc())
        reason = f"could not load: {type(exc).__name__}: {exc}"
        for c in job["combos"]:
            emit("result", result=_error_result(job, c, reason))
        return
    load_s = time.perf_counter() - t0
    accuracy_done: set[int] = set()
    for combo in job["combos"]:
        emit("start", batch=combo["batch"], size=combo["size"])
        try:
            res = _measure_one(session, job, combo, accuracy_done)
            res["load_s"] = round(load_s, 3)
        except Exception as exc:
            log(traceback.format_exc())
            res = _error_result(
                job, combo, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
            )
        res["details"].setdefault("threads", threads)
        # the point of one process per backend: an ONNX Runtime worker never loads torch
        res["details"]["torch_in_process"] = "torch" in sys.modules
        emit("result", result=res)
    session.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("probe", "measure", "scale"):
        sys.stderr.write("usage: python -m advseg_bench.worker {probe|measure|scale} JOB.json\n")
        return 2
    job = json.loads(Path(argv[1]).read_text())
    if argv[0] == "probe":
        run_probe(job)
    elif argv[0] == "measure":
        run_measure(job)
    else:
        from .scale import run_scale_worker

        run_scale_worker(job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
