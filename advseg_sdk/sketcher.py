"""`SketchExtractor`: photos -> line drawings with HED (ONNX bundle) or weight-free XDoG / Canny.

>>> ex = SketchExtractor("xdog")
>>> sketch = ex.extract("photo.jpg")            # uint8 (H, W), black lines on white
>>> ex = SketchExtractor("hed")                  # default bundle: $ADVSEG_HOME/bundles/hed.advseg
>>> sketches = ex.extract([rgb1, rgb2])          # list in, list out

HED runs through :func:`advseg_sdk.runtime.open_runner` (ONNX Runtime or a matching TensorRT
engine); its probability map is post-processed as in the official pipeline
(:func:`advseg_sdk.line_drawing.hed_postprocess`). No torch is imported.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from . import line_drawing as _sketch
from .imageio import to_rgb_uint8
from .vocab import SKETCH_METHODS

if TYPE_CHECKING:  # pragma: no cover
    from .bundle import Bundle
    from .runtime import Runner

__all__ = ["METHODS", "SketchExtractor", "HEDBundleMissingError", "DEFAULT_HED_MAX_PIXELS"]

METHODS = SKETCH_METHODS


class HEDBundleMissingError(FileNotFoundError):
    """No HED bundle where one was expected; the message names the command that creates it."""


def _resize(a: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize to (H, W): area averaging when shrinking, bilinear when enlarging."""
    h, w = hw
    if a.shape[:2] == (h, w):
        return a
    shrink = h * w < a.shape[0] * a.shape[1]
    return cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


#: HED (VGG16 at full resolution, plus its reflect border) needs about 0.75 GB per million working
#: pixels: 1.3 GB at 1024², 2.4 GB at 1536², ~15 GB at 4096². Above this many pixels HED works on
#: a downscaled copy and the sketch is post-processed at full size, so memory stays bounded.
DEFAULT_HED_MAX_PIXELS = 1536 * 1536
#: Post-processing costs ~0.14 GB per million output pixels (2.3 GB at 4096²). Larger outputs are
#: post-processed at the working size; their 1-px lines are scaled up and thinned again.
FULL_SIZE_POSTPROCESS_PIXELS = 2048 * 2048


def _working_size(hw: tuple[int, int], long_side: int | None, max_pixels: int | None = None) -> tuple[int, int]:
    h, w = hw
    if long_side is not None:
        s = long_side / max(h, w)
        h, w = max(1, round(h * s)), max(1, round(w * s))
    if max_pixels is not None and h * w > max_pixels:
        s = (max_pixels / (h * w)) ** 0.5
        h, w = max(1, int(h * s)), max(1, int(w * s))
    return h, w


