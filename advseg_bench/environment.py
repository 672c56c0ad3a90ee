"""What the benchmark ran on: machine, software versions, and how busy the machine was meanwhile.

Nothing here imports torch (versions are read from package metadata), so the parent process stays
light; GPU facts come from ``nvidia-smi`` when it exists.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
import threading
import time
from importlib import metadata
from typing import Any

import psutil

__all__ = ["machine_info", "software_versions", "machine_slug", "isa_tier", "LoadMonitor", "cpu_count", "cli_fields"]

_SIMD = (
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "avx512_fp16",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
    "asimd",
    "sve",
    "bf16",
    "i8mm",
)


def cpu_count() -> int:
    """Cores this process may use (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cli_fields(options: dict[str, Any], *names: str) -> dict[str, Any]:
    """The command-line ``options`` in ``names``, as the config fields of the same names;
    an unset ``threads`` becomes :func:`cpu_count`."""
    fields = {n: options[n] for n in names}
    if "threads" in fields:
        fields["threads"] = fields["threads"] or cpu_count()
    return fields


def _cpuinfo() -> tuple[str, list[str]]:
    model = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        text = open("/proc/cpuinfo", encoding="utf-8", errors="replace").read()
    except OSError:
        return model, flags
    m = re.search(r"^(model name|Model|Hardware)\s*:\s*(.+)$", text, re.M)
    if m:
        model = m.group(2).strip()
    f = re.search(r"^(flags|Features)\s*:\s*(.+)$", text, re.M)
    if f:
        have = set(f.group(2).split())
        flags = [s for s in _SIMD if s in have]
    return model, flags


def _nvidia_smi(*args: str, check: bool = False) -> str | None:
    """What ``nvidia-smi *args`` prints; None when there is no nvidia-smi or it fails."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        return subprocess.run([exe, *args], capture_output=True, text=True, timeout=15, check=check).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def _gpus() -> list[dict]:
    out = _nvidia_smi(
        "--query-gpu=name,memory.total,driver_version,compute_cap", "--format=csv,noheader,nounits", check=True
    )
    if out is None:
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 4:
            gpus.append(
                {
                    "name": parts[0],
                    "memory_mb": float(parts[1]) if parts[1].replace(".", "").isdigit() else None,
                    "driver": parts[2],
                    "compute_capability": parts[3],
                }
            )
    return gpus


#: CPU vector-ISA tiers, best first: (tier name, any of these /proc/cpuinfo flags). The tier names
#: the machine in result files, because one CPU model string (a VM's "AMD EPYC") covers hosts with
#: and without AVX-512, VNNI and bf16, and those run int8 and bf16 at very different speeds.
_ISA_TIERS = (
    ("amx", ("amx_bf16", "amx_int8")),
    ("avx512bf16", ("avx512_bf16",)),
    ("avx512vnni", ("avx512_vnni",)),
    ("avx512", ("avx512f",)),
    ("avx2vnni", ("avx_vnni",)),
    ("avx2", ("avx2",)),
    ("sve", ("sve",)),
    ("neon", ("asimd",)),
)


def isa_tier(flags: list[str] | tuple[str, ...]) -> str | None:
    """The best vector-ISA tier among ``flags`` (``avx512bf16``, ``avx2`` ...), or None."""
    have = set(flags)
    return next((name for name, need in _ISA_TIERS if have.intersection(need)), None)


def machine_slug(info: dict[str, Any] | None = None) -> str:
    """A file-name-safe machine name, e.g. ``cpu-2core-amd-epyc-avx512bf16`` or
    ``gpu-nvidia-h100-80gb-hbm3``."""
    info = info or machine_info()
    if info.get("gpus"):
        base = "gpu-" + info["gpus"][0]["name"]
    else:
        tier = isa_tier(info.get("cpu_flags_simd") or [])
        base = f"cpu-{info['cpu_cores_logical']}core-{info['cpu_model']}" + (f"-{tier}" if tier else "")
    slug = re.sub(r"\(r\)|\(tm\)|processor|cpu @.*$|\d+-core", "", base.lower())
    slug = re.sub(r"[^a-z0-9]+", "-", slug).strip("-")
    return re.sub(r"-+", "-", slug)[:60]


def machine_info() -> dict[str, Any]:
    model, flags = _cpuinfo()
    info = {
        "hostname": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": platform.python_version(),
        "cpu_model": model,
        "cpu_cores_logical": cpu_count(),
        "cpu_cores_physical": psutil.cpu_count(logical=False),
        "cpu_flags_simd": flags,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpus": _gpus(),
    }
    info["slug"] = machine_slug(info)
    return info


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def software_versions() -> dict[str, Any]:
    """Package versions from metadata (no heavy imports), plus ONNX Runtime's providers."""
    ort_dist = next((d for d in ("onnxruntime-gpu", "onnxruntime") if _version(d)), "onnxruntime")
    try:
        import onnxruntime as ort

        providers = list(ort.get_available_providers())
    except ImportError:
        providers = []
    smi = _nvidia_smi()
    m = re.search(r"CUDA Version:\s*([\d.]+)", smi) if smi is not None else None
    cuda = m.group(1) if m else None
    return {
        "advseg": _version("advseg"),
        "torch": _version("torch"),
        "onnxruntime": _version(ort_dist),
        "onnxruntime_dist": ort_dist,
        "onnxruntime_providers": providers,
        "numpy": _version("numpy"),
        "onnx": _version("onnx"),
        "opencv": _version("opencv-python-headless") or _version("opencv-python"),
        "tensorrt": _version("tensorrt") or _version("tensorrt-cu12") or _version("tensorrt-cu13"),
        "cuda_driver_max": cuda,
    }


class LoadMonitor:
    """Samples the 1-minute load average and how much CPU other processes use, in a thread.

    ``foreign_cpu_percent`` is the machine's busy CPU (in % of one core) minus what this process
    and its children use: a quiet machine shows ~0 while the benchmark runs.
    """

    def __init__(self, interval_s: float = 2.0):
        self.interval_s = interval_s
        self.before = list(os.getloadavg())
        self.samples: list[tuple[float, float]] = []  # (load1, foreign %)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="advseg-bench-load", daemon=True)

    def __enter__(self) -> LoadMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @staticmethod
    def _own_cpu_s() -> float:
        me = psutil.Process()
        total = 0.0
        for p in [me, *me.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)
            except psutil.Error:
                pass
        return total

    def _loop(self) -> None:
        ncpu = psutil.cpu_count() or 1
        psutil.cpu_percent(None)
        own0, t0 = self._own_cpu_s(), time.monotonic()
        while not self._stop.wait(self.interval_s):
            busy = psutil.cpu_percent(None) * ncpu  # % of one core
            own1, t1 = self._own_cpu_s(), time.monotonic()
            # children that exited between samples make own time jump; clamp to [0, busy]
            own = max(0.0, min(100.0 * (own1 - own0) / max(t1 - t0, 1e-6), busy))
            own0, t0 = own1, t1
            self.samples.append((os.getloadavg()[0], max(0.0, busy - own)))

    def summary(self) -> dict[str, Any]:
        loads = [s[0] for s in self.samples]
        foreign = [s[1] for s in self.samples]
        return {
            "before": [round(v, 2) for v in self.before],
            "after": [round(v, 2) for v in os.getloadavg()],
            "during_max_1m": round(max(loads), 2) if loads else None,
            "during_mean_1m": round(sum(loads) / len(loads), 2) if loads else None,
            "foreign_cpu_percent_mean": round(sum(foreign) / len(foreign), 1) if foreign else None,
            "foreign_cpu_percent_max": round(max(foreign), 1) if foreign else None,
            "samples": len(self.samples),
            "note": "load averages include the benchmark's own threads; foreign_cpu_percent is CPU "
            "used by other processes (100 = one core)",
        }
