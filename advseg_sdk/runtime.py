"""Runtimes that execute bundle artefacts: ONNX Runtime sessions and native TensorRT engines.

- :class:`OnnxRunner`: an ONNX Runtime session over an ordered provider list (default TensorRT EP →
  CUDA EP → CPU, filtered by what this onnxruntime build offers), session options (threads, graph
  optimisation level), dtype handling (fp16 graphs with fp32 or fp16 IO) and IO binding when the
  session runs on CUDA.
- :class:`TensorRTRunner`: a serialized TensorRT engine through the TensorRT 10 Python API
  (``deserialize_cuda_engine``, ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``)
  with device buffers from cuda-python. Both imports are optional and guarded.
- :func:`open_runner`: picks the artefact of a bundle for this machine (a matching engine, else
  ONNX fp16 on CUDA / fp32 on CPU), with a warning or a :class:`~advseg_sdk.bundle.BundleError`
  (``strict=True``) when an engine was built for another GPU or TensorRT version.

Every runner has ``.run(x) -> np.ndarray`` (x float NCHW; output float32), ``.label``,
``.providers``, ``.input_name``, ``.input_dtype`` and the limits ``.max_batch``, ``.max_hw`` and
``.min_hw`` (None = no limit; a TensorRT engine's optimisation profile sets them). The GPU paths
follow the documented onnxruntime and TensorRT 10 APIs (README: what was not run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Union

import numpy as np

from .assets import advseg_home
from .bundle import Artefact, Bundle, BundleError, EngineInfo, load_bundle

__all__ = [
    "DEFAULT_PROVIDERS",
    "ProviderSpec",
    "Runner",
    "OnnxRunner",
    "TensorRTRunner",
    "RuntimeUnavailableError",
    "EngineMismatchWarning",
    "DeviceInfo",
    "available_providers",
    "resolve_providers",
    "detect_device",
    "engine_mismatch",
    "open_runner",
    "check_graph_io",
]

DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(bfloat16)": None,
}

ProviderSpec = Union[str, tuple[str, dict]]  # noqa: UP007  (a runtime alias: `|` needs 3.10 objects)


class RuntimeUnavailableError(RuntimeError):
    """A runtime (TensorRT, cuda-python, a GPU) that was asked for is not installed or present."""


class EngineMismatchWarning(UserWarning):
    """A bundle's TensorRT engine does not fit this GPU / TensorRT; ONNX is used instead."""


class Runner(Protocol):
    """What the Colorizer and the SketchExtractor need of an ONNX Runtime or TensorRT session."""

    @property
    def label(self) -> str: ...
    @property
    def providers(self) -> list[str]: ...
    @property
    def input_name(self) -> str: ...
    @property
    def input_dtype(self) -> np.dtype: ...
    @property
    def max_batch(self) -> int | None: ...
    @property
    def max_hw(self) -> tuple[int, int] | None: ...
    @property
    def min_hw(self) -> tuple[int, int] | None: ...

    def run(self, x: np.ndarray) -> np.ndarray: ...


# --------------------------------------------------------------------------- providers


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def _provider_name(p: ProviderSpec) -> str:
    return p if isinstance(p, str) else p[0]


def _default_provider_options(name: str) -> dict:
    if name == "TensorrtExecutionProvider":
        cache = advseg_home() / "trt-ep-cache"
        return {
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache),
        }
    return {}


def resolve_providers(providers: Sequence[ProviderSpec] | None = None) -> list[tuple[str, dict]]:
    """The ordered ``(name, options)`` list a session is created with.

    ``None`` → :data:`DEFAULT_PROVIDERS` filtered by what this onnxruntime build offers. A caller's
    list keeps its order; entries this build lacks are dropped with a warning, and an error is
    raised if none is left.
    """
    have = available_providers()
    if providers is None:
        return [(p, _default_provider_options(p)) for p in DEFAULT_PROVIDERS if p in have]
    if isinstance(providers, str):
        providers = [providers]
    out: list[tuple[str, dict]] = []
    missing = []
    for p in providers:
        name = _provider_name(p)
        if name not in have:
            missing.append(name)
            continue
        opts = dict(p[1]) if not isinstance(p, str) else _default_provider_options(name)
        out.append((name, opts))
    if missing:
        msg = f"onnxruntime here offers {', '.join(have)}; not available: {', '.join(missing)}" + (
            " (install onnxruntime-gpu for CUDA/TensorRT)" if set(missing) & set(_GPU_PROVIDERS) else ""
        )
        if not out:
            raise RuntimeUnavailableError(f"none of the requested providers can run: {msg}")
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
    return out


