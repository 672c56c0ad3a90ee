"""The names the packages share, one source each (no imports: every package and command line
reads them, the torch-free SDK included)."""

from __future__ import annotations

__all__ = ["PRECISIONS", "ONNX_PRECISIONS", "SKETCH_METHODS", "EXPORT_SKETCH_METHODS", "HINT_SPREAD_MODES"]

#: Every numeric precision a bundle, runner or benchmark names.
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
#: The precisions ``advseg-export`` writes as ONNX artefacts (bf16 runs in torch only), in order.
ONNX_PRECISIONS = ("fp32", "fp16", "int8")
#: How a photo becomes a sketch: the HED network, or the weight-free XDoG and Canny.
SKETCH_METHODS = ("hed", "xdog", "canny")
#: The ones export parity and calibration inputs are drawn with (default first).
EXPORT_SKETCH_METHODS = ("xdog", "hed")
#: How the SDK hands colour hints to a hint generator: ``region`` fills each hint's enclosed
#: region of the sketch (advseg_sdk.hint_spread), ``none`` passes them as given (default first).
HINT_SPREAD_MODES = ("region", "none")
