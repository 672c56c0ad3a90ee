"""PSNR / SSIM on real photos: analytic PSNR for Gaussian noise, ordering, pairing rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageFilter

from advseg_eval.paired import match_pairs, paired_scores, psnr, ssim
from advseg_eval.stats import EvalInputError

pytestmark = pytest.mark.real_assets


@pytest.fixture(scope="module")
def photos(photo_paths) -> list[np.ndarray]:
    out = []
    for p in photo_paths[:4]:
        with Image.open(p) as im:
            im = im.convert("RGB")
            im.thumbnail((160, 160), Image.Resampling.LANCZOS)
            out.append(np.asarray(im))
    return out


def _noisy(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.round(img + rng.normal(0, sigma, img.shape)), 0, 255).astype(np.uint8)


def test_identical_images(photos):
    assert psnr(photos[0], photos[0]) == math.inf
    assert ssim(photos[0], photos[0]) == pytest.approx(1.0)


def test_psnr_of_gaussian_noise_matches_its_closed_form(photos):
    # MSE of rounded N(0, s²) noise is s² + 1/12 (clipping at 0/255 lowers it a little)
    for sigma in (3.0, 6.0):
        want = 10 * math.log10(255**2 / (sigma**2 + 1 / 12))
        got = np.mean([psnr(_noisy(p, sigma, i), p) for i, p in enumerate(photos)])
        assert want - 0.05 < got < want + 0.6, (sigma, got, want)


def test_ssim_and_psnr_fall_with_degradation(photos):
    img = photos[1]
    noise = [ssim(_noisy(img, s, 0), img) for s in (4, 16, 48)]
    assert 1 > noise[0] > noise[1] > noise[2] > 0
    pil = Image.fromarray(img)
    blur = [np.asarray(pil.filter(ImageFilter.GaussianBlur(r))) for r in (1, 3)]
    assert ssim(blur[0], img) > ssim(blur[1], img)
    assert psnr(blur[0], img) > psnr(blur[1], img)
    with pytest.raises(ValueError, match="equal shapes"):
        psnr(img, img[:-1])


def test_folders_pair_by_stem_across_formats(photos, tmp_path):
    gen, real = tmp_path / "gen", tmp_path / "real"
    gen.mkdir()
    real.mkdir()
    for i, p in enumerate(photos):
        Image.fromarray(p).save(real / f"{i:04d}.png")
        Image.fromarray(_noisy(p, 6, i)).save(gen / f"{i:04d}.png" if i % 2 else gen / f"{i:04d}.bmp")
    Image.fromarray(photos[0]).save(real / "extra.png")  # no generated counterpart
    pairs = match_pairs(gen, real)
    assert [(g.stem, r.stem) for g, r in pairs] == [(f"{i:04d}", f"{i:04d}") for i in range(len(photos))]
    res = paired_scores(gen, real)
    assert res.n_pairs == len(photos) and res.n_unmatched_real == 1 and res.n_unmatched_gen == 0
    assert 32 < res.psnr < 33.5 and 0.5 < res.ssim < 1


def test_size_mismatch_is_an_error_unless_resizing_is_asked(photos, tmp_path):
    gen, real = tmp_path / "gen", tmp_path / "real"
    gen.mkdir()
    real.mkdir()
    big = Image.fromarray(photos[2])
    big.save(real / "a.png")
    small = big.resize((big.width // 2, big.height // 2), Image.Resampling.BICUBIC)
    small.save(gen / "a.png")
    with pytest.raises(EvalInputError, match=r"a.png is \d+x\d+ but .*a.png is \d+x\d+; pass --paired-resize"):
        paired_scores(gen, real)
    res = paired_scores(gen, real, resize_real=True)
    assert res.n_pairs == 1 and res.psnr > 25


def test_no_common_names_is_explained(photos, tmp_path):
    gen, real = tmp_path / "gen", tmp_path / "real"
    gen.mkdir()
    real.mkdir()
    Image.fromarray(photos[0]).save(gen / "fake_0.png")
    Image.fromarray(photos[0]).save(real / "real_0.png")
    with pytest.raises(EvalInputError, match="no file stems in common"):
        match_pairs(gen, real)
