"""Frozen, differentiable segmenters for the adversarial segmentation loss.

``build_segmenter(name, **kwargs)`` returns a :class:`Segmenter`; names:

* ``"tiny"`` — small random frozen convnet for tests (COCO-panoptic-like 133 classes);
* ``"isnet"`` — ISNet (DIS) fg/bg salient-object segmenter, real weights (asset ``isnet-fp16``);
* ``"deeplab-voc"`` — DeepLabv3 + MobileNetV2, 21 PASCAL VOC classes, real weights (vendored TFLite);
* ``"detectron2-panoptic"`` — the paper's Panoptic FPN R-50 3x (needs detectron2 + weights);
* ``"mask2former"`` / ``"oneformer"`` — transformers COCO-panoptic models (local checkpoint).

Backends are imported lazily, so importing this package pulls in neither transformers nor
detectron2. ``advseg_train.segmentation.maps`` turns probabilities into discriminator inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import maps
from .base import Segmenter

__all__ = ["Segmenter", "build_segmenter", "is_multi_class", "MULTI_CLASS", "SEGMENTER_NAMES", "maps"]


def _tiny(**kw: Any) -> Segmenter:
    from .tiny import TinySegmenter

    return TinySegmenter(**kw)


def _isnet(**kw: Any) -> Segmenter:
    from .isnet import ISNetSegmenter

    return ISNetSegmenter.from_onnx(**kw)


def _deeplab_voc(**kw: Any) -> Segmenter:
    from .deeplab import DeepLabVOCSegmenter

    return DeepLabVOCSegmenter.from_tflite(**kw)


def _detectron2(**kw: Any) -> Segmenter:
    from .detectron2_panoptic import Detectron2PanopticSegmenter

    return Detectron2PanopticSegmenter(**kw)


def _mask2former(**kw: Any) -> Segmenter:
    from .hf_panoptic import HFPanopticSegmenter

    return HFPanopticSegmenter.from_pretrained(kind="mask2former", **kw)


def _oneformer(**kw: Any) -> Segmenter:
    from .hf_panoptic import HFPanopticSegmenter

    return HFPanopticSegmenter.from_pretrained(kind="oneformer", **kw)


_BUILDERS: dict[str, Callable[..., Segmenter]] = {
    "tiny": _tiny,
    "isnet": _isnet,
    "deeplab-voc": _deeplab_voc,
    "detectron2-panoptic": _detectron2,
    "mask2former": _mask2former,
    "oneformer": _oneformer,
}
SEGMENTER_NAMES: tuple[str, ...] = tuple(_BUILDERS)
#: Segmenters with a multi-class map (the ``multi`` / ``both`` variants need one); the others
#: (``isnet``) give a foreground / background map only. Known without building one (no torch work).
MULTI_CLASS: frozenset[str] = frozenset({"tiny", "deeplab-voc", "detectron2-panoptic", "mask2former", "oneformer"})


def _key(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    return "detectron2-panoptic" if key == "detectron2" else key


def is_multi_class(name: str) -> bool:
    """Whether segmenter ``name`` (as :func:`build_segmenter` spells it) has a multi-class map."""
    return _key(name) in MULTI_CLASS


def build_segmenter(name: str, **kwargs: Any) -> Segmenter:
    """Build the frozen segmenter ``name`` (see the module docstring for names and kwargs)."""
    key = _key(name)
    if key not in _BUILDERS:
        raise ValueError(f"unknown segmenter {name!r}; choose one of {', '.join(SEGMENTER_NAMES)}")
    seg = _BUILDERS[key](**kwargs)
    return seg.freeze()
