"""Mask2Former / OneFormer COCO-panoptic segmenters through ``transformers``.

Per-pixel class probabilities, Mask2Former's semantic inference made differentiable:
``P(k | pixel) ∝ Σ_q softmax(class_logits_q)[k] · sigmoid(mask_logits_q(pixel))``, k < K (the
"no object" column is dropped; mask logits are upsampled bilinearly to the output size before
the sigmoid). Where no query covers a pixel ("void") the mass is small; normalisation adds
``void_eps``: ``P = (mass_k + eps/K) / (Σ_k mass_k + eps)``, so void pixels tend to a uniform
distribution, and ``labels()`` can mark pixels with mass below ``void_threshold`` as -1.

Checkpoints come from the user's machine (``from_pretrained(local_dir)``, never a hub
download), e.g. ``facebook/mask2former-swin-large-coco-panoptic`` or
``shi-labs/oneformer_coco_swin_large`` fetched with ``huggingface-cli download <repo>
--local-dir <dir>``. OneFormer also needs the task prompt "the task is panoptic" as token ids:
from the checkpoint's tokenizer, or given as ``task_token_ids`` (tokenizer-free).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advseg_sdk.options import with_overrides

from . import coco_panoptic
from .base import Segmenter, map_dtype, normalise_mass, resize, round_up

KINDS = ("mask2former", "oneformer")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_HELP = (
    "download a COCO-panoptic checkpoint on a machine with internet access, e.g. "
    "`huggingface-cli download facebook/mask2former-swin-large-coco-panoptic --local-dir DIR` "
    "(OneFormer: shi-labs/oneformer_coco_swin_large), then pass checkpoint=DIR"
)


def _model_class(kind: str) -> Any:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    try:
        import transformers
    except ImportError as exc:
        raise ImportError(f"the {kind} segmenter needs the 'transformers' package: pip install 'advseg[hf]'") from exc
    if kind == "mask2former":
        return transformers.Mask2FormerForUniversalSegmentation
    return transformers.OneFormerForUniversalSegmentation


@dataclass
class HFPanopticOptions:
    """Settings of an :class:`HFPanopticSegmenter`.

    Attributes:
        is_thing: per-class thing flags; default: from the COCO-panoptic table when the config's
            labels are the 133 COCO-panoptic classes (or unnamed ``LABEL_i`` with 133 classes).
        image_mean, image_std, rescale_factor: the checkpoint's pixel normalisation
            (``rgb255 * rescale_factor`` then ``(v - mean) / std``).
        input_size: run the model at this square size; default: the input size rounded up to
            a multiple of ``size_multiple`` (32, the image processors' size divisor), at least 64.
        task_token_ids: OneFormer only, token ids (seq_len,) of "the task is panoptic".
        void_eps, void_threshold: see the module docstring.
    """

    is_thing: Sequence[bool] | None = None
    image_mean: Sequence[float] = IMAGENET_MEAN
    image_std: Sequence[float] = IMAGENET_STD
    rescale_factor: float = 1.0 / 255.0
    input_size: int | None = None
    size_multiple: int = 32
    task_token_ids: Sequence[int] | torch.Tensor | None = None
    void_eps: float = 1e-3
    void_threshold: float | None = None


class HFPanopticSegmenter(Segmenter):
    """A frozen transformers Mask2Former / OneFormer model as a per-pixel class segmenter.

    Args:
        model: a ``Mask2FormerForUniversalSegmentation`` or ``OneFormerForUniversalSegmentation``.
        kind: ``"mask2former"`` or ``"oneformer"``.
        options: :class:`HFPanopticOptions`; ``option_fields`` (its field names, e.g.
            ``image_mean=...``) change single fields.
    """

    pix_scale: torch.Tensor  # buffers: [-1, 1] input -> the checkpoint's normalisation
    pix_shift: torch.Tensor

    def __init__(
        self, model: nn.Module, kind: str, options: HFPanopticOptions | None = None, **option_fields: Any
    ) -> None:
        opts = with_overrides(HFPanopticOptions, options, option_fields)
        _model_class(kind)
        names, things = _classes(model.config, opts.is_thing)
        super().__init__(name=kind, class_names=names, is_thing=things)
        self.kind = kind
        self.model = model
        self.input_size = opts.input_size
        self.size_multiple = int(opts.size_multiple)
        self.void_eps = float(opts.void_eps)
        self.void_threshold = opts.void_threshold
        # [-1, 1] -> rgb255 -> rescale -> normalise, folded into one affine map per channel
        mean = torch.as_tensor(opts.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.as_tensor(opts.image_std, dtype=torch.float32).view(1, 3, 1, 1)
        scale = 127.5 * opts.rescale_factor
        self.register_buffer("pix_scale", scale / std, persistent=False)
        self.register_buffer("pix_shift", (scale - mean) / std, persistent=False)
        if kind == "oneformer":
            if opts.task_token_ids is None:
                raise ValueError(
                    "oneformer needs task_token_ids (token ids of 'the task is panoptic'); "
                    "from_pretrained() computes them with the checkpoint's tokenizer"
                )
            ids = torch.as_tensor(opts.task_token_ids, dtype=torch.long).view(1, -1)
            model_config: Any = model.config
            seq_len = int(model_config.task_seq_len)
            if ids.shape[1] != seq_len:
                raise ValueError(f"task_token_ids must have length {seq_len}, got {ids.shape[1]}")
            self.register_buffer("task_token_ids", ids, persistent=False)
        else:
            self.task_token_ids = None
        self.freeze()

    # -------------------------------------------------------------- builders
    @classmethod
    def from_pretrained(
        cls,
        checkpoint: str | os.PathLike | None = None,
        *,
        kind: str = "mask2former",
        **kwargs: Any,
    ) -> HFPanopticSegmenter:
        """Load a local checkpoint directory (config + weights [+ preprocessor/tokenizer])."""
        model_cls = _model_class(kind)
        if checkpoint is None:
            raise ValueError(f"the {kind} segmenter needs checkpoint=<local directory>: {_HELP}")
        path = Path(checkpoint).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{kind} checkpoint not found: no config.json in {path}; {_HELP}")
        try:
            model_type = json.loads((path / "config.json").read_text()).get("model_type")
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path / 'config.json'} is not a readable JSON config: {exc}") from exc
        if model_type != kind:
            raise ValueError(f"{path} holds a {model_type!r} model, not {kind!r}")
        model = model_cls.from_pretrained(str(path), local_files_only=True)
        kwargs = {**_preprocessor_settings(path), **kwargs}
        if kind == "oneformer" and kwargs.get("task_token_ids") is None:
            kwargs["task_token_ids"] = _panoptic_task_ids(path, int(model.config.task_seq_len))
        return cls(model, kind, **kwargs)

    @classmethod
    def from_config(cls, config: Any, *, kind: str, seed: int = 0, **kwargs: Any) -> HFPanopticSegmenter:
        """Randomly initialised model of the real architecture (for tests), seeded; the global
        RNG is left untouched."""
        model_cls = _model_class(kind)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = model_cls(config)
        return cls(model, kind, **kwargs)

    # --------------------------------------------------------------- compute
    def work_size(self, h: int, w: int) -> tuple[int, int]:
        if self.input_size is not None:
            return (int(self.input_size), int(self.input_size))
        # at least 64 px: the 1/32 feature map must hold more than one pixel for GroupNorm
        return (max(64, round_up(h, self.size_multiple)), max(64, round_up(w, self.size_multiple)))

    def class_mass(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised per-class mass (B, K, H, W): Σ_q P(class k | q) · P(pixel ∈ mask q)."""
        h, w = x.shape[-2:]
        z = resize(x, self.work_size(h, w))
        dtype = next(self.model.parameters()).dtype
        pix = (z * self.pix_scale + self.pix_shift).to(dtype)
        inputs: dict[str, torch.Tensor] = {"pixel_values": pix}
        if self.task_token_ids is not None:
            inputs["task_inputs"] = self.task_token_ids.expand(x.shape[0], -1)
        out = self.model(**inputs)
        with torch.autocast(device_type=x.device.type, enabled=False):  # the masses in float32
            cls_p = torch.softmax(out.class_queries_logits.float(), dim=-1)[..., :-1]
            masks = F.interpolate(
                out.masks_queries_logits.float(), size=(h, w), mode="bilinear", align_corners=False
            ).sigmoid()
            return torch.einsum("bqk,bqhw->bkhw", cls_p, masks)

    def _probs(self, x: torch.Tensor) -> torch.Tensor:
        return normalise_mass(self.class_mass(x).to(map_dtype(x)), self.void_eps)

    @torch.no_grad()
    def labels(self, x: torch.Tensor) -> torch.Tensor:
        """Argmax class per pixel; -1 where the total mass is below ``void_threshold``."""
        mass = self.class_mass(x)
        labels = mass.argmax(dim=1)
        if self.void_threshold is not None:
            labels = torch.where(mass.sum(dim=1) < self.void_threshold, -1, labels)
        return labels


# ------------------------------------------------------------------ helpers
def _classes(config: Any, is_thing: Sequence[bool] | None) -> tuple[list[str], list[bool]]:
    id2label = {int(k): v for k, v in (getattr(config, "id2label", None) or {}).items()}
    n = len(id2label)
    if sorted(id2label) != list(range(n)) or n < 2:
        raise ValueError(f"model config id2label must map 0..K-1 to names, got {n} entries")
    names = [str(id2label[i]) for i in range(n)]
    if is_thing is not None:
        if len(is_thing) != n:
            raise ValueError(f"is_thing has {len(is_thing)} entries, the model has {n} classes")
        return names, [bool(t) for t in is_thing]
    unnamed = all(name == f"LABEL_{i}" for i, name in enumerate(names))
    if coco_panoptic.match_coco_panoptic(names) or (unnamed and n == len(coco_panoptic.CLASS_NAMES)):
        return list(coco_panoptic.CLASS_NAMES), list(coco_panoptic.IS_THING)
    raise ValueError(
        f"cannot tell thing from stuff classes for this model ({n} classes: {names[:3]}...): "
        "it is not the 133-class COCO-panoptic label set; pass is_thing=[...] per class"
    )


def _preprocessor_settings(path: Path) -> dict[str, Any]:
    cfg_path = path / "preprocessor_config.json"
    if not cfg_path.is_file():
        return {}
    cfg = json.loads(cfg_path.read_text())
    out: dict[str, Any] = {}
    if "image_mean" in cfg:
        out["image_mean"] = cfg["image_mean"]
    if "image_std" in cfg:
        out["image_std"] = cfg["image_std"]
    if cfg.get("do_rescale", True):
        out["rescale_factor"] = float(cfg.get("rescale_factor", 1.0 / 255.0))
    else:
        out["rescale_factor"] = 1.0
    if cfg.get("size_divisor"):
        out["size_multiple"] = int(cfg["size_divisor"])
    return out


def _panoptic_task_ids(path: Path, seq_len: int) -> torch.Tensor:
    """Token ids of "the task is panoptic" as OneFormerProcessor makes them (ids × mask)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the fix
        raise FileNotFoundError(
            f"oneformer: no tokenizer in {path} to encode 'the task is panoptic' ({exc}); "
            "copy the checkpoint's tokenizer files there or pass task_token_ids=[...]"
        ) from exc
    enc = tok(["the task is panoptic"], padding="max_length", max_length=seq_len, truncation=True)
    ids = torch.tensor(enc["input_ids"][0]) * torch.tensor(enc["attention_mask"][0])
    return ids
