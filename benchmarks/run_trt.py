"""Native TensorRT backend, in the worker process (not verified here: no GPU, no TensorRT).

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
from typing import Any

import numpy as np

from .models import ModelSpec

__all__ = ["TensorRTSession"]


class TensorRTSession:
    def __init__(self, spec: ModelSpec, precision: str, cache: Path, batches: list[int], sizes: list[int]):
        from advseg_sdk.bundle import load_bundle
        from advseg_sdk.runtime import TensorRTRunner, detect_device, engine_mismatch

        self.spec, self.precision = spec, precision
        t0 = time.perf_counter()
        bundle = load_bundle(spec.bundle)
        dev = detect_device()
        engine = None
        for a in bundle.engines:
            if a.precision == precision and a.engine is not None and engine_mismatch(a.engine, dev) is None:
                engine = a.path
        built = False
        if engine is None:
            engine, built = self._build(bundle, precision, cache, batches, sizes, dev), True
        self.runner = TensorRTRunner(engine)
        self.load_s = time.perf_counter() - t0
        self.details: dict[str, Any] = {"engine": Path(engine).name, "built_here": built, "gpu": dev.gpu_name,
                                        "tensorrt": dev.tensorrt_version,
                                        "bundle_parity": bundle.parity.get(bundle.artefact(precision).file)}
        self._last: np.ndarray | None = None

    @staticmethod
    def _build(bundle, precision: str, cache: Path, batches: list[int], sizes: list[int], dev) -> Path:
        from advseg_export.tensorrt_build import ShapeProfile, build_engine

        art = bundle.artefact(precision)
        spec = bundle.input_spec
        c = spec.channels
        lo, hi = min(sizes), max(sizes)
        opt = 256 if lo <= 256 <= hi else lo
        profile = ShapeProfile((1, c, lo, lo), (1, c, opt, opt), (max(batches), c, hi, hi),
                               input=spec.name or "input")
        tag = f"{art.sha256[:16]}-{(dev.gpu_name or 'gpu').replace(' ', '_')}-trt{dev.tensorrt_version}-b{max(batches)}-{lo}-{hi}"
        out = cache / "engines" / f"{tag}.engine"
        if not out.is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            build_engine(art.path, out, profile, timing_cache=cache / "engines" / "timing.cache")
        return out

    def bind(self, x: np.ndarray) -> dict[str, Any]:
        from advseg_sdk.runtime import _check  # cuda-python error check shared with the SDK

        runner = self.runner
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

        return process_gpu_mb()

    def close(self) -> None:
        self.runner.close()
