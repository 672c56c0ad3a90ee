"""The paper's segmenter: detectron2 Panoptic FPN R-50 3x trained on COCO panoptic.

detectron2 (not on PyPI) is imported lazily; the weights (``model_final_c10459.pkl``) come from
the user's machine. The pure-torch parts (soft combination, mask pasting, label decoding, the
safe .pkl reader) work without detectron2.

Input (official-behaviour.md §5): [-1, 1] RGB -> BGR, ``(x + 1) / 2 * 255``, at the generator's
resolution; thresholds 0.4 (RetinaNet, ROI heads, panoptic combine), STUFF_AREA_LIMIT 4096.

* soft (``forward``): per-pixel probabilities over our 133 COCO classes from one differentiable
  pass: thing class c gets ``Σ_{i: class c} score_i · mask_i`` (the instance's soft 28x28 mask
  pasted into its box), stuff class s the semantic head's softmax probability of stuff label s
  (1..53; label 0 is detectron2's merged "things"), normalised per pixel (``base.normalise_mass``).
* hard (``labels``): the official decoding: thing category c -> class c, stuff semantic label s
  -> class 79 + s, unassigned pixels -> -1; with ``maps`` exactly the official 3 / 135-channel maps.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from . import coco_panoptic
from .base import Segmenter, map_dtype, normalise_mass

WEIGHTS_NAME = "model_final_c10459.pkl"
WEIGHTS_URL = (
    "https://dl.fbaipublicfiles.com/detectron2/COCO-PanopticSegmentation/"
    "panoptic_fpn_R_50_3x/139514569/model_final_c10459.pkl"
)
CONFIG_NAME = "COCO-PanopticSegmentation/panoptic_fpn_R_50_3x.yaml"
OFFICIAL_SCORE_THRESH = 0.4

DETECTRON2_HELP = (
    "detectron2 is not installed; it is not on PyPI. Install it from source on the machine that "
    "trains (matching its torch/CUDA): pip install 'git+https://github.com/facebookresearch/"
    "detectron2.git' (see https://detectron2.readthedocs.io/en/latest/tutorials/install.html). "
    f"The paper's weights are {WEIGHTS_NAME} (Panoptic FPN R-50 3x, COCO panoptic) from "
    f"{WEIGHTS_URL}; pass weights=PATH (the official repo expects it renamed "
    "model_final_c10459_panoptic.pkl; either name works here)."
)


def import_detectron2() -> Any:
    """Import detectron2 or raise ImportError with install and weights instructions."""
    try:
        import detectron2  # noqa: F401
        from detectron2 import model_zoo  # noqa: F401
    except ImportError as exc:
        raise ImportError(DETECTRON2_HELP) from exc
    import detectron2

    return detectron2


# ------------------------------------------------------------ safe .pkl reading
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # protocol-2 pickles store array bytes as latin-1 text
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: only numpy arrays and plain containers are "
            "allowed in a detectron2 weights file"
        )


def safe_load_pkl(path: str | os.PathLike) -> Any:
    """Read a detectron2 model-zoo ``.pkl`` (dicts of numpy arrays) without executing code."""
    data = Path(path).read_bytes()
    try:
        return _ArrayOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{path}: not a plain detectron2 weights file ({exc})") from exc


def _safe_checkpointer_class() -> type:
    """DetectionCheckpointer whose .pkl reading goes through :func:`safe_load_pkl`."""
    from detectron2.checkpoint import DetectionCheckpointer

    class SafeDetectionCheckpointer(DetectionCheckpointer):
        def _load_file(self, filename: str) -> dict:
            if not filename.endswith(".pkl"):
                raise ValueError(f"{filename}: expected a detectron2 model-zoo .pkl file")
            data = safe_load_pkl(filename)
            if "model" in data and "__author__" in data:
                return data
            if "blobs" in data:
                data = data["blobs"]
            data = {k: v for k, v in data.items() if not k.endswith("_momentum")}
            return {"model": data, "__author__": "Caffe2", "matching_heuristics": True}

    return SafeDetectionCheckpointer


# ---------------------------------------------------------- pure-torch pieces
def paste_soft_masks(masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Paste soft (N, M, M) box-relative masks into (N, height, width) image masks.

    Each image pixel centre is mapped into its box's normalised coordinates and the mask is
    sampled bilinearly (zero outside the box); differentiable w.r.t. ``masks``. This is the
    sampling detectron2 uses for ``pred_masks``, without the 0.5 threshold.
    """
    n = masks.shape[0]
    if n == 0:
        return masks.new_zeros(0, height, width)
    boxes = boxes.to(masks.dtype)
    x0, y0, x1, y1 = (boxes[:, i].view(n, 1) for i in range(4))
    ys = torch.arange(height, device=masks.device, dtype=masks.dtype).view(1, -1) + 0.5
    xs = torch.arange(width, device=masks.device, dtype=masks.dtype).view(1, -1) + 0.5
    gy = (ys - y0) / (y1 - y0).clamp(min=1e-6) * 2 - 1  # (N, H)
    gx = (xs - x0) / (x1 - x0).clamp(min=1e-6) * 2 - 1  # (N, W)
    grid = torch.stack([gx[:, None, :].expand(n, height, width), gy[:, :, None].expand(n, height, width)], dim=3)
    return F.grid_sample(masks[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]


def soft_class_mass(
    sem_logits: torch.Tensor,
    scores: torch.Tensor,
    classes: torch.Tensor,
    masks: torch.Tensor,
    boxes: torch.Tensor,
) -> torch.Tensor:
    """(133, H, W) class masses of one image (see the module docstring).

    Args:
        sem_logits: (54, H, W) semantic-head logits; label 0 = "things", 1..53 = stuff.
        scores, classes: (N,) instance scores and contiguous thing classes 0..79.
        masks: (N, M, M) soft instance masks in box coordinates; boxes: (N, 4) xyxy pixels.
    """
    n_stuff = coco_panoptic.NUM_STUFF
    if sem_logits.shape[0] != n_stuff + 1:
        raise ValueError(f"expected {n_stuff + 1} semantic classes, got {sem_logits.shape[0]}")
    h, w = sem_logits.shape[-2:]
    stuff = torch.softmax(sem_logits, dim=0)[1:]
    pasted = paste_soft_masks(masks, boxes, h, w) * scores.view(-1, 1, 1).to(masks.dtype)
    things = pasted.new_zeros(coco_panoptic.NUM_THINGS, h, w).index_add(0, classes.long(), pasted)
    return torch.cat([things.to(stuff.dtype), stuff], dim=0)


def panoptic_to_labels(panoptic_seg: torch.Tensor, segments_info: list[dict]) -> torch.Tensor:
    """Official decoding: detectron2 (panoptic_seg, segments_info) -> (H, W) class labels of our
    133-class table; thing category c -> c, stuff semantic label s (1..53) -> 79 + s, pixels of
    no segment -> -1."""
    labels = torch.full(panoptic_seg.shape, -1, dtype=torch.long, device=panoptic_seg.device)
    for seg in segments_info:
        cat = int(seg["category_id"])
        if seg["isthing"]:
            if not 0 <= cat < coco_panoptic.NUM_THINGS:
                raise ValueError(f"thing category {cat} outside 0..79")
            cls = cat
        else:
            if not 1 <= cat <= coco_panoptic.NUM_STUFF:
                raise ValueError(f"stuff semantic label {cat} outside 1..53")
            cls = coco_panoptic.NUM_THINGS + cat - 1
        labels[panoptic_seg == int(seg["id"])] = cls
    return labels


# ----------------------------------------------------------------- segmenter
class Detectron2PanopticSegmenter(Segmenter):
    """detectron2 Panoptic FPN (COCO panoptic, 133 classes) as a frozen segmenter.

    Args:
        weights: path of ``model_final_c10459.pkl`` (required).
        config_file: detectron2 config; default the model zoo's panoptic_fpn_R_50_3x.yaml.
        device: where the model runs; default CUDA if available (as the official code), else CPU.
        score_thresh: RetinaNet / ROI-head / panoptic-combine instance thresholds (official 0.4).
        void_eps: see ``base.normalise_mass``.
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        *,
        config_file: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        score_thresh: float = OFFICIAL_SCORE_THRESH,
        void_eps: float = 1e-3,
    ) -> None:
        import_detectron2()
        from detectron2 import model_zoo
        from detectron2.config import get_cfg
        from detectron2.modeling import build_model

        if weights is None:
            raise ValueError(f"detectron2-panoptic needs weights=PATH to {WEIGHTS_NAME}: {DETECTRON2_HELP}")
        weights = Path(weights).expanduser()
        if not weights.is_file():
            raise FileNotFoundError(f"detectron2 weights not found: {weights}. {DETECTRON2_HELP}")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        cfg = get_cfg()
        cfg.merge_from_file(str(config_file) if config_file else model_zoo.get_config_file(CONFIG_NAME))
        cfg.MODEL.WEIGHTS = str(weights)
        cfg.MODEL.DEVICE = str(device)
        cfg.MODEL.RETINANET.SCORE_THRESH_TEST = score_thresh
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = score_thresh
        cfg.MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH = score_thresh
        if cfg.MODEL.ROI_HEADS.NUM_CLASSES != coco_panoptic.NUM_THINGS:
            raise ValueError(
                f"expected a COCO model with 80 thing classes, config has {cfg.MODEL.ROI_HEADS.NUM_CLASSES}"
            )
        super().__init__(
            name="detectron2-panoptic", class_names=coco_panoptic.CLASS_NAMES, is_thing=coco_panoptic.IS_THING
        )
        self.cfg = cfg
        self.void_eps = float(void_eps)
        self.model = build_model(cfg)
        self.model.eval()
        _safe_checkpointer_class()(self.model).load(str(weights))
        self.freeze()

    @property
    def model_device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _inputs(self, x: torch.Tensor) -> list[dict[str, Any]]:
        # official: RGB -> BGR, [-1, 1] -> [0, 255], no resize, height/width = native size
        bgr = (x.flip(1) + 1.0) * 127.5
        bgr = bgr.to(self.model_device, torch.float32)
        h, w = x.shape[-2:]
        return [{"image": img, "height": h, "width": w} for img in bgr]

    def _probs(self, x: torch.Tensor) -> torch.Tensor:
        from detectron2.modeling.postprocessing import sem_seg_postprocess

        h, w = x.shape[-2:]
        detections, sem = self.model.inference(self._inputs(x), do_postprocess=False)
        out = []
        for det, sem_logits in zip(detections, sem):
            sem_logits = sem_seg_postprocess(sem_logits, (h, w), h, w)
            ih, iw = det.image_size
            boxes = det.pred_boxes.tensor * torch.tensor([w / iw, h / ih, w / iw, h / ih], device=sem_logits.device)
            mass = soft_class_mass(sem_logits, det.scores, det.pred_classes, det.pred_masks[:, 0], boxes)
            out.append(mass)
        probs = normalise_mass(torch.stack(out).float(), self.void_eps)
        return probs.to(x.device, map_dtype(x))

    @torch.no_grad()
    def labels(self, x: torch.Tensor) -> torch.Tensor:
        """Official panoptic decoding (thresholds, overlap rule, 4096-px stuff area limit)."""
        results = self.model(self._inputs(x))
        labels = [panoptic_to_labels(*r["panoptic_seg"]) for r in results]
        return torch.stack(labels).to(x.device)
