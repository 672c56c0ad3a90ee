"""advseg-train units: config, image pool, GAN loss, gradient flow of AdvSegLoss, data."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from advseg_train.config import ConfigError, dump_yaml, get_preset, resolve_config, to_dict
from advseg_train.data import (
    AlignedDataset,
    Augment,
    DataError,
    PhotoSketchDataset,
    ResumableSampler,
    SketchCache,
    UnalignedDataset,
)
from advseg_train.image_pool import ImagePool
from advseg_train.losses import GANLoss
from advseg_train.models import build_model

torch.set_num_threads(1)

TINY = [
    "model.netG=resnet_6blocks",
    "model.ngf=4",
    "model.ndf=4",
    "seg.segmenter=tiny",
    "seg.segmenter_kwargs={width: 4}",
    "data.root=unused",
    "data.mode=aligned",
]


# --------------------------------------------------------------------------- config


def test_official_presets_match_the_official_defaults():
    c = get_preset("official-cyclegan")
    assert (c.model.kind, c.model.netG, c.model.norm, c.model.use_dropout, c.model.netD) == (
        "cycle_gan",
        "resnet_9blocks",
        "instance",
        False,
        "basic",
    )
    assert (c.model.gan_mode, c.loss.pool_size, c.loss.lambda_A, c.loss.lambda_B, c.loss.lambda_identity) == (
        "lsgan",
        50,
        10.0,
        10.0,
        0.5,
    )
    assert (c.seg.variant, c.seg.lambda_seg, c.seg.wg, c.seg.wb, c.seg.wm) == ("both", 10.0, 1.0, 1.0, 1.0)
    assert (c.optim.lr, c.optim.beta1, c.optim.beta2, c.optim.niter, c.optim.niter_decay) == (
        2e-4,
        0.5,
        0.999,
        100,
        100,
    )
    assert (c.data.mode, c.data.load_size, c.data.crop_size, c.data.flip, c.run.batch_size) == (
        "unaligned",
        286,
        256,
        True,
        1,
    )
    assert (c.model.ngf, c.model.ndf, c.model.init_type, c.model.init_gain) == (64, 64, "normal", 0.02)
    p = get_preset("official-pix2pix")
    assert (p.model.kind, p.model.netG, p.model.norm, p.model.use_dropout, p.model.gan_mode) == (
        "pix2pix",
        "resnet_9blocks",
        "batch",
        True,
        "vanilla",
    )
    assert (p.loss.pool_size, p.loss.lambda_L1, p.seg.lambda_seg, p.data.mode) == (0, 100.0, 100.0, "aligned")
    paper = get_preset("paper")
    assert (paper.seg.wg, paper.seg.wb, paper.seg.wm, paper.seg.lambda_seg, paper.seg.grad) == (1, 1, 1, 1, "soft")


def test_yaml_preset_overrides_layering_and_errors(tmp_path):
    f = tmp_path / "cfg.yaml"
    f.write_text(yaml.safe_dump({"preset": "official-pix2pix", "model": {"ngf": 32}, "data": {"root": "/d"}}))
    cfg = resolve_config(f, overrides=["model.ngf=8", "seg.grad=hard", "run.max_steps=null", "optim.lr=1e-3"])
    assert cfg.preset == "official-pix2pix" and cfg.model.norm == "batch"  # preset kept
    assert cfg.model.ngf == 8 and cfg.data.root == "/d" and cfg.seg.grad == "hard"
    assert cfg.run.max_steps is None and cfg.optim.lr == 1e-3
    # the resolved YAML reloads to the same config
    g = tmp_path / "resolved.yaml"
    g.write_text(dump_yaml(cfg))
    assert to_dict(resolve_config(g)) == to_dict(cfg)
    with pytest.raises(ConfigError, match="unknown config key 'model.ngff'"):
        resolve_config(overrides=["model.ngff=3"])
    with pytest.raises(ConfigError, match="model.ngf: expected an integer"):
        resolve_config(overrides=["model.ngf=abc"])
    with pytest.raises(ConfigError, match="seg.variant='all' is not one of"):
        resolve_config(overrides=["seg.variant=all"])
    with pytest.raises(ConfigError, match="pix2pix needs paired data"):
        resolve_config(overrides=["model.kind=pix2pix"])
    with pytest.raises(ConfigError, match="multiple of 4"):
        resolve_config(overrides=["data.crop_size=30", "data.load_size=30"])
    with pytest.raises(ConfigError, match="unknown preset"):
        resolve_config(preset="nope")


# --------------------------------------------------------------------------- pool, GAN loss


def test_image_pool_history_and_checkpointable_rng():
    assert ImagePool(0).query(torch.ones(2, 3, 4, 4))[1] is False
    pool = ImagePool(3, seed=7)
    for i in range(3):  # filling: returns the input, stores it
        out, swapped = pool.query(torch.full((1, 1, 2, 2), float(i)))
        assert not swapped and out[0, 0, 0, 0] == i
    seen = set()
    for i in range(3, 40):
        out, swapped = pool.query(torch.full((1, 1, 2, 2), float(i)))
        seen.add(swapped)
        if swapped:
            assert out[0, 0, 0, 0] < i  # an older image came back
    assert seen == {True, False}
    # save (through torch.save/load weights_only), then both pools continue identically
    buf = io.BytesIO()
    torch.save(pool.state_dict(), buf)
    buf.seek(0)
    other = ImagePool(3, seed=999)
    other.load_state_dict(torch.load(buf, weights_only=True))
    for i in range(40, 60):
        x = torch.full((1, 1, 2, 2), float(i))
        assert torch.equal(pool.query(x)[0], other.query(x)[0])


def test_gan_loss_matches_official_definitions():
    pred = torch.rand(2, 1, 5, 5) * 0.9 + 0.05
    assert torch.allclose(GANLoss("lsgan")(pred, True), ((pred - 1) ** 2).mean())
    assert torch.allclose(GANLoss("lsgan")(pred, False), (pred**2).mean())
    # vanilla takes the discriminator's logits: the official sigmoid + BCE in one stable function
    logits = torch.logit(pred)
    assert torch.allclose(GANLoss("vanilla")(logits, True), -torch.log(pred).mean())
    assert torch.allclose(GANLoss("vanilla")(logits, False), -torch.log(1 - pred).mean())


# --------------------------------------------------------------------------- gradient flow


def _generator_grads(model, real_A, real_B) -> torch.Tensor:
    for p in model.parameters():
        p.grad = None
    torch.manual_seed(1)  # same dropout masks for both evaluations
    out = model.forward(real_A, real_B)
    loss, _ = model.generator_losses(real_A, real_B, out)
    loss.backward()
    for name in model.discriminator_names:  # frozen during the G step: no gradient at all
        assert all(p.grad is None for p in model.nets[name].parameters()), name
    gens = [n for n in ("G_A", "G_B", "G") if n in model.nets]
    return torch.cat([p.grad.flatten() for n in gens for p in model.nets[n].parameters()])


@pytest.mark.parametrize("kind", ["cycle_gan", "pix2pix"])
@pytest.mark.parametrize("variant", ["binary", "multi"])
def test_generator_gradient_soft_changes_hard_is_bit_identical(kind, variant):
    real_A = torch.rand(1, 3, 32, 32) * 2 - 1
    real_B = torch.rand(1, 3, 32, 32) * 2 - 1
    weight = {"binary": "wb", "multi": "wm"}[variant]
    for grad in ("soft", "hard"):
        base = TINY + [f"model.kind={kind}", f"seg.variant={variant}", f"seg.grad={grad}", "model.use_dropout=true"]
        grads = []
        for w in (0.0, 1.0):
            torch.manual_seed(0)
            model = build_model(resolve_config(overrides=base + [f"seg.{weight}={w}"]))
            grads.append(_generator_grads(model, real_A, real_B))
        if grad == "soft":
            assert not torch.equal(grads[0], grads[1])
            assert (grads[0] - grads[1]).abs().max() > 1e-4
        else:  # official behaviour: the segmentation term adds a constant
            assert torch.equal(grads[0], grads[1])


def test_hard_maps_are_one_hot_without_graph_soft_maps_carry_one():
    model = build_model(resolve_config(overrides=TINY + ["seg.variant=both", "seg.grad=hard"]))
    x = (torch.rand(1, 3, 16, 16) * 2 - 1).requires_grad_()
    maps = model.adv_seg.maps(x, differentiable=True)
    assert maps["binary"].shape[1] == 3 and maps["multi"].shape[1] == 135  # official layouts
    for m in maps.values():
        assert not m.requires_grad and set(m.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(m.sum(1), torch.ones(1, 16, 16))
    model.adv_seg.grad = "soft"
    maps = model.adv_seg.maps(x, differentiable=True)
    assert all(m.requires_grad for m in maps.values())
    assert torch.allclose(maps["binary"].sum(1), torch.ones(1, 16, 16), atol=1e-5)


# --------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def small_photos(photo_paths) -> list[np.ndarray]:
    """Four real photos, downscaled to 48x40 (w x h)."""
    return [np.asarray(Image.open(p).convert("RGB").resize((48, 40), Image.BICUBIC)) for p in photo_paths[:4]]


def _save(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_unaligned_dataset(tmp_path, small_photos):
    for i, photo in enumerate(small_photos):
        _save(255 - photo, tmp_path / "trainA" / f"s{i}.png")
    for i, photo in enumerate(small_photos[:3]):
        _save(photo, tmp_path / "trainB" / f"p{i}.jpg")
    ds = UnalignedDataset(tmp_path, augment=Augment(36, 32), seed=3)
    assert len(ds) == 4
    item = ds[(0, 1)]
    assert item["A"].shape == (3, 32, 32) and item["B"].shape == (3, 32, 32)
    assert -1 <= item["A"].min() and item["A"].max() <= 1
    assert item["A_path"].endswith("s1.png")
    # B is random but a function of (seed, epoch, index): reproducible, varies over epochs
    assert torch.equal(ds[(0, 1)]["B"], item["B"])
    assert len({ds[(e, 1)]["B_path"] for e in range(12)}) > 1
    serial = UnalignedDataset(tmp_path, augment=Augment(36, 32), serial_batches=True)
    assert serial[(0, 3)]["B_path"].endswith("p0.jpg")
    with pytest.raises(DataError, match="missing/trainA"):
        UnalignedDataset(tmp_path / "missing")


def test_aligned_side_by_side_and_folders_share_crop_and_flip(tmp_path, small_photos):
    aug = Augment(40, 32, flip=True)
    for i, photo in enumerate(small_photos):
        _save(np.concatenate([photo, photo], axis=1), tmp_path / "ab" / "train" / f"{i}.png")  # A == B
        _save(photo, tmp_path / "folders" / "A" / f"{i}.png")
        _save(photo, tmp_path / "folders" / "B" / f"{i}.png")
    for root in ("ab", "folders"):
        ds = AlignedDataset(tmp_path / root, augment=aug, seed=1)
        assert len(ds) == 4
        crops = set()
        for e in range(6):
            item = ds[(e, 2)]
            assert torch.equal(item["A"], item["B"])  # one crop and flip for both halves
            crops.add(item["A"].sum().item())
        assert len(crops) > 1  # but the crop/flip does change between epochs
    _save(small_photos[0], tmp_path / "folders" / "B" / "extra.png")
    with pytest.raises(DataError, match=r"only in B: \['extra'\]"):
        AlignedDataset(tmp_path / "folders")


def test_photos_dataset_makes_hed_sketches_and_hits_the_cache(tmp_path, small_photos):
    for i, photo in enumerate(small_photos[:2]):
        _save(photo, tmp_path / "photos" / f"{i}.png")
    cache = SketchCache(tmp_path / "cache", "hed")
    ds = PhotoSketchDataset(tmp_path / "photos", cache, Augment(48, 48, flip=False), seed=0)
    first = [ds[(0, i)] for i in range(len(ds))]
    assert (cache.misses, cache.hits) == (2, 0)
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(files) == 4 and sum("_hed-b32_48x48.png" in f for f in files) == 2
    second = [ds[(1, i)] for i in range(len(ds))]  # second epoch: from the cache
    assert (cache.misses, cache.hits) == (2, 2)
    for a, b in zip(first, second):
        assert torch.equal(a["A"], b["A"]) and torch.equal(a["B"], b["B"])
        sketch = a["A"]
        assert (sketch > 0.9).float().mean() > 0.5  # mostly white paper
        assert (sketch < -0.9).any()  # with black HED lines
    # a new process (new cache object) reuses the files on disk
    fresh = SketchCache(tmp_path / "cache", "hed")
    PhotoSketchDataset(tmp_path / "photos", fresh, Augment(48, 48, flip=False))[(0, 0)]
    assert (fresh.misses, fresh.hits) == (0, 1)


def test_resumable_sampler_skips_and_splits_ranks():
    data = list(range(10))
    full = ResumableSampler(data, shuffle=True, seed=5)
    full.set_epoch(3)
    order = list(full)
    assert all(e == 3 for e, _ in order) and sorted(i for _, i in order) == data
    full.set_epoch(3, skip=4)
    assert list(full) == order[4:] and len(full) == 6
    r0, r1 = ResumableSampler(data, 2, 0, seed=5), ResumableSampler(data, 2, 1, seed=5)
    r0.set_epoch(1)
    r1.set_epoch(1)
    assert sorted(i for _, i in list(r0) + list(r1)) == data


# --------------------------------------------------------------------------- checkpoint files


def test_checkpoint_roundtrip_rng_and_refusals(tmp_path):
    import random

    from advseg_train.train_state import (
        CheckpointLoadError,
        load_checkpoint,
        rng_state,
        save_checkpoint,
        set_rng_state,
    )

    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    path = save_checkpoint(tmp_path / "c.pt", {"rng": rng_state(), "x": torch.arange(4)})
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(load_checkpoint(path)["rng"])  # weights_only load; RNG states as tensors/lists
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]
    assert not list(tmp_path.glob(".*part*"))  # no temp file left behind

    data = path.read_bytes()
    (tmp_path / "torn.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointLoadError, match="torn.pt cannot be read safely"):
        load_checkpoint(tmp_path / "torn.pt")

    import argparse  # an arbitrary pickled object must not be loaded (no code execution)

    torch.save({"advseg_format": "train-checkpoint/1", "obj": argparse.Namespace(a=1)}, tmp_path / "code.pt")
    with pytest.raises(CheckpointLoadError, match="code.pt cannot be read safely"):
        load_checkpoint(tmp_path / "code.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointLoadError, match="not an advseg training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointLoadError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
