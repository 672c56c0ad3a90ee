"""ONNX Runtime backends, in the worker process: CPU EP, CUDA EP (IO binding, optionally CUDA
graphs) and the TensorRT EP, on a bundle's artefacts through :class:`advseg_sdk.runtime.OnnxRunner`.

CPU: ``OnnxRunner.run`` (numpy in, numpy out), the call a deployment makes. CUDA: input and output
live on the GPU (``OrtValue`` + IO binding) so the timed call is the device work; the host round
trip is timed separately. ``enable_cuda_graph`` captures the first run and replays it; it needs
fixed input/output addresses, which the binding provides. TensorRT EP: one session per shape
(explicit min/opt/max profile), engines and timing cache kept under the bench cache, so the first
call (engine build) is reported as ``first_run_s``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from .models import ModelSpec

__all__ = ["OrtSession", "process_gpu_mb"]


def _nvidia_smi(args: list[str]) -> str | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        return subprocess.run([exe, *args], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def device_used_mb(index: int = 0) -> float | None:
    """Memory in use on GPU ``index``, whoever holds it (nvidia-smi ``memory.used``)."""
    out = _nvidia_smi(["--query-gpu=index,memory.used", "--format=csv,noheader,nounits"])
    for line in (out or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(index) and parts[1].replace(".", "", 1).isdigit():
            return float(parts[1])
    return None


def process_gpu_mb(baseline_mb: float | None = None) -> tuple[float | None, str]:
    """GPU memory this process holds now (ORT's arena keeps its peak) and how it was read.

    nvidia-smi lists compute processes by host PID; in a container (or a VM sandbox) this
    process's PID differs or the list is empty. Then the device's used memory minus
    ``baseline_mb`` (read before the session was created) is reported instead."""
    import os

    out = _nvidia_smi(["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"])
    for line in (out or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(os.getpid()) and parts[1].isdigit():
            return float(parts[1]), "nvidia-smi, this PID"
    used = device_used_mb()
    if used is not None and baseline_mb is not None:
        return max(0.0, used - baseline_mb), "nvidia-smi device memory.used minus before loading (PID not listed)"
    return None, "nvidia-smi unavailable" if used is None else "PID not listed and no baseline"


def _artefact_for(backend: str, precision: str) -> str:
    if backend == "ort-trt":
        return "int8" if precision == "int8" else "fp32"  # TensorRT EP: fp16 through its flag
    return precision


def trt_profile_shapes(input_name: str, shape: tuple[int, ...]) -> dict[str, str]:
    """TensorRT EP profile options for exactly ``shape`` (min = opt = max): the optimum is the
    batch and size being timed, so the engine is tuned for the call it is measured on."""
    dims = "x".join(str(int(d)) for d in shape)
    return {f"trt_profile_{k}_shapes": f"{input_name}:{dims}" for k in ("min", "opt", "max")}


class OrtSession:
    """One bundle artefact on one ONNX Runtime backend."""

    def __init__(self, spec: ModelSpec, backend: str, precision: str, threads: int, cache: Path):
        from advseg_sdk.bundle import load_bundle

        self.spec, self.backend, self.precision, self.threads = spec, backend, precision, threads
        self.cache = cache
        t0 = time.perf_counter()
        if spec.bundle is None:
            raise ValueError(f"{spec.name}: ONNX Runtime backends need a bundle")
        self.bundle = load_bundle(spec.bundle)
        self.gpu_baseline_mb = device_used_mb() if backend != "ort-cpu" else None
        self.artefact = self.bundle.artefact(_artefact_for(backend, precision))
        self.model_path = self.artefact.path
        self.out_channels = self.bundle.output_spec.channels or 3
        if backend == "ort-trt" and precision == "int8":
            from .bundles import tensorrt_int8

            self.model_path = tensorrt_int8(spec.bundle)  # symmetric: TensorRT rejects zero-points
        self._runner = None if backend == "ort-trt" else self._make_runner(self.model_path, None)
        self.load_s = time.perf_counter() - t0
        self.details: dict[str, Any] = {
            "artefact": self.artefact.file if self.model_path == self.artefact.path else self.model_path.name,
            "threads": threads,
            "bundle_parity": self.bundle.parity.get(self.artefact.file),
        }
        if self._runner is not None:
            self.details["providers"] = self._runner.providers
        self._last: Any = None
        self._shape_runner: tuple | None = None

    # ------------------------------------------------------------------ sessions
    def _providers(self, shape: tuple[int, ...] | None, backend: str | None = None) -> list:
        b = backend or self.backend
        cuda_opts = {"device_id": 0, "cudnn_conv_algo_search": "EXHAUSTIVE"}
        if b == "ort-cpu":
            return ["CPUExecutionProvider"]
        if b == "ort-cuda":
            return [("CUDAExecutionProvider", cuda_opts), "CPUExecutionProvider"]
        if b == "ort-cuda-graph":
            return [("CUDAExecutionProvider", {**cuda_opts, "enable_cuda_graph": "1"}), "CPUExecutionProvider"]
        # ort-trt: an explicit profile for exactly this shape
        if shape is None:
            raise ValueError("the TensorRT EP is opened per input shape")
        name = self.bundle.input_spec.name or "input"
        trt_cache = self.cache / "ort-trt-cache"
        trt_cache.mkdir(parents=True, exist_ok=True)
        trt_opts = {
            "device_id": 0,
            "trt_fp16_enable": self.precision == "fp16",
            "trt_int8_enable": self.precision == "int8",
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(trt_cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(trt_cache),
            **trt_profile_shapes(name, shape),
        }
        return [("TensorrtExecutionProvider", trt_opts), ("CUDAExecutionProvider", cuda_opts), "CPUExecutionProvider"]

    def _make_runner(self, path: Path, shape: tuple[int, ...] | None, backend: str | None = None):
        from advseg_sdk.runtime import OnnxRunner

        providers = self._providers(shape, backend)
        want = providers[0] if isinstance(providers[0], str) else providers[0][0]
        runner = OnnxRunner(
            path, providers=providers, intra_op_threads=self.threads, inter_op_threads=1, io_binding=False
        )
        if runner.providers[0] != want:
            raise RuntimeError(f"onnxruntime did not enable {want} for {path.name} (got {runner.providers})")
        return runner

    def _runner_for(self, shape: tuple[int, ...]):
        if self.backend != "ort-trt":
            return self._runner
        if self._shape_runner is None or self._shape_runner[0] != shape:
            self._shape_runner = (shape, self._make_runner(self.model_path, shape))
            self.details["providers"] = self._shape_runner[1].providers
        return self._shape_runner[1]

    # ------------------------------------------------------------------ API used by the worker
    def bind(self, x: np.ndarray) -> dict[str, Any]:
        runner = self._runner_for(tuple(x.shape))
        x = np.ascontiguousarray(x, dtype=runner.input_dtype)
        if self.backend == "ort-cpu":

            def call() -> None:
                self._last = runner.run(x)

            return {"call": call, "timer": None, "host_call": None}
        return self._bind_cuda(runner, x)

    def _bind_cuda(self, runner, x: np.ndarray) -> dict[str, Any]:
        import onnxruntime as ort

        sess = runner.session
        out_meta = sess.get_outputs()[0]
        out_dtype = np.float16 if out_meta.type == "tensor(float16)" else np.float32
        n, _, h, w = x.shape
        x_dev = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
        y_dev = ort.OrtValue.ortvalue_from_shape_and_type([n, self.out_channels, h, w], out_dtype, "cuda", 0)
        binding = sess.io_binding()
        binding.bind_ortvalue_input(runner.input_name, x_dev)
        binding.bind_ortvalue_output(out_meta.name, y_dev)
        self._binding, self._y_dev = binding, y_dev  # keep the device buffers alive

        def call() -> None:
            sess.run_with_iobinding(binding)  # synchronous: returns when the GPU work is done
            self._last = binding

        def host_call() -> None:
            # through the same binding (a CUDA-graph session runs only on its bound buffers):
            # copy the input into the device buffer, run, copy the output back
            x_dev.update_inplace(x)
            sess.run_with_iobinding(binding)
            binding.copy_outputs_to_cpu()

        return {"call": call, "timer": None, "host_call": host_call}

    def output(self) -> np.ndarray:
        y = self._last
        if y is None:
            raise RuntimeError("no output yet")
        if hasattr(y, "copy_outputs_to_cpu"):  # an IO binding with device-resident outputs
            y = y.copy_outputs_to_cpu()[0]
        return np.asarray(y, dtype=np.float32)

    def reference(self, x: np.ndarray) -> tuple[np.ndarray | None, str]:
        """The fp32 artefact on the same provider, for non-fp32 precisions."""
        if self.precision == "fp32":
            return None, ""
        fp32 = self.bundle.artefact("fp32")
        shape = tuple(x.shape)
        if self.backend == "ort-trt":
            prev, self.precision = self.precision, "fp32"
            try:
                runner = self._make_runner(fp32.path, shape)
            finally:
                self.precision = prev
        else:
            # a CUDA-graph session only runs on bound device buffers: the reference runs on the
            # plain CUDA EP (IO binding through the SDK runner)
            backend = "ort-cuda" if self.backend == "ort-cuda-graph" else None
            runner = self._make_runner(fp32.path, shape, backend)
        y = runner.run(np.ascontiguousarray(x, dtype=runner.input_dtype))
        return y, f"{fp32.file} on {runner.providers[0]}, same input"

    def reset_gpu_peak(self) -> None:
        pass

    def gpu_peak_mb(self) -> float | None:
        if self.backend == "ort-cpu":
            return None
        mb, how = process_gpu_mb(self.gpu_baseline_mb)
        self.details["gpu_memory_method"] = how
        return mb

    def close(self) -> None:
        self._runner = None
        self._shape_runner = None
        self._last = None
