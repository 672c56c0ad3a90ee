"""Score a folder of generated images against real ones: the Python API behind ``advseg-eval``.

Metrics (names as accepted by ``metrics=`` / ``--metric``):

==============  ==============================  ===============================================
name            JSON key(s)                     what
==============  ==============================  ===============================================
``fid``         ``fid``                         Fréchet distance on pytorch-fid Inception pool3
``kid``         ``kid``, ``kid_std``            KID on the same features
``imgsim``      ``imgsim_fd``                   Fréchet distance on imgsim ResNet-50 features
                                                (offline; NOT FID, never reported as FID)
``imgsim-kid``  ``imgsim_kid``, ``..._std``     KID on imgsim ResNet-50 features
``psnr``        ``psnr``                        paired, stem-matched, mean dB
``ssim``        ``ssim``                        paired, stem-matched, mean
==============  ==============================  ===============================================

Real-set statistics are cached by content (see :mod:`.stats`); generated sets are recomputed.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advseg_sdk.options import with_overrides

from .features import FeatureExtractor, ImgsimResNet50Extractor, InceptionFIDExtractor
from .fid import frechet_distance_from_features, kid, resolve_fd_method
from .paired import paired_scores
from .report import EvalReport
from .stats import RESIZE_MODES, folder_stats, list_images, warn_if_small

__all__ = ["METRICS", "ScoreOptions", "score_folders"]

#: metric name -> (extractor name, "fd" | "kid"); paired metrics map to None.
METRICS: dict[str, tuple[str, str] | None] = {
    "fid": ("inception-fid", "fd"),
    "kid": ("inception-fid", "kid"),
    "imgsim": ("imgsim-resnet50", "fd"),
    "imgsim-kid": ("imgsim-resnet50", "kid"),
    "psnr": None,
    "ssim": None,
}


def _build_extractor(name: str, inception_weights, imgsim_size: int, device) -> FeatureExtractor:
    if name == "inception-fid":
        return InceptionFIDExtractor(weights=inception_weights, device=device)
    return ImgsimResNet50Extractor(input_size=imgsim_size, device=device)


@dataclass(frozen=True)
class ScoreOptions:
    """Which metrics, on which features, computed how (the ``advseg-eval score`` options)."""

    metrics: Sequence[str] = ("fid", "kid")
    inception_weights: str | os.PathLike | None = None  # default: the fid-inception asset
    resize: str = "pytorch-fid"  # or "clean" (see :mod:`.stats`)
    cache: bool = True  # read and write cached real-set statistics
    cache_dir: str | os.PathLike | None = None
    batch_size: int = 32
    device: str | None = None
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    fd_method: str = "auto"  # "sqrtm", "lowrank" or "auto"
    imgsim_size: int = 224
    paired_resize: bool = False  # PSNR/SSIM: resize real images to the generated size
    progress: bool = False


def score_folders(
    gen_dir: str | os.PathLike,
    real_dir: str | os.PathLike,
    options: ScoreOptions | None = None,
    extractors: dict[str, FeatureExtractor] | None = None,
    **overrides: Any,
) -> EvalReport:
    """Score ``gen_dir`` against ``real_dir`` and return an :class:`EvalReport`.

    ``options`` (or ``overrides``, its field names) say which metrics and how. ``extractors`` maps
    extractor names to ready extractors (e.g. an Inception with test weights); missing ones are
    built (Inception from ``inception_weights``, imgsim from the asset cache) and added to the
    dict, so a caller scoring several folders loads each network once. Warnings (small sets,
    JPEG outputs) are emitted and also recorded in the report.
    """
    o = with_overrides(ScoreOptions, options, overrides)
    metrics, resize, batch_size, progress = o.metrics, o.resize, o.batch_size, o.progress
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    gen_paths, real_paths = list_images(gen_dir), list_images(real_dir)  # clear errors first
    extractors = extractors if extractors is not None else {}
    values: dict[str, float] = {}
    details: dict = {}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jpegs = [p.name for p in gen_paths if p.suffix.lower() in (".jpg", ".jpeg")]
        if jpegs:
            warnings.warn(
                f"{gen_dir}: {len(jpegs)} generated image(s) are JPEG (e.g. {jpegs[0]}); compression artefacts "
                "shift FID-like scores, save generated images as PNG",
                UserWarning,
                stacklevel=2,
            )
        on_features = {m: kind for m in metrics if (kind := METRICS[m]) is not None}
        for ext_name in dict.fromkeys(extractor for extractor, _ in on_features.values()):
            if ext_name not in extractors:
                extractors[ext_name] = _build_extractor(ext_name, o.inception_weights, o.imgsim_size, o.device)
            ext = extractors[ext_name]
            real = folder_stats(
                real_dir, ext, resize, cache=o.cache, cache_dir=o.cache_dir, batch_size=batch_size, progress=progress
            )
            gen = folder_stats(gen_dir, ext, resize, cache=False, batch_size=batch_size, progress=progress)
            details[ext_name] = {
                "weights": ext.weights_label,
                "cache_id": ext.cache_id,
                "real_stats_cache": str(real.cache_path) if real.cache_path else None,
                "real_stats_from_cache": real.from_cache,
            }
            wanted = {what for extractor, what in on_features.values() if extractor == ext_name}
            if "fd" in wanted:
                warn_if_small(gen.n, ext.dim, f"generated set {gen_dir}", ext.fd_label)
                warn_if_small(real.n, ext.dim, f"real set {real_dir}", ext.fd_label)
                used = resolve_fd_method(o.fd_method, min(gen.n, real.n), ext.dim)
                details[ext_name]["fd_method"] = used
                values[ext.fd_key] = frechet_distance_from_features(
                    gen.features, (gen.mu, gen.sigma), real.features, (real.mu, real.sigma), method=used
                )
            if "kid" in wanted:
                res = kid(gen.features, real.features, num_subsets=o.kid_subsets, subset_size=o.kid_subset_size)
                values[ext.kid_key] = res.mean
                values[ext.kid_key + "_std"] = res.std
                details[ext_name]["kid_subset_size"] = res.subset_size
                details[ext_name]["kid_subsets"] = res.num_subsets
        if "psnr" in metrics or "ssim" in metrics:
            pr = paired_scores(gen_dir, real_dir, resize_real=o.paired_resize)
            for m in ("psnr", "ssim"):
                if m in metrics:
                    values[m] = getattr(pr, m)
            details["paired"] = {
                "n_pairs": pr.n_pairs,
                "resized_real": o.paired_resize,
                "unmatched_gen": pr.n_unmatched_gen,
                "unmatched_real": pr.n_unmatched_real,
            }

    ours = [w for w in caught if issubclass(w.category, (UserWarning, RuntimeWarning))]
    for w in caught:  # re-emit so callers and the CLI still see them
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return EvalReport(
        gen_dir=str(Path(gen_dir).resolve()),
        real_dir=str(Path(real_dir).resolve()),
        metrics=values,
        n_gen=len(gen_paths),
        n_real=len(real_paths),
        resize=resize,
        details=details,
        warnings=sorted({str(w.message) for w in ours}),
    )
