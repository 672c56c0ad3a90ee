"""Image folders -> features -> Gaussian statistics, with a content-hash cache.

Resize policy (``resize=``), the largest silent source of FID disagreement:

- ``"pytorch-fid"`` (default; what ``python -m pytorch_fid`` and hence the paper's numbers did):
  each file is decoded with PIL, ``.convert("RGB")`` (alpha dropped, no EXIF rotation, 16-bit
  reduced by PIL), scaled to [0,1] float, and given to the network at its own size; the network
  resizes it to its input size with bilinear ``F.interpolate`` (align_corners=False, no
  antialiasing, so images much larger than 299 px alias). Images of different sizes are fine:
  they are batched by size.
- ``"clean"`` (clean-fid-style): the image is resized on the CPU to the network's input size
  with PIL bicubic, per channel in float32 (PIL antialiases when shrinking), clipped to
  [0,255] and scaled to [0,1]; the network's own resize is then a no-op. This is clean-fid's
  resize only: the network is still pytorch-fid's, so the values are not clean-fid's numbers.

Other pitfalls: do not save generated images as JPEG (compression shifts FID by whole points;
use PNG); compare sets produced with the same resize mode and at the same resolution; Fréchet
distances from fewer images than feature dimensions (2048) are strongly biased upward and only
comparable at equal set sizes (:class:`SmallSampleWarning`).

Statistics of a folder are cached in ``$ADVSEG_HOME/eval-cache/*.npz`` keyed by the sha256 of
every file's bytes and relative name, the extractor's ``cache_id`` (weights sha256, input size)
and the resize mode, so a changed file, weights file or policy never reuses stale numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from advseg_sdk import files

from .features import FeatureExtractor
from .fid import gaussian_stats

__all__ = [
    "CACHE_FORMAT",
    "EvalInputError",
    "FeatureStats",
    "RESIZE_MODES",
    "SmallSampleWarning",
    "compute_features",
    "default_cache_dir",
    "folder_stats",
    "list_images",
    "load_image",
    "stats_cache_key",
    "warn_if_small",
]

RESIZE_MODES = ("pytorch-fid", "clean")
CACHE_FORMAT = "advseg-eval-stats/1"
_MAX_BATCH_PIXELS = 24_000_000  # keeps a batch of large photos within a few hundred MB


class EvalInputError(ValueError):
    """A folder or image cannot be used for evaluation (message names it and why)."""


class SmallSampleWarning(UserWarning):
    """A set has fewer images than the feature dimension: Fréchet distances are unreliable."""


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; upper-case suffixes count (unlike
    pytorch-fid's lowercase glob, which silently skips ``.JPG``)."""
    return files.list_images(folder, EvalInputError)


def load_image(path: str | os.PathLike, resize: str = "pytorch-fid", size: int = 299) -> np.ndarray:
    """Decode ``path`` to float32 RGB HxWx3 in [0,1] under the resize policy (module docstring)."""
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise EvalInputError(f"{path}: cannot be read as an image ({exc})") from exc
    if resize == "pytorch-fid":
        return rgb.astype(np.float32) / 255.0
    channels = [
        np.asarray(Image.fromarray(rgb[:, :, c].astype(np.float32)).resize((size, size), Image.Resampling.BICUBIC))
        for c in range(3)
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 255.0).astype(np.float32) / 255.0


