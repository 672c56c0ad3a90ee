"""The benchmark result document, schema ``advseg-bench/1``: its fields, validation, reading, writing.

One document per run::

    {
      "schema": "advseg-bench/1",
      "kind": "matrix" | "scale",
      "created": "2025-01-01T00:00:00+00:00",
      "command": ["advseg-bench", "run", ...],
      "machine":  {"hostname", "slug", "os", "python", "cpu_model", "cpu_cores_logical",
                   "cpu_cores_physical", "cpu_flags_simd": [...], "memory_gb", "gpus": [...]},
      "software": {"advseg", "torch", "onnxruntime", "onnxruntime_providers", "numpy", "onnx",
                   "tensorrt", "cuda"},                 # None where absent
      "settings": {"threads", "warmup", "repeats", "min_time_s", "max_time_s", ...},
      "peaks":    {"cpu": {"fp32": {"gflops": 123.4, "method": "...", ...}, "bf16": {...}}},
      "load":     {"before": [1m, 5m, 15m], "during_max_1m", "during_mean_1m",
                   "foreign_cpu_percent_mean", "samples"},
      "backends": [{"backend": "ort-cuda", "available": false, "reason": "..."}],
      "results":  [<result>, ...],
      "targets":  [{"name", "value", "target", "met", "detail", "size", "batch"}]  # matrix runs, optional
    }

A result (one model × backend × precision × batch × size)::

    {"model": "resnet_9blocks-ngf64", "model_kind": "generator" | "hed" | "pipeline",
     "backend": "torch-eager", "precision": "fp32", "batch": 1, "size": 256,
     "status": "ok" | "skipped" | "error", "reason": null | "...",
     "latency_ms": {"mean", "std", "min", "p50", "p90", "p99", "max"},  # per call (whole batch)
     "host_latency_ms": {...} | null,     # GPU backends: with host<->device copies
     "iterations": 10, "warmup": 2, "timer": "perf_counter" | "cuda_event",
     "throughput_ips": 12.3,              # images per second = batch / mean latency
     "peak_rss_mb": 812.0, "peak_gpu_mb": null,
     "gflops_per_image": 99.1, "achieved_gflops": 80.2, "peak_fraction": 0.55,
     "load_s": 0.8, "first_run_s": 1.2,  # model load; first call (compile / engine build)
     "accuracy": {"psnr_db", "max_abs", "reference"} | null,
     "details": {...}}                    # providers, threads, artefact, options
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SCHEMA_VERSION = "advseg-bench/1"
STATUSES = ("ok", "skipped", "error")
KINDS = ("matrix", "scale")

TOP_LEVEL_FIELDS = (
    "schema",
    "kind",
    "created",
    "command",
    "machine",
    "software",
    "settings",
    "peaks",
    "load",
    "backends",
    "results",
)
RESULT_FIELDS = (
    "model",
    "model_kind",
    "backend",
    "precision",
    "batch",
    "size",
    "status",
    "reason",
    "latency_ms",
    "iterations",
    "throughput_ips",
    "peak_rss_mb",
    "peak_gpu_mb",
    "gflops_per_image",
    "achieved_gflops",
    "peak_fraction",
    "accuracy",
    "details",
)
LATENCY_FIELDS = ("mean", "std", "min", "p50", "p90", "p99", "max")
MACHINE_FIELDS = ("slug", "os", "cpu_model", "cpu_cores_logical")
SOFTWARE_FIELDS = ("advseg", "numpy", "onnxruntime", "torch")


class ResultsError(ValueError):
    """A results file is missing, unreadable, or does not follow the schema."""


def result_key(r: Mapping[str, Any]) -> tuple:
    """The identity of a result within a run: (model, backend, precision, batch, size)."""
    return (r["model"], r["backend"], r["precision"], int(r["batch"]), int(r["size"]))


def empty_result(
    model: str,
    model_kind: str,
    backend: str,
    precision: str,
    batch: int,
    size: int,
    status: str = "skipped",
    reason: str | None = None,
) -> dict:
    """A result record with every field present (measurements None)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    return {
        "model": model,
        "model_kind": model_kind,
        "backend": backend,
        "precision": precision,
        "batch": int(batch),
        "size": int(size),
        "status": status,
        "reason": reason,
        "latency_ms": None,
        "host_latency_ms": None,
        "iterations": 0,
        "warmup": 0,
        "timer": None,
        "throughput_ips": None,
        "peak_rss_mb": None,
        "peak_gpu_mb": None,
        "gflops_per_image": None,
        "achieved_gflops": None,
        "peak_fraction": None,
        "load_s": None,
        "first_run_s": None,
        "accuracy": None,
        "details": {},
    }


def _problems(doc: Any) -> Iterable[str]:
    if not isinstance(doc, Mapping):
        yield "top level must be a JSON object"
        return
    if doc.get("schema") != SCHEMA_VERSION:
        yield f"schema is {doc.get('schema')!r}, this advseg-bench reads {SCHEMA_VERSION!r}"
        return
    for key in TOP_LEVEL_FIELDS:
        if key not in doc:
            yield f"missing top-level field {key!r}"
    if doc.get("kind") not in KINDS:
        yield f"kind must be one of {KINDS}, got {doc.get('kind')!r}"
    for section, fields in (("machine", MACHINE_FIELDS), ("software", SOFTWARE_FIELDS)):
        sec = doc.get(section)
        if not isinstance(sec, Mapping):
            yield f"{section!r} must be an object"
            continue
        for f in fields:
            if f not in sec:
                yield f"missing {section}.{f}"
    results = doc.get("results")
    if not isinstance(results, list):
        yield "'results' must be a list"
        return
    for i, r in enumerate(results):
        if not isinstance(r, Mapping):
            yield f"results[{i}] must be an object"
            continue
        missing = [f for f in RESULT_FIELDS if f not in r]
        if missing:
            yield f"results[{i}] is missing {', '.join(missing)}"
            continue
        if r["status"] not in STATUSES:
            yield f"results[{i}].status {r['status']!r} is not one of {STATUSES}"
        if r["status"] == "ok":
            lat = r["latency_ms"]
            if not isinstance(lat, Mapping) or any(k not in lat for k in LATENCY_FIELDS):
                yield f"results[{i}] is 'ok' but latency_ms lacks {LATENCY_FIELDS}"
            elif not all(isinstance(lat[k], (int, float)) and math.isfinite(lat[k]) for k in LATENCY_FIELDS):
                yield f"results[{i}].latency_ms has non-numeric values"
        elif not r.get("reason"):
            yield f"results[{i}] is {r['status']!r} without a reason"


def validate(doc: Any, where: str = "<results>") -> None:
    """Raise :class:`ResultsError` listing every way ``doc`` departs from the schema."""
    problems = list(_problems(doc))
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise ResultsError(f"{where}: not a valid {SCHEMA_VERSION} document: {shown}")


def load(path: str | os.PathLike) -> dict:
    """Read and validate a results JSON file."""
    p = Path(path)
    if not p.is_file():
        raise ResultsError(f"results file not found: {p}")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{p}: not a JSON file ({exc})") from None
    validate(doc, str(p))
    return doc


def _clean(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(_clean(doc), indent=1, allow_nan=False) + "\n"


def write(path: str | os.PathLike, doc: Mapping[str, Any]) -> Path:
    """Validate and write ``doc`` atomically (temporary file + rename)."""
    from advseg_sdk.files import atomic_write_text

    validate(doc, str(path))
    return atomic_write_text(path, dumps(doc))
