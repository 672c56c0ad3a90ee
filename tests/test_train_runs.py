"""advseg-train loop: exact resume, NaN stop with last good state, overfit on real photos."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from advseg_train.config import resolve_config
from advseg_train.train_state import load_checkpoint
from advseg_train.trainer import TrainingDivergedError, train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory, photo_paths) -> dict[str, Path]:
    """Real photos at 48x40: unaligned (trainA = xdog sketches, trainB = photos), aligned AB."""
    from advseg_sdk.line_drawing import xdog

    root = tmp_path_factory.mktemp("train_data")
    for i, p in enumerate(photo_paths[:5]):
        photo = np.asarray(Image.open(p).convert("RGB").resize((48, 40), Image.BICUBIC))
        sketch = np.repeat(xdog(photo)[:, :, None], 3, axis=2)
        for d, arr in (
            ("unaligned/trainA", sketch),
            ("unaligned/trainB", photo),
            ("aligned/train", np.concatenate([sketch, photo], axis=1)),
        ):
            (root / d).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / d / f"{i}.png")
    return {"unaligned": root / "unaligned", "aligned": root / "aligned"}


def tiny(out: Path, kind: str, data: dict[str, Path], *extra: str):
    mode = "unaligned" if kind == "cycle_gan" else "aligned"
    return resolve_config(
        overrides=[
            f"model.kind={kind}",
            "model.netG=resnet_6blocks",
            "model.ngf=4",
            "model.ndf=4",
            f"data.mode={mode}",
            f"data.root={data[mode]}",
            "data.load_size=36",
            "data.crop_size=32",
            "seg.segmenter=tiny",
            "seg.segmenter_kwargs={width: 4}",
            "optim.niter=1",
            "optim.niter_decay=2",
            f"run.out={out}",
            "run.log_every=1",
            "run.sample_every=0",
            "run.checkpoint_every=0",
            "run.progress=false",
            "run.threads=1",
            *extra,
        ]
    )


def _scramble_global_rng() -> None:
    torch.manual_seed(987654)
    np.random.seed(4321)
    random.seed(1234)


@pytest.mark.parametrize(
    "kind, extra",
    [
        ("cycle_gan", ["seg.variant=both", "loss.pool_size=2", "model.use_dropout=true"]),
        ("pix2pix", ["seg.variant=binary", "loss.pool_size=2", "model.norm=batch", "model.use_dropout=true"]),
    ],
)
def test_resume_continues_exactly(tmp_path, datasets, kind, extra):
    # 5 items per epoch, lr decays after epoch 1: 12 steps cross two epoch ends; 7 is mid-epoch
    straight = train(tiny(tmp_path / "a", kind, datasets, *extra, "run.max_steps=12"))
    first = train(tiny(tmp_path / "b", kind, datasets, *extra, "run.max_steps=7"))
    assert first.global_step == 7
    _scramble_global_rng()  # as a new process would have different RNG states
    resumed = train(tiny(tmp_path / "b", kind, datasets, *extra, "run.max_steps=12", "run.resume=true"))
    assert resumed.resumed_from == 7 and resumed.global_step == 12

    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "latest.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "latest.pt")
    assert a["position"] == b["position"] == {"epoch": 3, "iter": 2, "global_step": 12}
    for name, sd in a["model"]["nets"].items():
        for k, v in sd.items():
            assert torch.allclose(v.float(), b["model"]["nets"][name][k].float(), atol=1e-6, rtol=0), (name, k)
    for name, opt in a["model"]["optimizers"].items():
        for pid, st in opt["state"].items():
            assert torch.allclose(st["exp_avg"], b["model"]["optimizers"][name]["state"][pid]["exp_avg"], atol=1e-7)
    for name, pool in a["model"]["pools"].items():
        assert torch.allclose(pool["images"], b["model"]["pools"][name]["images"], atol=1e-6)
        assert torch.equal(pool["rng"], b["model"]["pools"][name]["rng"])
    lr = [s["_last_lr"] for s in a["model"]["schedulers"].values()]
    assert lr == [s["_last_lr"] for s in b["model"]["schedulers"].values()] and lr[0][0] < 2e-4
    # the losses logged after the resume are the straight run's
    tail = {h["step"]: h["G_total"] for h in straight.history}
    for h in resumed.history:
        assert h["G_total"] == pytest.approx(tail[h["step"]], rel=1e-5, abs=1e-6)


def test_nan_loss_stops_with_message_and_last_good_checkpoint(tmp_path, datasets):
    cfg = tiny(
        tmp_path / "run",
        "cycle_gan",
        datasets,
        "seg.variant=binary",
        "run.checkpoint_every=1",
        "debug.inject_nan_step=3",
        "run.max_steps=6",
    )
    with pytest.raises(TrainingDivergedError) as info:
        train(cfg)
    msg = str(info.value)
    assert "non-finite loss" in msg and "global step 3" in msg and "nonfinite.pt" in msg
    assert all(np.isnan(v) for v in info.value.terms.values()) and "G_A" in info.value.terms
    saved = load_checkpoint(info.value.checkpoint)
    latest = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert saved["position"] == latest["position"] == {"epoch": 1, "iter": 2, "global_step": 2}
    for name, sd in saved["model"]["nets"].items():
        for k, v in sd.items():
            assert torch.isfinite(v.float()).all()
            assert torch.equal(v, latest["model"]["nets"][name][k])  # weights before the bad step
    assert torch.equal(saved["rng"]["torch"], latest["rng"]["torch"])
    # and the run continues from it once the cause is gone
    cfg.debug.inject_nan_step = None
    cfg.run.resume = True
    assert train(cfg).global_step == 6


@pytest.mark.slow
@pytest.mark.real_assets
def test_tiny_overfit_on_real_photos_with_hed_sketches(tmp_path):
    """Pix2Pix + AdvSegLoss (binary, soft) on 4 real photos with HED sketches made on the fly."""
    cfg = resolve_config(
        overrides=[
            "model.kind=pix2pix",
            "model.netG=resnet_6blocks",
            "model.ngf=8",
            "model.ndf=8",
            "data.mode=photos",
            "data.max_items=4",
            "data.preprocess=resize",
            "data.crop_size=64",
            "data.flip=false",
            f"data.sketch_cache={tmp_path / 'sketches'}",
            "seg.variant=binary",
            "seg.segmenter=tiny",
            "seg.segmenter_kwargs={width: 4}",
            "seg.lambda_seg=1",
            "loss.pool_size=0",
            "optim.lr=0.002",
            "optim.niter=25",
            "optim.niter_decay=0",
            f"run.out={tmp_path / 'run'}",
            "run.log_every=1",
            "run.sample_every=0",
            "run.checkpoint_every=0",
            "run.progress=false",
            "run.threads=1",
        ]
    )
    result = train(cfg)
    assert result.global_step == 100
    l1 = np.array([h["G_L1"] for h in result.history])
    d = np.array([h["D"] for h in result.history])
    assert l1[-12:].mean() < 0.8 * l1[:12].mean(), (l1[:12].mean(), l1[-12:].mean())
    assert d[-12:].mean() < 0.7 * d[:12].mean(), (d[:12].mean(), d[-12:].mean())
    assert len(list((tmp_path / "sketches").glob("*_hed-b32_64x64.png"))) == 4
