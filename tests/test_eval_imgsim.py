"""The offline feature distance on real weights and real photos, the statistics cache, and the
small-set warning. The imgsim ResNet-50 is the real asset; photos are the real photo set."""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from advseg_eval.features import ImgsimResNet50Extractor, get_extractor
from advseg_eval.fid import frechet_distance_from_features, gaussian_stats
from advseg_eval.score import score_folders
from advseg_eval.stats import (
    EvalInputError,
    SmallSampleWarning,
    compute_features,
    folder_stats,
    list_images,
    load_image,
)

pytestmark = pytest.mark.real_assets

N_PHOTOS = 12
INPUT_SIZE = 112  # small input keeps ResNet-50 cheap on 2 CPU cores


@pytest.fixture(scope="module")
def extractor():
    # one intra-op thread: far faster than two on a shared, oversubscribed 2-core runner
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield ImgsimResNet50Extractor(input_size=INPUT_SIZE, device="cpu")
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def photo_sets(tmp_path_factory, photo_paths):
    """Downscaled real photos (PNG) plus blurred and noisy copies, one folder per variant."""
    root = tmp_path_factory.mktemp("imgsim_sets")
    rng = np.random.default_rng(0)
    variants = {"base": [], "copy": []}
    for r in (1, 2, 4):
        variants[f"blur{r}"] = []
    for s in (8, 24, 48):
        variants[f"noise{s}"] = []
    for p in photo_paths[:N_PHOTOS]:
        with Image.open(p) as im:  # centre square, 128x128: one batch per set
            im = im.convert("RGB")
            side = min(im.size)
            left, top = (im.width - side) // 2, (im.height - side) // 2
            im = im.crop((left, top, left + side, top + side)).resize((128, 128), Image.Resampling.LANCZOS)
        arr = np.asarray(im)
        out = {"base": im, "copy": im.copy()}
        for r in (1, 2, 4):
            out[f"blur{r}"] = im.filter(ImageFilter.GaussianBlur(r))
        for s in (8, 24, 48):
            noisy = np.clip(arr + rng.normal(0, s, arr.shape), 0, 255).astype(np.uint8)
            out[f"noise{s}"] = Image.fromarray(noisy)
        for name, img in out.items():
            d = root / name
            d.mkdir(exist_ok=True)
            img.save(d / f"{p.stem}.png")
    return {name: root / name for name in variants}


@pytest.fixture(scope="module")
def features(extractor, photo_sets):
    return {name: compute_features(list_images(d), extractor) for name, d in photo_sets.items()}


def _fd(f1: np.ndarray, f2: np.ndarray) -> float:
    return frechet_distance_from_features(f1, gaussian_stats(f1), f2, gaussian_stats(f2))


def test_registry_builds_the_imgsim_extractor():
    with pytest.raises(ValueError, match="unknown feature extractor 'nope'"):
        get_extractor("nope")
    assert "FID" not in ImgsimResNet50Extractor.fd_label
    assert ImgsimResNet50Extractor.fd_key == "imgsim_fd"


