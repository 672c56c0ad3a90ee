"""TensorRT engines from our ONNX graphs, through the TensorRT Python API (10 / 11).

* Strongly typed networks (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``): every layer runs in
  the precision the ONNX graph gives it, so an fp16 graph whose norms are fp32 (see
  :mod:`advseg_export.precision`) becomes an fp16 engine with fp32 norms. No FP16/INT8 builder
  flags (TensorRT 11 removed them; they conflict with strong typing anyway).
* One optimisation profile (min/opt/max input shapes), a reusable timing cache, and the facts an
  engine depends on recorded for the manifest: GPU name and compute capability (as
  :func:`advseg_sdk.runtime.detect_device` reports them, so the runtime compares like with like),
  TensorRT and CUDA versions, the profile.

The import is guarded and fails with :class:`TensorRTUnavailableError` naming what to install.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "TRT_INSTALL_HINT",
    "TensorRTUnavailableError",
    "ShapeProfile",
    "parse_shape",
    "import_tensorrt",
    "require_tensorrt",
    "engine_file_name",
    "build_engine",
]

TRT_INSTALL_HINT = (
    "--trt requires the tensorrt Python package and an NVIDIA GPU; install TensorRT 10 or newer "
    "for your CUDA version on a machine with an NVIDIA driver (e.g. `pip install tensorrt-cu12` or "
    "`pip install tensorrt-cu13`, plus `pip install cuda-python` for the runtime), then re-run the export"
)


class TensorRTUnavailableError(RuntimeError):
    """TensorRT (or a CUDA GPU) is not available on this machine."""


def parse_shape(text: str | Sequence[int]) -> tuple[int, int, int, int]:
    """``"1x3x256x256"`` (or a 4-sequence) -> ``(1, 3, 256, 256)``."""
    if isinstance(text, str):
        parts = re.split(r"[x,×\s]+", text.strip().lower())
        try:
            dims = tuple(int(p) for p in parts if p)
        except ValueError:
            raise ValueError(f"shape {text!r} is not NxCxHxW integers, e.g. 1x3x256x256") from None
    else:
        dims = tuple(int(v) for v in text)
    if len(dims) != 4 or any(d < 1 for d in dims):
        raise ValueError(f"shape {text!r} must be 4 positive integers NxCxHxW, e.g. 1x3x256x256")
    return dims


@dataclass(frozen=True)
class ShapeProfile:
    """min/opt/max input shapes of one TensorRT optimisation profile."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]
    input: str = "input"

    def __post_init__(self) -> None:
        for name in ("min", "opt", "max"):
            object.__setattr__(self, name, parse_shape(getattr(self, name)))
        if len({self.min[1], self.opt[1], self.max[1]}) != 1:
            raise ValueError(f"profile channels differ: min {self.min}, opt {self.opt}, max {self.max}")
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max)):
            raise ValueError(
                f"profile must satisfy min <= opt <= max per axis, got min {self.min}, opt {self.opt}, max {self.max}"
            )

    @classmethod
    def default(
        cls, channels: int = 3, fixed_size: tuple[int, int] | None = None, size_multiple: int = 1, input: str = "input"
    ) -> ShapeProfile:
        """Batch 1..8; fixed-size nets at their size, others 64²..1024² with 256² optimal."""
        if fixed_size is not None:
            h, w = fixed_size
            return cls((1, channels, h, w), (1, channels, h, w), (8, channels, h, w), input)
        lo = max(64, size_multiple)
        return cls((1, channels, lo, lo), (1, channels, 256, 256), (8, channels, 1024, 1024), input)

    def check_for(self, fixed_size: tuple[int, int] | None, size_multiple: int, channels: int) -> None:
        """Refuse a profile the network cannot run (wrong channels, sizes off its grid)."""
        for name in ("min", "opt", "max"):
            n, c, h, w = getattr(self, name)
            if c != channels:
                raise ValueError(
                    f"profile {name} shape {getattr(self, name)} has {c} channels; the network takes {channels}"
                )
            if fixed_size is not None and (h, w) != tuple(fixed_size):
                raise ValueError(
                    f"profile {name} shape {getattr(self, name)}: this network only runs at "
                    f"{fixed_size[0]}x{fixed_size[1]}"
                )
            if h % size_multiple or w % size_multiple:
                raise ValueError(
                    f"profile {name} shape {getattr(self, name)}: H and W must be multiples of {size_multiple}"
                )

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def import_tensorrt():
    """The ``tensorrt`` module (TensorRT >= 10), or :class:`TensorRTUnavailableError`."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise TensorRTUnavailableError(f"{TRT_INSTALL_HINT} (import tensorrt failed: {exc})") from None
    version = getattr(trt, "__version__", "0")
    if int(version.split(".")[0]) < 10 or not hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        raise TensorRTUnavailableError(
            f"tensorrt {version} is too old: advseg builds strongly typed networks (TensorRT >= 10). {TRT_INSTALL_HINT}"
        )
    return trt


def require_tensorrt():
    """Fail fast (before any export work) unless TensorRT and a CUDA GPU are present.

    Returns ``(tensorrt module, advseg_sdk.runtime.DeviceInfo)``.
    """
    trt = import_tensorrt()
    from advseg_sdk.runtime import detect_device

    dev = detect_device()
    if not dev.gpu_name:
        raise TensorRTUnavailableError(f"no NVIDIA GPU found (cuda-python / nvidia-smi). {TRT_INSTALL_HINT}")
    return trt, dev


def _cuda_version() -> str | None:
    """CUDA runtime version as "major.minor" (cuda-python, else torch's build), or None."""
    for mod in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            import importlib

            cudart = importlib.import_module(mod)
            err, v = cudart.cudaRuntimeGetVersion()
            if int(err) == 0:
                return f"{v // 1000}.{(v % 1000) // 10}"
        except Exception:
            continue
    try:
        import torch

        return torch.version.cuda
    except Exception:
        return None


def engine_file_name(gpu_name: str, trt_version: str) -> str:
    """``<gpu>-trt<version>.engine``, e.g. ``nvidia-h100-80gb-hbm3-trt10.8.0.engine``."""
    slug = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-") or "gpu"
    return f"{slug}-trt{trt_version}.engine"


def _parser_errors(parser) -> str:
    lines = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        node = getattr(e, "node_name", None)
        op = getattr(e, "node_operator", None)
        where = ""
        if callable(node) and node():
            where = f"node {node()!r}" + (f" ({op()})" if callable(op) and op() else "") + ": "
        lines.append(f"  - {where}{e.desc()}")
    return "\n".join(lines) or "  (no details from the parser)"


def build_engine(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike,
    profile: ShapeProfile,
    timing_cache: str | os.PathLike | None = None,
    workspace_bytes: int | None = None,
    hardware_compatible: bool = False,
    optimization_level: int | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Build and serialize a TensorRT engine for ``onnx_path``; returns the manifest ``engine``
    object (GPU, compute capability, TensorRT/CUDA versions, profile, options).

    ``timing_cache``: loaded if the file exists (a cache from another GPU/version is ignored with a
    warning) and saved back after the build. ``hardware_compatible`` builds an engine that runs on
    any Ampere-or-newer GPU (slower; recorded as ``hardware_compatible``).
    """
    trt, dev = require_tensorrt()
    from advseg_sdk.files import atomic_write_bytes

    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise RuntimeError(f"TensorRT's ONNX parser rejected {onnx_path}:\n{_parser_errors(parser)}")
    if network.num_inputs != 1:
        raise RuntimeError(f"{onnx_path}: expected one network input, TensorRT sees {network.num_inputs}")
    inp = network.get_input(0)
    if inp.name != profile.input:
        raise ValueError(f"profile is for input {profile.input!r}, the network input is {inp.name!r}")

    config = builder.create_builder_config()
    if workspace_bytes:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if optimization_level is not None:
        config.builder_optimization_level = int(optimization_level)
    if hardware_compatible:
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(inp.name, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(opt_profile)

    cache_file = Path(timing_cache) if timing_cache is not None else None
    cache_bytes = cache_file.read_bytes() if cache_file is not None and cache_file.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    if not config.set_timing_cache(cache, ignore_mismatch=False) and cache_bytes:
        warnings.warn(f"timing cache {cache_file} does not match this GPU/TensorRT; starting a new one", stacklevel=2)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    atomic_write_bytes(engine_path, bytes(memoryview(serialized)))
    if cache_file is not None:
        atomic_write_bytes(cache_file, bytes(memoryview(config.get_timing_cache().serialize())))

    return {
        "gpu_name": dev.gpu_name,
        "compute_capability": dev.compute_capability,
        "tensorrt_version": trt.__version__,
        "cuda_version": _cuda_version(),
        "profiles": [profile.to_dict()],
        "strongly_typed": True,
        "hardware_compatible": bool(hardware_compatible),
        "built_from": onnx_path.name,
    }
