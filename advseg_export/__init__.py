"""advseg export: PyTorch generators / HED -> ONNX fp32, fp16, int8 and TensorRT model bundles.

>>> from advseg_export import export_generator, export_hed
>>> export_generator("latest_net_G.pth", "sketch2color.advseg", precisions=("fp32", "fp16", "int8"))
>>> export_hed("hed.advseg")

Modules: :mod:`~advseg_export.onnx_export` (torch -> checked, simplified fp32 ONNX),
:mod:`~advseg_export.precision` (fp16 with fp32 norms, int8 QDQ), :mod:`~advseg_export.calibration`
(real parity/calibration inputs), :mod:`~advseg_export.parity` (max |error|, PSNR, thresholds),
:mod:`~advseg_export.tensorrt_build` (TensorRT engines), :mod:`~advseg_export.api` (bundles),
:mod:`~advseg_export.cli` (``advseg-export``). Names below are imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from advseg_sdk.lazy import lazy_exports

__all__ = [
    "export_generator",
    "export_hed",
    "ExportOptions",
    "ExportError",
    "DegradedExportError",
    "ShapeProfile",
    "build_engine",
    "TensorRTUnavailableError",
]
#: name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(
        ("export_generator", "export_hed", "ExportOptions", "ExportError", "DegradedExportError"), "advseg_export.api"
    ),
    **dict.fromkeys(("ShapeProfile", "build_engine", "TensorRTUnavailableError"), "advseg_export.tensorrt_build"),
}


if TYPE_CHECKING:  # pragma: no cover
    from .api import DegradedExportError, ExportError, ExportOptions, export_generator, export_hed
    from .tensorrt_build import ShapeProfile, TensorRTUnavailableError, build_engine

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
