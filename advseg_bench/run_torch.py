"""PyTorch backends, in the worker process: eager, ``torch.compile`` and CUDA graphs.

Low precisions use autocast (CPU: bf16; CUDA: fp16 or bf16), so normalisation and the output
stay where autocast keeps them (fp32). On CUDA the input is resident on the device and each call
is timed with CUDA events; the host round trip (copy in, run, copy out) is timed separately.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .models import ModelSpec

__all__ = ["TorchSession"]


def _dtype(precision: str):
    import torch

    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def load_module(spec: ModelSpec):
    """The torch module of ``spec`` (eval mode, no grads)."""
    if spec.kind == "hed":
        from advseg_train.hed import HED, load_hed

        if spec.checkpoint is None:
            return load_hed()
        from safetensors.torch import load_file  # a converted state dict (e.g. the GPU asset pack's)

        net = HED()
        net.load_state_dict({k: v.float() for k, v in load_file(spec.checkpoint).items()})
        return net.eval().requires_grad_(False)
    if spec.checkpoint is None:
        raise FileNotFoundError(
            f"{spec.name}: no torch weights (the bundle's source checkpoint is not available); "
            "benchmark torch backends with --checkpoint or --arch"
        )
    from advseg_train.networks import load_generator

    gen = load_generator(spec.checkpoint)
    gen.requires_grad_(False)
    return gen


class TorchSession:
    """One model on one torch backend and precision."""

    def __init__(
        self, spec: ModelSpec, backend: str, precision: str, device: str, threads: int, compile_mode: str = "default"
    ):
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.spec, self.backend, self.precision, self.device = spec, backend, precision, device
        t0 = time.perf_counter()
        self.module = load_module(spec).to(device)
        if device == "cuda":
            self.module = self.module.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True
        self.fn = self.module
        if backend == "torch-compile":
            self.fn = torch.compile(
                self.module, mode=None if compile_mode == "default" else compile_mode, dynamic=False
            )
        self.load_s = time.perf_counter() - t0
        self.details: dict[str, Any] = {
            "device": device,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "autocast": None if precision == "fp32" else str(_dtype(precision)).replace("torch.", ""),
        }
        if backend == "torch-compile":
            self.details["compile_mode"] = compile_mode
        if device == "cuda":
            self.details.update(
                gpu=torch.cuda.get_device_name(0),
                cudnn_benchmark=True,
                channels_last=True,
                tf32_conv=torch.backends.cudnn.allow_tf32,
                tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
            )
            if precision == "fp32" and torch.backends.cudnn.allow_tf32:
                self.details["fp32_math"] = "tf32 (cuDNN convolutions on tensor cores)"
        self._last: Any = None

    # ------------------------------------------------------------------ helpers
    def _ctx(self):
        torch = self.torch
        dt = _dtype(self.precision)
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode() if self.backend != "torch-cudagraph" else torch.no_grad())
        if dt is not None:
            # autocast's cast-weight cache must be off under CUDA-graph capture: cached casts made
            # outside the capture would be freed while the graph still points at them
            stack.enter_context(torch.autocast(self.device, dtype=dt, cache_enabled=self.backend != "torch-cudagraph"))
        return stack

    def _to_device(self, x: np.ndarray):
        t = self.torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        if self.device == "cuda":
            t = t.contiguous(memory_format=self.torch.channels_last)
        return t

    def _forward(self, t):
        with self._ctx():
            return self.fn(t)

    # ------------------------------------------------------------------ API used by the worker
    def bind(self, x: np.ndarray) -> dict[str, Any]:
        """Callables for input ``x``: ``call`` (device-resident), ``timer`` (CUDA events or None),
        ``host_call`` (GPU: host→device→host round trip, else None)."""
        xt = self._to_device(x)
        out: dict[str, Any] = {"timer": None, "host_call": None}
        if self.backend == "torch-cudagraph":
            out["call"] = self._capture(xt)
        else:

            def call() -> None:
                self._last = self._forward(xt)

            out["call"] = call
        if self.device == "cuda":
            out["timer"] = self._cuda_event_timer
            out["host_call"] = self._host_call(x)
        return out

    def _host_call(self, x: np.ndarray) -> Callable[[], None]:
        """Host round trip: copy ``x`` in, run, copy the output out. With CUDA graphs the input is
        copied into the captured static buffer and the graph replayed (what a deployment does)."""
        torch = self.torch
        sync = torch.cuda.synchronize
        if self.backend == "torch-cudagraph":
            graph, static_x, static_y = self._graph, self._static_x, self._static_y

            def replay_call() -> None:
                static_x.copy_(self._to_device(x))
                graph.replay()
                static_y.float().cpu()
                sync()

            return replay_call

        def host_call() -> None:
            y = self._forward(self._to_device(x))
            y.float().cpu()
            sync()

        return host_call

    def _capture(self, xt) -> Callable[[], None]:
        """Warm up on a side stream, capture one forward in a CUDA graph, return its replay."""
        torch = self.torch
        static_x = xt.clone()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                self._forward(static_x)
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_y = self._forward(static_x)
        self._graph, self._static_x, self._static_y = graph, static_x, static_y

        def replay() -> None:
            graph.replay()
            self._last = static_y

        return replay

    def _cuda_event_timer(self, fn: Callable[[], None]) -> float:
        torch = self.torch
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    def output(self) -> np.ndarray:
        y = self._last
        if self.device == "cuda":
            self.torch.cuda.synchronize()
        return y.float().cpu().numpy()

    def reference(self, x: np.ndarray) -> tuple[np.ndarray | None, str]:
        """Strict-fp32 eager output for ``x`` (the accuracy reference; TF32 off on CUDA, so that
        fp32-with-TF32 is measured too), unless this already is strict fp32 eager."""
        torch = self.torch
        cuda = self.device == "cuda"
        if self.precision == "fp32" and self.backend == "torch-eager" and not cuda:
            return None, ""
        flags = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        try:
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
            with torch.inference_mode():
                y = self.module(self._to_device(x))
            y = y.float().cpu().numpy()
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
        return y, f"torch eager fp32 ({self.device}{', TF32 off' if cuda else ''}), same input"

    def reset_gpu_peak(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()

    def gpu_peak_mb(self) -> float | None:
        if self.device != "cuda":
            return None
        return self.torch.cuda.max_memory_allocated() / 2**20

    def close(self) -> None:
        self._last = None
        if self.device == "cuda":
            self.torch.cuda.empty_cache()