# --------------------------------------------------------------------------- ONNX Runtime


class OnnxRunner:
    """An ONNX Runtime session for one ONNX file; ``run`` takes and returns NCHW float arrays."""

    def __init__(
        self,
        onnx_path: str | os.PathLike,
        providers: Sequence[ProviderSpec] | None = None,
        intra_op_threads: int | None = None,
        graph_optimization: str = "all",
        inter_op_threads: int | None = None,
        io_binding: bool | None = None,
        label: str | None = None,
        artefact: Artefact | None = None,
    ):
        """``label`` names the runner (default ``onnx:<file>``; the first provider is appended in
        brackets); ``artefact`` is the bundle artefact it runs, if it runs one."""
        import onnxruntime as ort

        path = Path(onnx_path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        if graph_optimization not in _OPT_LEVELS:
            raise ValueError(f"graph_optimization must be one of {sorted(_OPT_LEVELS)}, got {graph_optimization!r}")
        so = ort.SessionOptions()
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _OPT_LEVELS[graph_optimization])
        if intra_op_threads:
            so.intra_op_num_threads = int(intra_op_threads)
        if inter_op_threads:
            so.inter_op_num_threads = int(inter_op_threads)
        so.log_severity_level = 3  # errors only; provider fallbacks are reported by us
        resolved = resolve_providers(providers)
        for name, opts in resolved:
            if name == "TensorrtExecutionProvider" and opts.get("trt_engine_cache_path"):
                Path(opts["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
        try:
            self.session = ort.InferenceSession(
                str(path),
                sess_options=so,
                providers=[n for n, _ in resolved],
                provider_options=[o for _, o in resolved],
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"onnxruntime cannot load {path}: {exc}") from None
        self.path = path
        self.providers: list[str] = self.session.get_providers()
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or not self.session.get_outputs():
            raise BundleError(
                f"{path.name} has {len(inputs)} graph inputs and {len(self.session.get_outputs())} outputs; "
                "a bundle graph takes exactly one input and returns at least one output"
                if inputs
                else f"{path.name} has 0 graph inputs; a bundle graph takes exactly one (NCHW image)"
            )
        inp = inputs[0]
        self.input_name: str = inp.name
        self.input_shape = inp.shape
        self.output_names = [o.name for o in self.session.get_outputs()]
        dtype = _ORT_DTYPES.get(inp.type)
        if dtype is None:
            raise ValueError(f"{path}: unsupported input type {inp.type} (expected float or float16)")
        self.input_dtype = np.dtype(dtype)
        self.max_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        h, w = inp.shape[2:4] if len(inp.shape) == 4 else (None, None)
        # A static H, W means exactly that size (the bundle's fixed_size covers it), not a limit.
        self.static_hw = (h, w) if isinstance(h, int) and isinstance(w, int) else None
        self.max_hw: tuple[int, int] | None = None
        self.min_hw: tuple[int, int] | None = None
        self.on_cuda = any(p in _GPU_PROVIDERS for p in self.providers)
        self.use_io_binding = self.on_cuda if io_binding is None else bool(io_binding and self.on_cuda)
        self._device_id = 0
        for name, opts in resolved:
            if name == "CUDAExecutionProvider" and "device_id" in opts:
                self._device_id = int(opts["device_id"])
        self.label = f"{label or 'onnx:' + path.name} [{self.providers[0]}]"
        self.artefact = artefact  # the bundle artefact it runs (open_runner), if any

    def __repr__(self) -> str:
        return f"OnnxRunner({str(self.path)!r}, providers={self.providers}, input_dtype={self.input_dtype})"

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run the first output for NCHW ``x`` (cast to the graph's input dtype); returns float32."""
        return self.run_all(x)[0]

    def run_all(self, x: np.ndarray) -> list[np.ndarray]:
        """Every graph output, as float32 arrays, in graph order."""
        x = np.ascontiguousarray(x, dtype=self.input_dtype)
        if self.use_io_binding:
            outs = self._run_io_binding(x)
        else:
            outs = self.session.run(None, {self.input_name: x})
        return [np.asarray(o, dtype=np.float32) for o in outs]

    def _run_io_binding(self, x: np.ndarray) -> list[np.ndarray]:
        # onnxruntime's IOBinding API: the input is copied to the GPU once, outputs stay there
        # until copied back, avoiding per-run host staging.
        import onnxruntime as ort

        binding = self.session.io_binding()
        x_dev = ort.OrtValue.ortvalue_from_numpy(x, "cuda", self._device_id)
        binding.bind_ortvalue_input(self.input_name, x_dev)
        for name in self.output_names:
            binding.bind_output(name, "cuda", self._device_id)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()


# --------------------------------------------------------------------------- TensorRT


def _import_cudart():
    """cuda-python's runtime module (new layout first, then the pre-12.6 one)."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise RuntimeUnavailableError("native TensorRT engines need cuda-python: pip install cuda-python") from None
    return cudart


def _import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise RuntimeUnavailableError(
            "TensorRT is not installed: install NVIDIA TensorRT 10 for Python (pip install tensorrt) "
            "on a CUDA machine, or use the bundle's ONNX artefacts"
        ) from None
    return trt


def _check(result: Any, what: str) -> Any:
    """cuda-python calls return (err, *values); raise on a non-zero error code."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA call {what} failed: {err}")
    return rest[0] if len(rest) == 1 else rest


class TensorRTRunner:
    """A serialized TensorRT engine (TensorRT 10 API) with one input and one or more outputs;
    needs an NVIDIA GPU, TensorRT 10 and cuda-python."""

    def __init__(
        self,
        engine_path: str | os.PathLike,
        device_id: int = 0,
        label: str | None = None,
        artefact: Artefact | None = None,
    ):
        trt = _import_tensorrt()
        cudart = _import_cudart()
        self._trt, self._cudart = trt, cudart
        path = Path(engine_path)
        _check(cudart.cudaSetDevice(device_id), "cudaSetDevice")
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise ValueError(
                f"TensorRT {trt.__version__} cannot deserialize {path}: built for another TensorRT "
                "version or GPU, or corrupt"
            )
        self.engine = engine
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise ValueError(f"{path}: expected one input tensor, found {inputs}")
        self.input_name = inputs[0]
        self.output_names = [n for n in names if n not in inputs]
        self.input_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.input_name)))
        self._out_dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in self.output_names}
        pmin, _popt, pmax = engine.get_tensor_profile_shape(self.input_name, 0)
        self.profile_min, self.profile_max = tuple(pmin), tuple(pmax)
        self.max_batch = int(pmax[0])
        self.max_hw = (int(pmax[2]), int(pmax[3]))
        self.min_hw = (int(pmin[2]), int(pmin[3]))
        self.providers = ["TensorRT"]
        self.path = path
        self.label = label or f"tensorrt:{path.name}"
        self.artefact = artefact  # the bundle artefact it runs (open_runner), if any
        self._stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device ptr, capacity in bytes)

    def _device_buffer(self, name: str, nbytes: int) -> int:
        ptr, cap = self._buffers.get(name, (0, 0))
        if cap < nbytes:
            if ptr:
                _check(self._cudart.cudaFree(ptr), "cudaFree")
            ptr = _check(self._cudart.cudaMalloc(nbytes), "cudaMalloc")
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.run_all(x)[0]

    def run_all(self, x: np.ndarray) -> list[np.ndarray]:
        cudart = self._cudart
        x = np.ascontiguousarray(x, dtype=self.input_dtype)
        if x.ndim != 4 or any(not (lo <= s <= hi) for s, lo, hi in zip(x.shape, self.profile_min, self.profile_max)):
            raise ValueError(
                f"input shape {x.shape} is outside the engine's profile {self.profile_min}..{self.profile_max} "
                f"({self.path.name}); tile the image or rebuild the engine with larger --max-shape"
            )
        if not self.context.set_input_shape(self.input_name, tuple(x.shape)):
            raise ValueError(f"TensorRT rejected input shape {x.shape} for {self.path.name}")
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        xin = self._device_buffer(self.input_name, x.nbytes)
        _check(cudart.cudaMemcpyAsync(xin, x.ctypes.data, x.nbytes, h2d, self._stream), "cudaMemcpyAsync H2D")
        self.context.set_tensor_address(self.input_name, xin)
        outs = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            host = np.empty(shape, dtype=self._out_dtypes[name])
            ptr = self._device_buffer(name, max(host.nbytes, 1))
            self.context.set_tensor_address(name, ptr)
            outs[name] = (host, ptr)
        if not self.context.execute_async_v3(int(self._stream)):  # cudaStream_t -> raw handle
            raise RuntimeError(f"TensorRT execution failed for {self.path.name}")
        for host, ptr in outs.values():
            _check(cudart.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, d2h, self._stream), "cudaMemcpyAsync D2H")
        _check(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return [np.asarray(h, dtype=np.float32) for h, _ in outs.values()]

    def close(self) -> None:
        for ptr, _ in self._buffers.values():
            self._cudart.cudaFree(ptr)
        self._buffers.clear()
        if self._stream is not None:
            self._cudart.cudaStreamDestroy(self._stream)
            self._stream = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


# --------------------------------------------------------------------------- device detection


@dataclass(frozen=True)
class DeviceInfo:
    """What an engine must match: this machine's GPU and TensorRT (None when absent)."""

    gpu_name: str | None = None
    compute_capability: str | None = None
    tensorrt_version: str | None = None


def _gpu_via_cudart() -> tuple[str, str] | None:
    try:
        cudart = _import_cudart()
        props = _check(cudart.cudaGetDeviceProperties(0), "cudaGetDeviceProperties")
    except Exception:
        return None
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return name.strip("\x00 "), f"{props.major}.{props.minor}"


def _gpu_via_nvidia_smi() -> tuple[str, str] | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    line = out.strip().splitlines()[0] if out.strip() else ""
    if "," not in line:
        return None
    name, cc = (s.strip() for s in line.rsplit(",", 1))
    return name, cc


def detect_device() -> DeviceInfo:
    """This machine's first GPU (cuda-python, else nvidia-smi) and TensorRT version, if any."""
    gpu = _gpu_via_cudart() or _gpu_via_nvidia_smi()
    trt_version = None
    try:
        trt_version = _import_tensorrt().__version__
    except RuntimeUnavailableError:
        pass
    return DeviceInfo(
        gpu_name=gpu[0] if gpu else None, compute_capability=gpu[1] if gpu else None, tensorrt_version=trt_version
    )


def _version3(v: str) -> tuple[str, ...]:
    return tuple(v.split(".")[:3])


def _cc_tuple(cc: str | None) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in (cc or "0").split("."))
    except ValueError:
        return (0,)