def _batches(paths: Sequence[Path], resize: str, size: int, batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive images of equal size, at most ``batch_size`` (and a pixel budget) per batch."""
    buf: list[np.ndarray] = []
    for p in paths:
        img = load_image(p, resize, size)
        if buf and (
            img.shape != buf[0].shape
            or len(buf) >= batch_size
            or (len(buf) + 1) * img.shape[0] * img.shape[1] > _MAX_BATCH_PIXELS
        ):
            yield torch.from_numpy(np.stack(buf)).permute(0, 3, 1, 2)
            buf = []
        buf.append(img)
    if buf:
        yield torch.from_numpy(np.stack(buf)).permute(0, 3, 1, 2)


def compute_features(
    paths: Sequence[str | os.PathLike],
    extractor: FeatureExtractor,
    resize: str = "pytorch-fid",
    batch_size: int = 32,
    progress: bool = False,
) -> np.ndarray:
    """Features (N, extractor.dim) float32 of the images, in order."""
    files = [Path(p) for p in paths]
    out = np.empty((len(files), extractor.dim), np.float32)
    i = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(files), desc=f"{extractor.name} features", unit="img")
    for batch in _batches(files, resize, extractor.input_size, batch_size):
        feats = extractor(batch)
        if not np.isfinite(feats).all():
            raise EvalInputError(f"{extractor.name}: non-finite features for images {i}..{i + len(feats) - 1}")
        out[i : i + len(feats)] = feats
        i += len(feats)
        if bar is not None:
            bar.update(len(feats))
    if bar is not None:
        bar.close()
    return out


def warn_if_small(n: int, dim: int, what: str, metric: str = "Fréchet distance") -> bool:
    """Emit :class:`SmallSampleWarning` when ``n < dim``; returns whether it warned."""
    if n >= dim:
        return False
    warnings.warn(
        f"{what}: {n} images < {dim} feature dimensions. The covariance has rank <= {n - 1}, so the "
        f"{metric} is biased upward and only comparable between sets of the same size; published "
        "FIDs use 10k-50k images. KID is unbiased and better suited to small sets.",
        SmallSampleWarning,
        stacklevel=2,
    )
    return True


# --------------------------------------------------------------------------- statistics + cache


@dataclass
class FeatureStats:
    """Features and Gaussian statistics of one image set."""

    features: np.ndarray  # (N, D) float32
    mu: np.ndarray  # (D,) float64
    sigma: np.ndarray  # (D, D) float64
    source: str
    key: str | None = None
    cache_path: Path | None = None
    from_cache: bool = False

    @property
    def n(self) -> int:
        return int(self.features.shape[0])


def default_cache_dir() -> Path:
    from advseg_sdk.assets import advseg_home

    return advseg_home() / "eval-cache"


def stats_cache_key(paths: Sequence[Path], root: Path, extractor: FeatureExtractor, resize: str) -> str:
    """sha256 over (format, extractor.cache_id, resize, every relative name + content sha256)."""
    from advseg_sdk.files import sha256_file

    h = hashlib.sha256(json.dumps([CACHE_FORMAT, extractor.cache_id, resize]).encode())
    for p in paths:
        h.update(f"\n{p.relative_to(root).as_posix()}\0{sha256_file(p)}".encode())
    return h.hexdigest()


def _read_cache(path: Path, key: str, dim: int) -> FeatureStats | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key or str(z["format"]) != CACHE_FORMAT:
                return None
            feats, mu, sigma = z["features"], z["mu"], z["sigma"]
    except Exception as exc:  # truncated or foreign file: recompute, say so
        warnings.warn(f"ignoring unreadable statistics cache {path} ({exc}); recomputing", RuntimeWarning, stacklevel=3)
        return None
    if feats.ndim != 2 or feats.shape[1] != dim or mu.shape != (dim,) or sigma.shape != (dim, dim):
        return None
    return FeatureStats(feats, mu, sigma, source=str(path), key=key, cache_path=path, from_cache=True)


def _write_cache(path: Path, stats: FeatureStats) -> None:
    from advseg_sdk.files import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            format=np.array(CACHE_FORMAT),
            key=np.array(stats.key),
            features=stats.features,
            mu=stats.mu,
            sigma=stats.sigma,
        )


def folder_stats(
    folder: str | os.PathLike,
    extractor: FeatureExtractor,
    resize: str = "pytorch-fid",
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> FeatureStats:
    """Features and (mu, sigma) of every image in ``folder``; cached by content when ``cache``.

    A cache hit reads the ``.npz`` and runs no network (``extractor.batches_run`` is unchanged).
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    root = Path(folder)
    paths = list_images(root)
    if len(paths) < 2:
        raise EvalInputError(f"{root}: {len(paths)} image(s); set statistics need at least 2")
    key = cache_path = None
    if cache:
        key = stats_cache_key(paths, root, extractor, resize)
        cdir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        cache_path = cdir / f"{extractor.name}-{resize}-{key[:24]}.npz"
        if cache_path.is_file():
            hit = _read_cache(cache_path, key, extractor.dim)
            if hit is not None:
                hit.source = str(root)
                return hit
    feats = compute_features(paths, extractor, resize, batch_size, progress)
    mu, sigma = gaussian_stats(feats)
    stats = FeatureStats(feats, mu, sigma, source=str(root), key=key, cache_path=cache_path)
    if cache and cache_path is not None:
        _write_cache(cache_path, stats)
    return stats
