"""Native TensorRT backend, in the worker process.

One engine per precision, built once with :func:`advseg_export.tensorrt_build.build_engine` from the
bundle's artefact of that precision (strongly typed network: the graph carries the precision) with
a profile covering every batch and size of the run, and cached under the bench cache keyed by the
artefact's sha256, the GPU and the TensorRT version. A matching engine already in the bundle is used
as is. Runs go through :class:`advseg_sdk.runtime.TensorRTRunner`: ``host_call`` is its ``run``
(copy in, execute, copy out); ``call`` re-executes the bound context on its stream
(``execute_async_v3`` + stream synchronize), i.e. device work only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .models import ModelSpec

if TYPE_CHECKING:
    from advseg_sdk.runtime import TensorRTRunner

__all__ = ["TensorRTSession", "engine_profile"]


def engine_profile(channels: int, batch: int, sizes: list[int], input_name: str = "input"):
    """The optimisation profile of the engine that times ``batch``: min batch 1 at the smallest
    size, optimum at this batch (256² when timed, else the smallest size), max at this batch and
    the largest size. TensorRT tunes its kernels for the optimum, so each timed batch gets its own."""
    from advseg_export.tensorrt_build import ShapeProfile

    lo, hi = min(sizes), max(sizes)
    opt = 256 if lo <= 256 <= hi else lo
    return ShapeProfile((1, channels, lo, lo), (batch, channels, opt, opt), (batch, channels, hi, hi), input=input_name)


class TensorRTSession:
    def __init__(self, spec: ModelSpec, precision: str, cache: Path, batches: list[int], sizes: list[int]):
        from advseg_sdk.bundle import load_bundle
        from advseg_sdk.runtime import detect_device

        self.spec, self.precision, self.cache, self.sizes = spec, precision, cache, sorted(set(sizes))
        from .run_ort import device_used_mb

        self.gpu_baseline_mb = device_used_mb()
        t0 = time.perf_counter()
        if spec.bundle is None:
            raise ValueError(f"{spec.name}: the native TensorRT backend needs a bundle")
        self.bundle = load_bundle(spec.bundle)
        self.dev = detect_device()
        self.runner: TensorRTRunner | None = None
        self._batch: int | None = None
        self._use(min(batches))
        self.load_s = time.perf_counter() - t0
        self._last: np.ndarray | None = None

    def _use(self, batch: int) -> None:
        """Load (building once, cached) the engine whose profile optimum is ``batch``."""
        from advseg_sdk.runtime import TensorRTRunner, engine_mismatch

        if self._batch == batch:
            return
        bundle, precision = self.bundle, self.precision
        engine, built = None, False
        for a in bundle.engines:  # a bundle's own engine, if it was built for this GPU and batch
            if (
                a.precision == precision
                and a.engine is not None
                and engine_mismatch(a.engine, self.dev) is None
                and any((pr.get("opt") or [None])[0] == batch for pr in a.engine.profiles)
            ):
                engine = a.path
        if engine is None:
            engine, built = self._build(bundle, precision, self.cache, batch, self.sizes, self.dev)
        if self.runner is not None:
            self.runner.close()
        self.runner, self._batch = TensorRTRunner(engine), batch
        source = bundle.artefact(precision)
        self.details: dict[str, Any] = {
            "engine": Path(engine).name,
            "built_here": built,
            "gpu": self.dev.gpu_name,
            "tensorrt": self.dev.tensorrt_version,
            "profile_opt_batch": batch,
            "bundle_parity": bundle.parity.get(source.file),
        }

    @staticmethod
    def _build(bundle, precision: str, cache: Path, batch: int, sizes: list[int], dev) -> tuple[Path, bool]:
        from advseg_export.tensorrt_build import build_engine

        art = bundle.artefact(precision)
        src, sha = art.path, art.sha256
        if precision == "int8":  # TensorRT's parser takes symmetric int8 only
            from advseg_sdk.files import sha256_file

            from .bundles import tensorrt_int8

            src = tensorrt_int8(bundle.path)
            sha = sha256_file(src)
        spec = bundle.input_spec
        profile = engine_profile(spec.graph_channels, batch, sizes, spec.name or "input")
        lo, hi = min(sizes), max(sizes)
        tag = f"{sha[:16]}-{(dev.gpu_name or 'gpu').replace(' ', '_')}-trt{dev.tensorrt_version}-opt{batch}-{lo}-{hi}"
        out = cache / "engines" / f"{tag}.engine"
        built = not out.is_file()
        if built:
            out.parent.mkdir(parents=True, exist_ok=True)
            build_engine(src, out, profile, timing_cache=cache / "engines" / "timing.cache")
        return out, built

    def bind(self, x: np.ndarray) -> dict[str, Any]:
        from advseg_sdk.runtime import _check  # cuda-python error check shared with the SDK

        self._use(int(x.shape[0]))
        runner = self._runner()
        x = np.ascontiguousarray(x, dtype=runner.input_dtype)
        self._last = runner.run(x)  # sets shapes and tensor addresses on the context
        cudart, stream, ctx = runner._cudart, runner._stream, runner.context

        def call() -> None:
            if not ctx.execute_async_v3(stream):
                raise RuntimeError("TensorRT execution failed")
            _check(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

        def host_call() -> None:
            self._last = runner.run(x)

        return {"call": call, "timer": None, "host_call": host_call}

    def output(self) -> np.ndarray:
        return np.asarray(self._last, dtype=np.float32)

    def reference(self, x: np.ndarray) -> tuple[np.ndarray | None, str]:
        return None, ""  # the bundle's parity of the source artefact is reported instead

    def reset_gpu_peak(self) -> None:
        pass

    def gpu_peak_mb(self) -> float | None:
        from .run_ort import process_gpu_mb

        mb, how = process_gpu_mb(self.gpu_baseline_mb)
        self.details["gpu_memory_method"] = how
        return mb

    def _runner(self) -> TensorRTRunner:
        if self.runner is None:
            raise RuntimeError("no TensorRT engine loaded")
        return self.runner

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