def engine_mismatch(engine: EngineInfo, device: DeviceInfo) -> str | None:
    """Why ``engine`` cannot run on ``device`` (None when it can).

    An engine needs the TensorRT major.minor.patch it was built with, and the same GPU model
    and compute capability, unless it was built hardware-compatible (``hardware_compatible``:
    any GPU of compute capability 8.0 or newer).
    """
    if device.gpu_name is None:
        return f"engine built for {engine.describe()}, but this machine has no CUDA GPU"
    if device.tensorrt_version is None:
        return f"engine built for {engine.describe()}, but TensorRT is not installed here"
    if engine.hardware_compatible:
        if _cc_tuple(device.compute_capability) < (8, 0):
            return (
                f"hardware-compatible engine needs compute capability 8.0 or newer, this GPU is "
                f"{device.gpu_name} (sm {device.compute_capability})"
            )
    elif engine.compute_capability != device.compute_capability:
        return (
            f"engine built for {engine.gpu_name} (sm {engine.compute_capability}), this GPU is "
            f"{device.gpu_name} (sm {device.compute_capability})"
        )
    elif engine.gpu_name != device.gpu_name:
        return f"engine built on {engine.gpu_name}, this GPU is {device.gpu_name}"
    if _version3(engine.tensorrt_version) != _version3(device.tensorrt_version):
        return (
            f"engine built with TensorRT {engine.tensorrt_version}, this machine has TensorRT {device.tensorrt_version}"
        )
    return None


