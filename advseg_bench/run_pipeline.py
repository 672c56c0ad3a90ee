"""The end-to-end pipeline, in the worker process: :class:`advseg_sdk.Pipeline` on real photos.

One call = ``Pipeline.run(photos)``: HED (with its reflect border) → official sketch
post-processing (NMS, threshold, thinning, small-edge removal) → generator with its pre- and
post-processing → uint8 colour images. ``precision`` selects the colouriser's artefact; HED runs the
same precision when its bundle has it and that artefact passed its export parity threshold, else
fp32 (recorded in the details).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .models import ModelSpec

if TYPE_CHECKING:
    from advseg_sdk import Pipeline

__all__ = ["PipelineSession"]

_PROVIDERS = {
    "ort-cpu": ["CPUExecutionProvider"],
    "ort-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "ort-trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class PipelineSession:
    def __init__(self, spec: ModelSpec, backend: str, precision: str, threads: int, cache: Path):
        from advseg_sdk import Pipeline
        from advseg_sdk.bundle import load_bundle

        if backend not in _PROVIDERS:
            raise ValueError(f"the pipeline runs on {', '.join(_PROVIDERS)}, not {backend}")
        self.precision = precision
        t0 = time.perf_counter()
        if spec.hed_bundle is None or spec.bundle is None:
            raise ValueError(f"{spec.name}: the pipeline needs a colour bundle and a HED bundle")
        hed = load_bundle(spec.hed_bundle)
        hed_prec = "fp32"
        if precision in hed.precisions:
            parity = hed.parity.get(hed.artefact(precision).file) or {}
            if parity.get("passed", True):  # never put an artefact that failed its export parity in the pipeline
                hed_prec = precision
        self.pipe: Pipeline | None = Pipeline(
            spec.bundle,
            sketch="hed",
            sketch_bundle=hed,
            providers=_PROVIDERS[backend],
            precision=precision,
            sketch_options={"precision": hed_prec},
            intra_op_threads=threads,
        )
        self.load_s = time.perf_counter() - t0
        sketcher = self.pipe.sketcher.runner
        self.details: dict[str, Any] = {
            "colorizer": self.pipe.colorizer.runner.label,
            "sketcher": sketcher.label if sketcher is not None else None,
            "hed_precision": hed_prec,
            "threads_colorizer": threads,
            "threads_hed": "onnxruntime default (SketchExtractor takes no thread option)",
            "sketch_border_px": "SketchExtractor default: min(128, long side // 4)",
        }
        self._last: Any = None

    def bind(self, photos: list[np.ndarray]) -> dict[str, Any]:
        pipe = self._pipeline()
        pipe.colorizer.max_batch = max(len(photos), 1)

        def call() -> None:
            self._last = pipe.run(list(photos))

        return {"call": call, "timer": None, "host_call": None}

    def _pipeline(self) -> Pipeline:
        if self.pipe is None:
            raise RuntimeError("the pipeline session is closed")
        return self.pipe

    def output(self) -> np.ndarray:
        return np.stack([r.color for r in self._last]).astype(np.float32)

    def reference(self, x: Any) -> tuple[None, str]:
        return None, ""

    def reset_gpu_peak(self) -> None:
        pass

    def gpu_peak_mb(self) -> float | None:
        return None

    def close(self) -> None:
        self.pipe = None