def test_real_weights_match_their_batchnorm_statistics(extractor, photo_sets):
    """With the right architecture, weights and preprocessing (RGB order, ImageNet mean/std),
    each BN layer's batch statistics on real photos sit close to its stored running statistics.
    Measured on these photos: median |log(var/running_var)| 0.14-0.19 when right; 0.41 with BGR
    input, 0.87 with [-1,1] input, 1.26 without normalisation, 1.95 for noise input."""
    batch = torch.from_numpy(np.stack([load_image(p) for p in list_images(photo_sets["base"])]))
    log_var_ratio, mean_shift = [], []

    def hook(mod, inp, _out):
        a = inp[0]
        log_var_ratio.append(np.median(np.abs(np.log(a.var((0, 2, 3)).numpy() / mod.running_var.numpy()))))
        mean_shift.append(((a.mean((0, 2, 3)) - mod.running_mean).abs() / mod.running_var.sqrt()).mean().item())

    trunk = extractor.network.trunk
    handles = [m.register_forward_hook(hook) for m in trunk.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    try:
        with torch.inference_mode():
            extractor.network(batch.permute(0, 3, 1, 2).float())
    finally:
        for h in handles:
            h.remove()
    assert len(log_var_ratio) == 53
    print(
        f"\nBN statistics on real photos: median |log var ratio| {np.median(log_var_ratio):.3f}, "
        f"mean |z| of means {np.mean(mean_shift):.3f}"
    )
    assert np.median(log_var_ratio) < 0.3
    assert np.mean(mean_shift) < 0.25


def test_distance_of_a_set_to_itself_is_zero_and_grows_with_perturbation(features):
    base = features["base"]
    assert base.shape == (N_PHOTOS, 2048) and np.isfinite(base).all()
    scale = _fd(base, features["blur4"])
    self_d = _fd(base, features["copy"])
    assert abs(self_d) < 1e-6 * scale, (self_d, scale)
    blur = [_fd(base, features[f"blur{r}"]) for r in (1, 2, 4)]
    noise = [_fd(base, features[f"noise{s}"]) for s in (8, 24, 48)]
    print(
        f"\nimgsim-ResNet50 Fréchet distance, {N_PHOTOS} real photos (128x128 crops), input {INPUT_SIZE}: "
        f"self={self_d:.3g} blur r=1,2,4: {[round(v, 2) for v in blur]} noise s=8,24,48: {[round(v, 2) for v in noise]}"
    )
    assert 0 < blur[0] < blur[1] < blur[2]
    assert 0 < noise[0] < noise[1] < noise[2]


def test_stats_cache_hit_skips_the_network(extractor, photo_sets, tmp_path):
    real = tmp_path / "real"
    shutil.copytree(photo_sets["base"], real)
    cache_dir = tmp_path / "cache"
    first = folder_stats(real, extractor, cache_dir=cache_dir)
    assert not first.from_cache and first.cache_path.is_file()
    assert first.cache_path.parent == cache_dir and len(list(cache_dir.iterdir())) == 1
    mtime = first.cache_path.stat().st_mtime_ns
    runs = extractor.batches_run

    second = folder_stats(real, extractor, cache_dir=cache_dir)
    assert second.from_cache
    assert extractor.batches_run == runs, "a cache hit must not run the network"
    assert second.cache_path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(second.features, first.features)
    np.testing.assert_array_equal(second.sigma, first.sigma)

    # another resize policy is another key
    clean = folder_stats(real, extractor, resize="clean", cache_dir=cache_dir)
    assert not clean.from_cache and clean.key != first.key

    # changing one file's bytes changes the key: recomputed, not served stale
    victim = list_images(real)[0]
    arr = np.asarray(Image.open(victim)).copy()
    arr[0, 0] = 255 - arr[0, 0]
    Image.fromarray(arr).save(victim)
    third = folder_stats(real, extractor, cache_dir=cache_dir)
    assert not third.from_cache and third.key != first.key
    assert extractor.batches_run > runs
    assert len(list(cache_dir.glob("*.npz"))) == 3


def test_score_folders_warns_on_small_sets_and_names_the_metric(extractor, photo_sets, tmp_path):
    with pytest.warns(SmallSampleWarning, match=r"12 images < 2048 feature dimensions"):
        report = score_folders(
            photo_sets["blur2"],
            photo_sets["base"],
            metrics=("imgsim", "imgsim-kid"),
            extractors={extractor.name: extractor},
            cache_dir=tmp_path,
        )
    assert set(report.metrics) == {"imgsim_fd", "imgsim_kid", "imgsim_kid_std"}
    assert "fid" not in report.metrics
    assert report.metrics["imgsim_fd"] > 0
    assert any("imgsim-ResNet50 Fréchet distance" in w for w in report.warnings)
    labels = report.to_dict()["labels"]
    assert all("FID" not in v for v in labels.values())


def test_jpeg_outputs_are_flagged(extractor, photo_sets, tmp_path):
    gen = tmp_path / "gen"
    gen.mkdir()
    for p in list_images(photo_sets["base"])[:4]:
        Image.open(p).save(gen / f"{p.stem}.jpg", quality=90)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score_folders(
            gen, photo_sets["base"], metrics=("imgsim-kid",), extractors={extractor.name: extractor}, cache=False
        )
    assert any("JPEG" in str(w.message) for w in caught)


def test_clean_resize_antialiases_where_pytorch_fid_resize_aliases(tmp_path):
    """A 1-px stripe pattern shrunk to 299: clean-fid-style bicubic averages it to flat grey,
    pytorch-fid's in-network bilinear resize samples it and aliases into strong stripes."""
    stripes = np.zeros((897, 897, 3), np.uint8)
    stripes[:, ::2] = 255
    path = tmp_path / "stripes.png"
    Image.fromarray(stripes).save(path)
    clean = load_image(path, "clean", 299)
    assert clean.shape == (299, 299, 3)
    raw = torch.from_numpy(load_image(path, "pytorch-fid")).permute(2, 0, 1)[None]
    pf = torch.nn.functional.interpolate(raw, size=(299, 299), mode="bilinear", align_corners=False)
    assert clean.std() < 0.02
    assert pf.std().item() > 0.3


def test_unreadable_inputs_are_named(tmp_path):
    with pytest.raises(EvalInputError, match="no images found"):
        list_images(tmp_path)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(EvalInputError, match="broken.png: cannot be read as an image"):
        load_image(bad)
    with pytest.raises(EvalInputError, match="not a directory"):
        list_images(tmp_path / "nope")
    assert os.path.exists(bad)