# --------------------------------------------------------------------------- choosing an artefact


def open_runner(
    bundle: Bundle | str | os.PathLike,
    providers: Sequence[ProviderSpec] | None = None,
    precision: str = "auto",
    strict: bool = False,
    device: DeviceInfo | None = None,
    **session_options: Any,
) -> Runner:
    """A runner for the artefact of ``bundle`` that suits this machine.

    ``precision``: ``"auto"`` (a TensorRT engine matching this GPU and TensorRT version, else ONNX
    fp16 when the session runs on CUDA, else fp32), an ONNX precision (``fp32``, ``fp16``,
    ``bf16``, ``int8``), or ``"trt"`` / ``"trt-fp16"`` for an engine. An engine that does not fit
    this machine falls back to ONNX with an :class:`EngineMismatchWarning`, or raises
    :class:`BundleError` with ``strict=True``. ``device`` describes this machine's GPU/TensorRT
    for engine matching (default: :func:`detect_device`). ``session_options`` go to :class:`OnnxRunner`
    (``intra_op_threads``, ``inter_op_threads``, ``graph_optimization``, ``io_binding``).
    """
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    known = ("auto", "fp32", "fp16", "bf16", "int8", "trt")
    if precision not in known and not precision.startswith("trt-"):
        raise BundleError(
            f"unsupported precision {precision!r}; choose 'auto' or one this bundle has: {', '.join(b.available())}"
        )

    want_engine = precision == "auto" or precision.startswith("trt")
    if want_engine:
        engines = b.engines
        if precision != "auto":
            engines = [b.artefact(precision)]  # raises BundleError listing what exists
        if engines:
            dev = device or detect_device()
            reasons = []
            for a in engines:
                why = engine_mismatch(a.engine, dev) if a.engine is not None else "no engine record in the manifest"
                if why is None:
                    try:
                        return TensorRTRunner(a.path, label=f"tensorrt-{a.precision}:{b.name}", artefact=a)
                    except (RuntimeUnavailableError, ValueError, RuntimeError) as exc:
                        why = f"{a.file}: {exc}"
                else:
                    why = f"{a.file}: {why}"
                reasons.append(why)
            msg = f"bundle {b.source}: no usable TensorRT engine ({'; '.join(reasons)})"
            if strict:
                raise BundleError(msg)
            warnings.warn(msg + "; falling back to ONNX", EngineMismatchWarning, stacklevel=2)
        onnx_prec = "auto"
    else:
        onnx_prec = precision

    onnx_arts = [a for a in b.artefacts if a.format == "onnx"]
    if not onnx_arts:
        raise BundleError(
            f"bundle {b.source} has no ONNX artefact to fall back to; available: {', '.join(b.available())}"
        )
    resolved = resolve_providers(providers)
    on_gpu = any(n in _GPU_PROVIDERS for n, _ in resolved)
    if onnx_prec == "auto":
        order = ("fp16", "fp32", "bf16", "int8") if on_gpu else ("fp32", "bf16", "fp16", "int8")
        art = next(a for p in order for a in onnx_arts if a.precision == p)
    else:
        art = b.artefact(onnx_prec)  # BundleError listing the available precisions
    runner = OnnxRunner(
        art.path, providers=resolved, label=f"onnx-{art.precision}:{b.name}", artefact=art, **session_options
    )
    check_graph_io(runner, b, art.file)
    return runner


