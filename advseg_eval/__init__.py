"""Evaluation metrics: FID/KID (pytorch-fid Inception-v3), the offline imgsim-ResNet50 feature
distance (never called FID), PSNR/SSIM, cached set statistics and reports. CLI: ``advseg-eval``.

Names below are imported lazily: ``import advseg_eval`` does not import torch until a name that
needs it is used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from advseg_sdk.lazy import lazy_exports

#: module -> the public names it defines
_MODULES = {
    "features": (
        "EXTRACTORS",
        "FeatureExtractor",
        "ImgsimResNet50Extractor",
        "InceptionFIDExtractor",
        "get_extractor",
    ),
    "fid": (
        "KIDResult",
        "frechet_distance",
        "frechet_distance_from_features",
        "frechet_distance_lowrank",
        "gaussian_stats",
        "kid",
    ),
    "inception": (
        "FID_WEIGHTS_FILENAME",
        "FID_WEIGHTS_SHA256",
        "FIDInceptionV3",
        "InceptionWeightsError",
        "StateDictLayoutError",
        "default_inception_weights_path",
        "load_fid_inception",
    ),
    "paired": ("paired_scores", "psnr", "ssim"),
    "report": ("EvalReport", "load_report", "markdown_table"),
    "score": ("METRICS", "ScoreOptions", "score_folders"),
    "stats": ("EvalInputError", "FeatureStats", "SmallSampleWarning", "folder_stats", "list_images"),
}
#: name -> the module that defines it
_EXPORTS = {name: f"advseg_eval.{mod}" for mod, names in _MODULES.items() for name in names}

__all__ = [
    "EXTRACTORS",
    "FID_WEIGHTS_FILENAME",
    "FID_WEIGHTS_SHA256",
    "METRICS",
    "EvalInputError",
    "EvalReport",
    "FIDInceptionV3",
    "FeatureExtractor",
    "FeatureStats",
    "ImgsimResNet50Extractor",
    "InceptionFIDExtractor",
    "InceptionWeightsError",
    "KIDResult",
    "SmallSampleWarning",
    "StateDictLayoutError",
    "default_inception_weights_path",
    "folder_stats",
    "frechet_distance",
    "frechet_distance_from_features",
    "frechet_distance_lowrank",
    "gaussian_stats",
    "get_extractor",
    "kid",
    "list_images",
    "load_fid_inception",
    "load_report",
    "markdown_table",
    "paired_scores",
    "psnr",
    "ScoreOptions",
    "score_folders",
    "ssim",
]

if TYPE_CHECKING:  # pragma: no cover
    from .features import EXTRACTORS, FeatureExtractor, ImgsimResNet50Extractor, InceptionFIDExtractor, get_extractor
    from .fid import (
        KIDResult,
        frechet_distance,
        frechet_distance_from_features,
        frechet_distance_lowrank,
        gaussian_stats,
        kid,
    )
    from .inception import (
        FID_WEIGHTS_FILENAME,
        FID_WEIGHTS_SHA256,
        FIDInceptionV3,
        InceptionWeightsError,
        StateDictLayoutError,
        default_inception_weights_path,
        load_fid_inception,
    )
    from .paired import paired_scores, psnr, ssim
    from .report import EvalReport, load_report, markdown_table
    from .score import METRICS, ScoreOptions, score_folders
    from .stats import EvalInputError, FeatureStats, SmallSampleWarning, folder_stats, list_images

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
