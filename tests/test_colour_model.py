"""The colour-model chain: train at the SDK's scale, fine-tune with the seg loss from a run,
export (the scale travels in the manifest), the pipeline honours it, and advseg-eval colour
scores it beside its baselines."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from advseg_train.config import resolve_config
from advseg_train.trainer import train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory, photo_paths) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for p in photo_paths[:4]:
        im = Image.open(p).convert("RGB")
        im.thumbnail((120, 120))
        im.save(root / f"{p.stem}.png")
    return root


def _cfg(out: Path, photos: Path, *extra: str):
    return resolve_config(
        preset="demo",
        overrides=[
            f"data.root={photos}",
            "data.sketch_method=xdog",
            f"data.sketch_cache={out / 'cache'}",
            "data.preprocess=scale_shortside_and_crop",
            "data.load_size=36",
            "data.crop_size=32",
            "model.ngf=4",
            "model.ndf=4",
            "seg.segmenter=tiny",
            "seg.segmenter_kwargs={width: 4}",
            f"run.out={out}",
            "run.sample_every=0",
            "run.checkpoint_every=0",
            "run.progress=false",
            "run.threads=1",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory, photo_dir):
    root = tmp_path_factory.mktemp("runs")
    base = train(_cfg(root / "base", photo_dir, "seg.variant=none", "run.max_steps=3"))
    tuned = train(
        _cfg(root / "tuned", photo_dir, "seg.variant=binary", "run.max_steps=0", f"run.init_from={base.checkpoint}")
    )
    return base, tuned


def test_init_from_starts_a_new_run_from_another_runs_networks(runs):
    base, tuned = runs
    from safetensors.torch import load_file

    a, b = load_file(base.generator), load_file(tuned.generator)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert "D_seg_binary" in tuned.model.nets and "D_seg_binary" not in base.model.nets  # starts fresh
    assert tuned.global_step == 0


def test_init_from_a_missing_checkpoint_is_a_clear_error(tmp_path, photo_dir):
    with pytest.raises(FileNotFoundError, match="run.init_from"):
        train(_cfg(tmp_path / "x", photo_dir, "seg.variant=none", f"run.init_from={tmp_path / 'nope.pt'}"))


@pytest.fixture(scope="module")
def bundle(runs, tmp_path_factory) -> Path:
    from advseg_export.api import export_generator

    out = tmp_path_factory.mktemp("bundle") / "tiny.advseg"
    export_generator(runs[1].generator, out, precisions=("fp32",))
    return out


def test_export_records_the_training_scale(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["input"]["photo_short_side"] == 36


def test_pipeline_sketches_and_colours_at_the_trained_scale(bundle, photo_paths):
    from advseg_sdk.colorizer import Pipeline
    from advseg_sdk.imageio import read_image

    photo = read_image(photo_paths[0])
    auto = Pipeline(bundle, sketch="xdog")
    assert auto.work_short_side == 36
    h, w = photo.shape[:2]
    wh, ww = auto.work_size((h, w))
    assert min(wh, ww) == 36 and abs(wh / ww - h / w) < 0.05
    sketch, colour = auto.run(photo)
    assert sketch.shape == (h, w) and colour.shape == (h, w, 3)
    assert set(np.unique(sketch)) <= {0, 255}
    native = Pipeline(bundle, sketch="xdog", work_short_side=None)
    assert native.work_size((h, w)) == (h, w)
    with pytest.raises(ValueError, match="work_short_side"):
        Pipeline(bundle, sketch="xdog", work_short_side=3)


def test_colour_metrics_on_known_images():
    from advseg_eval.colour import colour_metrics, flat_baseline

    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    same = colour_metrics(photo, photo)
    assert same["ciede2000"] == pytest.approx(0, abs=1e-6) and same["ssim_l"] == pytest.approx(1, abs=1e-6)
    assert same["chroma_ratio"] == pytest.approx(1, abs=1e-6)
    grey = np.full_like(photo, 128)
    far = colour_metrics(photo, grey)
    assert far["ciede2000"] > 10 and far["chroma_ratio"] < 0.01
    sketch = np.full((40, 48), 255, np.uint8)
    sketch[10] = 0
    flat = flat_baseline(sketch, (10, 200, 30))
    assert (flat[10] == 0).all() and (flat[0, 0] == (10, 200, 30)).all()


@pytest.mark.real_assets
def test_advseg_eval_colour_cli(bundle, photo_dir, tmp_path, venv_bin):
    out = tmp_path / "eval"
    cmd = [
        str(venv_bin / "advseg-eval"),
        "colour",
        "--bundle",
        f"tiny={bundle}",
        "--bundle",
        "embedded=default",
        "--photos",
        str(photo_dir),
        "--limit",
        "3",
        "--sketch",
        "xdog",
        "--out",
        str(out),
        "--threads",
        "1",
        "--eval-size",
        "96",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 3
    assert set(summary["methods"]) == {"tiny", "embedded", "lines", "flat"}
    assert summary["methods"]["lines"]["chroma_ratio"] < 0.01  # black and white has no chroma
    assert "kid" in summary["set_scores"]["tiny"] and "fid" not in summary["set_scores"]["tiny"]
    assert set(summary["goals"]) == {"tiny", "embedded"}
    for name in ("report.md", "per_image.csv", "contact_sheet.png", "index.html"):
        assert (out / name).stat().st_size > 0
    assert len(list((out / "images").glob("*.png"))) == 3 * 4  # photo, sketch, two models
    again = subprocess.run(cmd, capture_output=True, text=True)  # never over an earlier result
    assert again.returncode == 2 and "not empty" in again.stderr
    nothing = subprocess.run(
        [str(venv_bin / "advseg-eval"), "colour", "--out", str(tmp_path / "e2")], capture_output=True, text=True
    )
    assert nothing.returncode == 2 and "--dataset" in nothing.stderr


@pytest.mark.real_assets
def test_building_a_real_segmenter_leaves_the_initial_weights_alone():
    """One seed, one start: a run with the seg loss begins from the baseline run's G and D."""
    from advseg_train.models import build_model

    def init(*extra: str):
        cfg = resolve_config(preset="demo", overrides=["model.ngf=4", "model.ndf=4", *extra])
        torch.manual_seed(0)
        return build_model(cfg)

    base, seg = init("seg.variant=none"), init("seg.variant=both", "seg.segmenter=deeplab-voc")
    for name in ("G", "D"):
        a, b = base.nets[name].state_dict(), seg.nets[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_colour_set_scores_give_fid_from_two_hundred_images():
    import numpy as np

    from advseg_eval.colour import FID_MIN_IMAGES, set_scores_of

    rng = np.random.default_rng(0)
    photos = rng.normal(size=(FID_MIN_IMAGES, 8))
    near, far = photos + rng.normal(scale=0.1, size=photos.shape), rng.normal(loc=2.0, size=photos.shape)
    few = set_scores_of(near[:10], photos[:10])
    assert "kid" in few and "fid" not in few
    close, distant = set_scores_of(near, photos), set_scores_of(far, photos)
    assert 0 <= close["fid"] < distant["fid"] and close["kid"] < distant["kid"]