def check_graph_io(runner: OnnxRunner, bundle: Bundle, file: str) -> None:
    """Refuse a graph whose input/output disagree with the manifest (names, rank, channels,
    fixed size), so a wrong bundle fails here with its reason, not later as a shape error."""
    spec, out_spec = bundle.input_spec, bundle.output_spec
    where = f"bundle {bundle.source}: {file}:"
    shape = list(runner.input_shape)
    if spec.name and runner.input_name != spec.name:
        raise BundleError(f"{where} graph input is named {runner.input_name!r}, the manifest says {spec.name!r}")
    if len(shape) != 4:
        raise BundleError(f"{where} graph input {runner.input_name!r} has rank {len(shape)}, expected NCHW (rank 4)")
    if isinstance(shape[1], int) and shape[1] != spec.graph_channels:
        says = f"{spec.channels}" + (f" + {spec.hints.channels} hint channels" if spec.hints else "")
        raise BundleError(
            f"{where} graph input {runner.input_name!r} has {shape[1]} channels, the manifest says {says}"
        )
    if spec.fixed_size and runner.static_hw and tuple(runner.static_hw) != tuple(spec.fixed_size):
        raise BundleError(
            f"{where} graph input is {runner.static_hw[0]}x{runner.static_hw[1]}, the manifest's "
            f"fixed_size is {spec.fixed_size[0]}x{spec.fixed_size[1]}"
        )
    out = runner.session.get_outputs()[0]
    if out_spec.name and out.name != out_spec.name:
        raise BundleError(f"{where} graph output is named {out.name!r}, the manifest says {out_spec.name!r}")
    oshape = list(out.shape)
    if len(oshape) != 4:
        raise BundleError(f"{where} graph output {out.name!r} has rank {len(oshape)}, expected NCHW (rank 4)")
    want = out_spec.channels
    if want is not None and isinstance(oshape[1], int) and oshape[1] != want:
        raise BundleError(f"{where} graph output {out.name!r} has {oshape[1]} channels, the manifest says {want}")