class SketchExtractor:
    """Turn images into black-on-white line drawings (uint8, 0 = line, 255 = paper).

    Args:
        method: ``"hed"`` (HED network + official post-processing), ``"xdog"`` or ``"canny"``.
        bundle: HED bundle (``.advseg`` directory or ``.zip``); ``None`` uses
            ``advseg_sdk.bundle.default_bundle_path("hed")``. Only for ``method="hed"``.
        providers: ONNX Runtime execution providers in order of preference (``None``: default).
        size: if given, the image is resized so its long side is ``size`` before extraction
            (faster for large photos, coarser detail); the sketch is returned at the input size.
        precision: bundle artefact to run (``"auto"``, ``"fp32"``, ``"fp16"``, ``"int8"``, ``"trt"``).
        max_hed_pixels: HED only: the most pixels HED works at (after ``size``); larger images are
            downscaled for the network and the sketch is post-processed at the input size, which
            bounds memory (:data:`DEFAULT_HED_MAX_PIXELS`: about 2.5 GB at most). ``None``: no bound.
        border: HED only: reflect-pad the image by this many px before inference and crop after,
            as the official pipeline did (it used 128 px), so the network does not see the image
            frame as an edge. ``None``: ``min(128, long side // 4)``; ``0`` is fastest.
        **params: passed to the method's function (:func:`advseg_sdk.line_drawing.hed_postprocess`,
            :func:`~advseg_sdk.line_drawing.xdog` or :func:`~advseg_sdk.line_drawing.canny`).
    """

    def __init__(
        self,
        method: str = "hed",
        bundle: str | os.PathLike | Any | None = None,
        providers: Sequence[Any] | None = None,
        size: int | None = None,
        precision: str = "auto",
        border: int | None = None,
        max_hed_pixels: int | None = DEFAULT_HED_MAX_PIXELS,
        **params: Any,
    ):
        if method not in METHODS:
            raise ValueError(f"unknown sketch method {method!r}; choose one of {', '.join(METHODS)}")
        if size is not None and int(size) < 1:
            raise ValueError(f"size must be a positive long-side length in px, got {size}")
        if border is not None and int(border) < 0:
            raise ValueError(f"border must be >= 0 px, got {border}")
        self.method = method
        self.size = None if size is None else int(size)
        self.border = border
        self.max_hed_pixels = None if max_hed_pixels is None else max(1, int(max_hed_pixels))
        self.params = params
        self.runner: Runner | None = None
        self.bundle: Bundle | None = None
        if method == "hed":
            self._open_hed(bundle, providers, precision)
        elif bundle is not None:
            raise ValueError(f"bundle= is only used by method 'hed', not {method!r}")
        # Fail early on bad keyword names rather than on the first image.
        fns: dict[str, Callable[..., Any]] = {
            "hed": _sketch.hed_postprocess,
            "xdog": _sketch.xdog,
            "canny": _sketch.canny,
        }
        fn = fns[method]
        allowed = set(inspect.signature(fn).parameters) - {"prob", "rgb"}
        unknown = set(params) - allowed
        if unknown:
            raise TypeError(
                f"unknown parameter(s) for method {method!r}: {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(allowed))}"
            )

    def __repr__(self) -> str:
        extra = (
            f", bundle={str(self.bundle.source)!r}, runner={self.runner.label!r}" if self.bundle and self.runner else ""
        )
        return f"SketchExtractor(method={self.method!r}, size={self.size}{extra})"

    # ------------------------------------------------------------------ HED
    def _open_hed(self, bundle: Any, providers: Sequence[Any] | None, precision: str) -> None:
        from .bundle import Bundle, default_bundle_path, load_bundle
        from .runtime import open_runner

        if bundle is None:
            path = default_bundle_path("hed")
            if not path.exists() and not path.with_name(path.name + ".zip").exists():
                raise HEDBundleMissingError(
                    f"no HED bundle at {path}; create it with `advseg-export hed -o {path}` "
                    "(needs the training extras: pip install 'advseg[export]'), pass bundle=PATH "
                    "(--bundle PATH), or use a weight-free method (xdog, canny)"
                )
            if not path.exists():
                path = path.with_name(path.name + ".zip")
            bundle = path
        b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, task="photo2sketch")
        if b.task != "photo2sketch":
            raise ValueError(f"bundle {b.source} is for task {b.task!r}, an HED sketch bundle needs 'photo2sketch'")
        spec = b.input_spec
        if spec.channels != 3:
            raise ValueError(f"bundle {b.source}: HED input must have 3 channels, manifest says {spec.channels}")
        self.bundle = b
        self.runner = open_runner(b, providers=providers, precision=precision)

    def _hed_border(self, hw: tuple[int, int]) -> int:
        if self.border is not None:
            return int(self.border)
        return min(128, max(hw) // 4)

    def _hed_prob(self, rgb: np.ndarray) -> np.ndarray:
        """Fused edge probability (H, W) float32 for one uint8 RGB image, at its own size."""
        assert self.bundle is not None and self.runner is not None, "HED needs its bundle"
        spec = self.bundle.input_spec
        h, w = rgb.shape[:2]
        pad = self._hed_border((h, w))
        x = rgb.astype(np.float32) / 255.0
        if pad:
            x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        ph, pw = x.shape[:2]
        if spec.fixed_size is not None:
            x = _resize(x, spec.fixed_size)
        else:
            m = max(spec.size_multiple, 1)
            th = max(-(-ph // m) * m, spec.min_size)
            tw = max(-(-pw // m) * m, spec.min_size)
            if (th, tw) != (ph, pw):
                x = np.pad(x, ((0, th - ph), (0, tw - pw), (0, 0)), mode="symmetric")
        lo, hi = spec.range
        if (lo, hi) != (0.0, 1.0):
            x = lo + x * (hi - lo)
        out = np.asarray(self.runner.run(np.ascontiguousarray(x.transpose(2, 0, 1)[None])))
        if out.ndim != 4 or out.shape[:2] != (1, 1):
            raise ValueError(f"HED bundle {self.bundle.source}: expected output (1, 1, H, W), got {out.shape}")
        prob = out[0, 0].astype(np.float32)
        if not np.isfinite(prob).all():
            raise ValueError(
                f"HED bundle {self.bundle.source} produced NaN or infinite values; "
                "its weights or graph are broken, re-export it"
            )
        if spec.fixed_size is not None:
            prob = cv2.resize(prob, (pw, ph), interpolation=cv2.INTER_LINEAR)
        prob = prob[pad : pad + h, pad : pad + w]
        return np.clip(prob, 0.0, 1.0)

    # ------------------------------------------------------------------ public
    def working_size(self, hw: tuple[int, int]) -> tuple[int, int]:
        """(H, W) the method works at for an image of size ``hw`` (``size``, then HED's pixel bound)."""
        return _working_size(hw, self.size, self.max_hed_pixels if self.method == "hed" else None)

    def edge_probability(self, x: Any) -> np.ndarray:
        """HED only: the fused edge probability map (H, W) float32 at the input's size."""
        if self.method != "hed":
            raise ValueError(f"edge_probability needs method 'hed', this extractor uses {self.method!r}")
        rgb = to_rgb_uint8(x)
        hw = rgb.shape[:2]
        work = _resize(rgb, self.working_size(hw))
        return _resize(self._hed_prob(work), hw)

    def extract(self, x: Any) -> np.ndarray | list[np.ndarray]:
        """Sketch one image (path, PIL image, or array; see :func:`to_rgb_uint8`) or a list of them.

        Returns uint8 (H, W) at the input's size, black (0) lines on white (255); a list for a list.
        """
        if isinstance(x, (list, tuple)):
            return [self._extract_one(item) for item in x]
        return self._extract_one(x)

    __call__ = extract

    def _extract_one(self, x: Any) -> np.ndarray:
        rgb = to_rgb_uint8(x)
        hw = rgb.shape[:2]
        work = _resize(rgb, self.working_size(hw))
        if self.method == "hed":
            prob = self._hed_prob(work)
            if hw[0] * hw[1] > FULL_SIZE_POSTPROCESS_PIXELS and work.shape[:2] != hw:
                # bounded memory: lines found at the working size, scaled up, thinned to 1 px again
                lines = _resize(_sketch.hed_postprocess(prob, **self.params), hw) < 128
                return np.where(_sketch.thin_edges(lines), 0, 255).astype(np.uint8)
            # Post-process at the output size so lines stay 1 px wide there.
            return _sketch.hed_postprocess(_resize(prob, hw), **self.params)
        fn = _sketch.xdog if self.method == "xdog" else _sketch.canny
        out = fn(work, **self.params)
        if out.shape != hw:
            if self.method == "canny":  # keep it a binary drawing
                out = np.where(_resize(out, hw) < 128, 0, 255).astype(np.uint8)
            else:
                out = _resize(out, hw)
        return out
