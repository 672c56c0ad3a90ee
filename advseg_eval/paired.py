"""Paired metrics where ground truth exists (Pix2Pix-style test sets): PSNR and SSIM.

Generated and real images are matched by file stem (``0001.png`` <-> ``0001.jpg``), compared
as uint8 RGB (data range 255). SSIM is scikit-image's ``structural_similarity`` with its defaults
(7x7 uniform windows), computed per channel and averaged. Sizes must agree; with
``resize_real=True`` the real image is resized to the generated one's size with PIL bicubic
(antialiased) first — say so when you report such numbers, resizing changes both metrics.
JPEG-compressed ground truth caps the PSNR a perfect model can reach.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

from advseg_sdk.quality import psnr

from .stats import EvalInputError, list_images

__all__ = ["PairedResult", "match_pairs", "paired_scores", "psnr", "ssim"]


def _check(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"paired metric needs equal shapes, got {a.shape} and {b.shape}")


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM of two HxW or HxWx3 images of equal shape."""
    _check(a, b)
    channel_axis = -1 if a.ndim == 3 else None
    return float(
        structural_similarity(
            np.asarray(a, np.float64), np.asarray(b, np.float64), data_range=data_range, channel_axis=channel_axis
        )
    )


def match_pairs(gen_dir: str | os.PathLike, real_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(generated, real) pairs with the same file stem; error if none match."""
    gen = {p.stem: p for p in list_images(gen_dir)}
    real = {p.stem: p for p in list_images(real_dir)}
    common = sorted(gen.keys() & real.keys())
    if not common:
        raise EvalInputError(
            f"paired metrics: no file stems in common between {gen_dir} ({len(gen)} images, e.g. "
            f"{next(iter(gen))!r}) and {real_dir} ({len(real)} images, e.g. {next(iter(real))!r}); "
            "PSNR/SSIM need ground truth with the same names"
        )
    return [(gen[s], real[s]) for s in common]


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise EvalInputError(f"{path}: cannot be read as an image ({exc})") from exc


@dataclass(frozen=True)
class PairedResult:
    psnr: float  # mean over pairs, dB
    ssim: float
    n_pairs: int
    n_unmatched_gen: int
    n_unmatched_real: int


def paired_scores(gen_dir: str | os.PathLike, real_dir: str | os.PathLike, resize_real: bool = False) -> PairedResult:
    """Mean PSNR and SSIM over stem-matched pairs (identical pairs contribute PSNR = inf)."""
    pairs = match_pairs(gen_dir, real_dir)
    p_vals, s_vals = [], []
    for g_path, r_path in pairs:
        g, r = _read_rgb(g_path), _read_rgb(r_path)
        if g.shape != r.shape:
            if not resize_real:
                raise EvalInputError(
                    f"paired metrics: {g_path} is {g.shape[1]}x{g.shape[0]} but {r_path} is "
                    f"{r.shape[1]}x{r.shape[0]}; pass --paired-resize (resize_real=True) to resize the real image"
                )
            r = np.asarray(Image.fromarray(r).resize((g.shape[1], g.shape[0]), Image.Resampling.BICUBIC))
        p_vals.append(psnr(g, r))
        s_vals.append(ssim(g, r))
    n_gen = len(list_images(gen_dir))
    n_real = len(list_images(real_dir))
    return PairedResult(
        psnr=float(np.mean(p_vals)),
        ssim=float(np.mean(s_vals)),
        n_pairs=len(pairs),
        n_unmatched_gen=n_gen - len(pairs),
        n_unmatched_real=n_real - len(pairs),
    )
