"""The backends, which precisions each supports, and why a backend or combination is skipped.

This module imports neither torch nor onnxruntime: the facts it decides on (CUDA present,
providers offered, TensorRT installed, a C++ compiler for inductor) come from the probe process
as a plain dict (:func:`advseg_bench.worker.probe_environment`).

================  ====================================================  =========================
backend           what runs                                             precisions
================  ====================================================  =========================
torch-eager       the PyTorch module (CUDA when present, else CPU)      fp32, bf16 (autocast);
                                                                        fp16 on CUDA
torch-compile     ``torch.compile`` (inductor) of the same module       as torch-eager
torch-cudagraph   eager module captured once in a ``torch.cuda.CUDAGraph``  CUDA only: fp32/fp16/bf16
ort-cpu           bundle ONNX artefact, ONNX Runtime CPU EP             fp32, int8 (QDQ), fp16 artefact
ort-cuda          bundle artefact, CUDA EP, IO binding on device        fp32, fp16
ort-cuda-graph    as ort-cuda with ``enable_cuda_graph``                fp32, fp16
ort-trt           fp32 / int8 artefact, TensorRT EP (fp16 via flag)     fp32, fp16, int8
tensorrt          native engine built from the artefact (strongly typed) fp32, fp16, int8
================  ====================================================  =========================

The pipeline (photo → HED sketch → colour) is the SDK's, so it runs on the ONNX Runtime backends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from advseg_sdk.vocab import PRECISIONS

__all__ = [
    "BACKENDS",
    "FAMILIES",
    "PRECISIONS",
    "Backend",
    "BenchSession",
    "backend_problem",
    "precision_problem",
    "device_of",
]


@dataclass(frozen=True)
class Backend:
    name: str
    family: str  # "torch" | "ort" | "tensorrt"
    gpu_only: bool
    description: str


#: The backend families; each has one session class (``run_torch``, ``run_ort``, ``run_trt``),
#: chosen by :func:`advseg_bench.worker._open_session` from ``Backend.family``.
FAMILIES = ("torch", "ort", "tensorrt")


class BenchSession(Protocol):
    """What a worker needs of a backend's session (``TorchSession``, ``OrtSession``,
    ``TensorRTSession``, ``PipelineSession``): bind inputs to a timed call, read the output back,
    a reference output to compare with, GPU peak memory, and release."""

    details: dict[str, Any]

    def bind(self, x: Any) -> dict[str, Any]:
        """``{"call": fn}`` plus optionally ``"timer"`` (device timing) and ``"host_call"``."""
        ...

    def output(self) -> Any: ...

    def reference(self, x: Any) -> tuple[Any, str]: ...

    def reset_gpu_peak(self) -> None: ...

    def gpu_peak_mb(self) -> float | None: ...

    def close(self) -> None: ...


#: A function that opens the session of one family for a measure job (see ``worker``).
SessionOpener = Callable[[dict[str, Any]], BenchSession]


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("torch-eager", "torch", False, "PyTorch eager"),
        Backend("torch-compile", "torch", False, "torch.compile (inductor)"),
        Backend("torch-cudagraph", "torch", True, "PyTorch eager captured in a CUDA graph"),
        Backend("ort-cpu", "ort", False, "ONNX Runtime, CPU execution provider"),
        Backend("ort-cuda", "ort", True, "ONNX Runtime, CUDA execution provider (IO binding)"),
        Backend("ort-cuda-graph", "ort", True, "ONNX Runtime, CUDA execution provider with CUDA graphs"),
        Backend("ort-trt", "ort", True, "ONNX Runtime, TensorRT execution provider"),
        Backend("tensorrt", "tensorrt", True, "native TensorRT engine"),
    )
}


def device_of(backend: str, env: dict[str, Any], want: str = "auto") -> str:
    """``cuda`` or ``cpu``: torch backends follow ``--device`` (auto = CUDA when present)."""
    b = BACKENDS[backend]
    if b.gpu_only:
        return "cuda"
    if b.family == "torch":
        if want == "cpu":
            return "cpu"
        return "cuda" if env.get("torch_cuda") else "cpu"
    return "cpu"


_CUDA_EP = (
    "CUDAExecutionProvider",
    "the CUDA EP needs onnxruntime-gpu and an NVIDIA GPU",
    "onnxruntime-gpu is installed but no NVIDIA GPU was found",
)
#: GPU ONNX Runtime backends: (execution provider, what it needs, message when no GPU is found).
_GPU_EPS: dict[str, tuple[str, str, str]] = {
    "ort-cuda": _CUDA_EP,
    "ort-cuda-graph": _CUDA_EP,
    "ort-trt": (
        "TensorrtExecutionProvider",
        "the TensorRT EP needs onnxruntime-gpu, TensorRT libraries and an NVIDIA GPU",
        "the TensorRT EP is listed but no NVIDIA GPU was found",
    ),
}


def backend_problem(backend: str, env: dict[str, Any], device: str = "auto") -> str | None:
    """Why ``backend`` cannot run on this machine (None when it can)."""
    if backend not in BACKENDS:
        return f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}"
    providers = env.get("ort_providers") or []
    torch_cuda = env.get("torch_cuda")
    if backend == "torch-eager":
        return None if env.get("torch") else f"torch is not installed ({env.get('torch_error')})"
    if backend == "torch-compile":
        if not env.get("torch"):
            return f"torch is not installed ({env.get('torch_error')})"
        if device_of(backend, env, device) == "cpu" and not env.get("cxx_compiler"):
            return "torch.compile (inductor) on CPU needs a C++ compiler (g++/clang++), none found"
        return None
    if backend == "torch-cudagraph":
        if device == "cpu":
            return "CUDA graphs need a GPU; --device cpu was given"
        return None if torch_cuda else f"no CUDA device for torch ({env.get('torch_cuda_reason')})"
    if backend == "ort-cpu":
        return None if "CPUExecutionProvider" in providers else "onnxruntime is not installed"
    if backend in _GPU_EPS:
        ep, needs, no_gpu = _GPU_EPS[backend]
        if ep not in providers:
            return f"onnxruntime here offers {', '.join(providers or ['nothing'])}; {needs}"
        return None if env.get("gpu") else no_gpu
    if backend == "tensorrt":
        if not env.get("tensorrt"):
            return f"TensorRT Python package is not installed ({env.get('tensorrt_error')})"
        if not env.get("cuda_python"):
            return "native TensorRT here needs cuda-python (pip install cuda-python)"
        return None if env.get("gpu") else "TensorRT is installed but no NVIDIA GPU was found"
    return None  # pragma: no cover


def precision_problem(
    backend: str, precision: str, device: str, kind: str, bundle_precisions: list[str] | None, env: dict[str, Any]
) -> str | None:
    """Why ``backend`` does not run ``precision`` for a model of ``kind`` (None when it does)."""
    if precision not in PRECISIONS:
        return f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}"
    fam = BACKENDS[backend].family
    have = bundle_precisions or []
    if kind == "pipeline" and fam != "ort":
        return "the end-to-end pipeline is the SDK's (ONNX Runtime / TensorRT engines in bundles); torch has none"
    if fam == "torch":
        if precision == "int8":
            return (
                "torch int8 is not a deployment path here (quantised models ship as the ONNX int8 artefact: "
                "ort-cpu/ort-trt)"
            )
        if precision == "fp16" and device == "cpu":
            return (
                "torch fp16 on CPU has no fast kernels (no AVX512-FP16/AMX here); bf16 autocast is the CPU "
                "low-precision path"
            )
        return None
    if precision == "bf16":
        return "bundles have no bf16 ONNX artefact (ONNX Runtime has no bf16 convolution kernels)"
    if backend == "ort-cpu":
        if precision not in have:
            return f"the bundle has no {precision} artefact (has: {', '.join(have) or 'none'})"
        return None
    if backend in ("ort-cuda", "ort-cuda-graph"):
        if precision == "int8":
            return "QDQ int8 graphs are not accelerated by the CUDA EP (they run through TensorRT: ort-trt, tensorrt)"
        return None if precision in have else f"the bundle has no {precision} artefact (has: {', '.join(have)})"
    if backend == "ort-trt":
        need = "int8" if precision == "int8" else "fp32"
        return None if need in have else f"the bundle has no {need} artefact (has: {', '.join(have)})"
    if backend == "tensorrt":
        if kind == "pipeline":
            return (
                "the pipeline runs through the SDK's ONNX Runtime path here; native engines are benchmarked per model"
            )
        return None if precision in have else f"the bundle has no {precision} artefact to build an engine from"
    return None
