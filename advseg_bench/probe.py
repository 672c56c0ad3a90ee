"""Cost model of each model × size (GFLOPs, parameters, activation memory) and the device's
measured peak arithmetic rate per dtype.

GFLOPs are counted once per model and size with ``torch.utils.flop_counter.FlopCounterMode`` on
the *meta* device (shapes only: no memory, no arithmetic), so even 2048² counts in a moment. The
same pass tracks the bytes of live intermediate tensors (a dispatch mode that adds each op's new
output and subtracts it when Python frees it), which gives the eager-mode activation peak per
image that the planner's memory budget uses.

The peak rate is a large matrix product timed for ~1 s per dtype: torch (MKL/oneDNN on CPU,
cuBLAS on GPU) for fp32/bf16/fp16, and ONNX Runtime's ``MatMulInteger`` (u8×s8, the kernel its
int8 QDQ graphs use) for int8 on CPU. On CPU the fp32 peak is the fastest of torch's ``mm``,
ONNX Runtime's ``MatMul`` (MLAS) and numpy's BLAS: MKL takes slow paths on AMD CPUs. Emulated
dtypes (e.g. bf16 on a CPU without avx512_bf16) show up as a very low peak; the planner then
skips combinations that would take too long.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import numpy as np

from .models import ModelSpec

__all__ = ["model_cost", "measure_peaks", "pipeline_hed_size"]


def pipeline_hed_size(size: int) -> int:
    """The size HED runs at inside the SDK pipeline: the photo plus a reflect border of
    ``min(128, size // 4)`` px on each side (``SketchExtractor``'s default)."""
    return size + 2 * min(128, size // 4)


def _meta_module(spec: ModelSpec, which: str):
    import torch

    with torch.device("meta"):
        if which == "hed":
            from advseg_train.hed import HED

            return HED().eval()
        from advseg_train.networks import GeneratorConfig, build_generator

        if spec.config is None:
            raise ValueError(f"{spec.name}: no generator config to count")
        return build_generator(GeneratorConfig.from_dict(spec.config), init_type=None).eval()


def _count(module, size: int, channels: int = 3) -> dict[str, float]:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten
    from torch.utils.flop_counter import FlopCounterMode

    class LiveBytes(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.current = 0
            self.peak = 0

        def _free(self, n: int) -> None:
            self.current -= n

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            ins = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
            for o in tree_flatten(out)[0]:
                if isinstance(o, torch.Tensor) and not o._is_view() and not any(o is a for a in ins):
                    n = o.numel() * o.element_size()
                    self.current += n
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(o, self._free, n)
            return out

    x = torch.empty(1, channels, size, size, device="meta")
    live = LiveBytes()
    with torch.no_grad(), FlopCounterMode(display=False) as fc, live:
        module(x)
    params = sum(p.numel() for p in module.parameters())
    return {
        "gflops": fc.get_total_flops() / 1e9,
        "params_m": params / 1e6,
        "weights_mb": params * 4 / 2**20,
        "activation_peak_mb": live.peak / 2**20,
    }


def model_cost(spec: ModelSpec, sizes: list[int]) -> dict[int, dict[str, Any]]:
    """{size: {"gflops", "params_m", "weights_mb", "activation_peak_mb", "note"}} per image
    (fp32 activations, batch 1). Pipelines add HED at its padded size to the generator."""
    out: dict[int, dict[str, Any]] = {}
    parts = {"generator": ["generator"], "hed": ["hed"], "pipeline": ["hed", "generator"]}[spec.kind]
    modules = {p: _meta_module(spec, p) for p in parts}
    for size in sizes:
        total: dict[str, Any] = {"gflops": 0.0, "params_m": 0.0, "weights_mb": 0.0, "activation_peak_mb": 0.0}
        for p in parts:
            s = pipeline_hed_size(size) if (spec.kind == "pipeline" and p == "hed") else size
            if p == "generator" and spec.fixed_size and s % spec.fixed_size:
                continue
            c = _count(modules[p], s, spec.input_channels if p == "generator" else 3)
            total["gflops"] += c["gflops"]
            total["params_m"] += c["params_m"]
            total["weights_mb"] += c["weights_mb"]
            total["activation_peak_mb"] = max(total["activation_peak_mb"], c["activation_peak_mb"])
        total["note"] = "networks only: HED at the padded size + generator" if spec.kind == "pipeline" else ""
        out[size] = total
    return out


# --------------------------------------------------------------------------- peaks


def _rate(fn, flops: float, seconds: float) -> tuple[float, int]:
    fn()  # warm-up
    best, n, start = float("inf"), 0, time.perf_counter()
    while n < 3 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        n += 1
        if time.perf_counter() - start > 4 * seconds:
            break
    return flops / best / 1e9, n


def _torch_peak(device: str, dtype_name: str, seconds: float) -> dict[str, Any]:
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    limit = 8192 if device == "cuda" else 2048
    # fp32 at a fixed large size; other dtypes grow from 256 while one product takes < 20 ms, so an
    # emulated dtype (e.g. bf16 without avx512_bf16) is measured without taking minutes.
    n = limit if dtype_name == "fp32" else 256
    while True:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)

        def step(a: Any = a, b: Any = b) -> None:
            torch.mm(a, b)
            sync()

        step()  # warm-up: library handles, kernel selection and first-touch stay out of the probe
        t0 = time.perf_counter()
        step()
        dt = time.perf_counter() - t0
        if dt >= 0.02 or n >= limit:
            break
        n *= 2
    gflops, iters = _rate(step, 2.0 * n**3, seconds)
    return {"gflops": round(gflops, 2), "method": f"torch.mm {n}x{n} {dtype_name} on {device}, best of {iters}"}


def _ort_matmul_peak(kind: str, threads: int, seconds: float) -> dict[str, Any]:
    """ONNX Runtime's own CPU matrix product: ``MatMul`` fp32 (MLAS) or ``MatMulInteger`` u8×s8
    (the kernel its int8 QDQ graphs use)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    n = 1024 if kind == "int8" else 2048
    if kind == "int8":
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        ta, tb, ty = TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32
    else:
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        ta = tb = ty = TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "mm",
        [helper.make_tensor_value_info("a", ta, [n, n]), helper.make_tensor_value_info("b", tb, [n, n])],
        [helper.make_tensor_value_info("y", ty, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    a: np.ndarray
    b: np.ndarray
    if kind == "int8":
        a = rng.integers(0, 255, (n, n), dtype=np.uint8)
        b = rng.integers(-127, 127, (n, n), dtype=np.int8)
        what = f"onnxruntime MatMulInteger u8xs8 {n}x{n}"
    else:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        what = f"onnxruntime MatMul fp32 {n}x{n}"
    gops, iters = _rate(lambda: sess.run(None, {"a": a, "b": b}), 2.0 * n**3, seconds)
    return {"gflops": round(gops, 2), "method": f"{what}, best of {iters}"}


def _numpy_peak(seconds: float) -> dict[str, Any]:
    """numpy's BLAS (threads from OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, set by the parent)."""
    n = 2048
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    gflops, iters = _rate(lambda: a @ b, 2.0 * n**3, seconds)
    return {"gflops": round(gflops, 2), "method": f"numpy matmul fp32 {n}x{n}, best of {iters}"}


def measure_peaks(devices: list[str], threads: int, seconds: float = 1.0) -> dict[str, dict[str, Any]]:
    """{device: {dtype: {"gflops", "method"} or {"error"}}} for ``cpu`` and/or ``cuda``."""
    import torch

    torch.set_num_threads(threads)
    peaks: dict[str, dict[str, Any]] = {}
    for dev in devices:
        peaks[dev] = {}
        # on CUDA two fp32 peaks: strict fp32, and TF32 (the tensor-core rate that fp32
        # convolutions run at by default); each result says which it is
        for dt in ("fp32", "tf32", "bf16", "fp16") if dev == "cuda" else ("fp32", "bf16", "fp16"):
            tf32_before = torch.backends.cuda.matmul.allow_tf32
            try:
                if dev == "cuda" and dt in ("fp32", "tf32"):
                    torch.backends.cuda.matmul.allow_tf32 = dt == "tf32"
                peaks[dev][dt] = _torch_peak(dev, "fp32" if dt == "tf32" else dt, seconds)
                if dev == "cuda" and dt in ("fp32", "tf32"):
                    peaks[dev][dt]["method"] += ", TF32 " + ("on" if dt == "tf32" else "off (strict fp32)")
            except Exception as exc:  # an unsupported dtype on this device
                peaks[dev][dt] = {"gflops": None, "error": f"{type(exc).__name__}: {exc}"}
            finally:
                torch.backends.cuda.matmul.allow_tf32 = tf32_before
        if dev == "cpu":
            try:
                peaks[dev]["int8"] = _ort_matmul_peak("int8", threads, seconds)
            except Exception as exc:
                peaks[dev]["int8"] = {"gflops": None, "error": f"{type(exc).__name__}: {exc}"}
            # fp32: the fastest of torch's BLAS, ONNX Runtime's MLAS and numpy's BLAS (MKL takes slow
            # paths on AMD CPUs; OpenBLAS often wins there)
            cands = [peaks[dev]["fp32"]]
            for name, fn in (
                ("onnxruntime", lambda: _ort_matmul_peak("fp32", threads, seconds)),
                ("numpy", lambda: _numpy_peak(seconds)),
            ):
                try:
                    cands.append(fn())
                except Exception as exc:
                    cands.append({"gflops": None, "error": f"{name}: {type(exc).__name__}: {exc}"})
            best = max(cands, key=lambda c: c.get("gflops") or 0.0)
            peaks[dev]["fp32"] = {**best, "candidates": [c for c in cands if c is not best]}
        elif dev == "cuda":
            try:
                a = torch.randint(-128, 127, (8192, 8192), dtype=torch.int8, device="cuda")
                b = torch.randint(-128, 127, (8192, 8192), dtype=torch.int8, device="cuda")

                def step(a: Any = a, b: Any = b) -> None:
                    torch._int_mm(a, b)
                    torch.cuda.synchronize()

                g, it = _rate(step, 2.0 * 8192**3, seconds)
                peaks[dev]["int8"] = {"gflops": round(g, 2), "method": f"torch._int_mm 8192 int8 on cuda, best of {it}"}
            except Exception as exc:
                peaks[dev]["int8"] = {"gflops": None, "error": f"{type(exc).__name__}: {exc}"}
    return peaks
