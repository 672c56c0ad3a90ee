"""advseg SDK: run exported sketch-colorization bundles on ONNX Runtime or TensorRT, without torch.

>>> from advseg_sdk import Colorizer, Pipeline, SketchExtractor, load_bundle
>>> Colorizer("sketch2color.advseg").colorize("sketch.png")          # uint8 RGB (H, W, 3)
>>> Pipeline("sketch2color.advseg", sketch="xdog").run("photo.jpg")   # (sketch, color)

The public names are imported lazily, so ``import advseg_sdk`` stays cheap (and never imports
torch: the SDK does not depend on it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_exports

__all__ = ["Colorizer", "Pipeline", "SketchExtractor", "load_bundle", "BundleError", "Hint", "HintError"]

_EXPORTS = {
    "Colorizer": "advseg_sdk.colorizer",
    "Pipeline": "advseg_sdk.colorizer",
    "SketchExtractor": "advseg_sdk.sketcher",
    "load_bundle": "advseg_sdk.bundle",
    "BundleError": "advseg_sdk.bundle",
    "Hint": "advseg_sdk.hints",
    "HintError": "advseg_sdk.hints",
}

if TYPE_CHECKING:  # pragma: no cover
    from .bundle import BundleError, load_bundle
    from .colorizer import Colorizer, Pipeline
    from .hints import Hint, HintError
    from .sketcher import SketchExtractor


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
