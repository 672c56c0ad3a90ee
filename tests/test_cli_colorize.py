"""`advseg colorize` and `advseg info`, run as real subprocesses of the installed console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_bundle import export_onnx, make_bundle, sketch_from_photo, tiny_resnet

ADVSEG = Path(sys.executable).parent / "advseg"


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ADVSEG), *map(str, args)], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    net = tiny_resnet(seed=5)
    parity = {
        "model.fp32.onnx": {
            "reference": "torch-fp32",
            "max_abs": 2.4e-06,
            "psnr": 112.3,
            "inputs": ["astronaut.png", "coffee.png"],
        }
    }
    provenance = {
        "source": "latest_net_G.pth",
        "source_checkpoint_sha256": "cd" * 32,
        "package_version": "0.1.0",
        "created": "2025-01-01T00:00:00+00:00",
        "training_config": {"mode": "cyclegan", "epochs": 1},
    }
    return make_bundle(
        root / "cli-demo.advseg",
        {"fp32": export_onnx(net, root / "g.onnx")},
        arch={"name": "resnet_6blocks", "args": {"ngf": 4, "norm": "instance"}},
        extra={"parity": parity, "provenance": provenance},
    )


@pytest.fixture
def sketch_dir(tmp_path: Path, photo_paths) -> Path:
    d = tmp_path / "sketches"
    d.mkdir()
    for p, size in zip(photo_paths[:2], (80, 64)):
        Image.fromarray(sketch_from_photo(p, long_side=size)).save(d / f"{p.stem}.png")
    return d


def _sizes(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: Image.open(p).size for p in sorted(folder.glob("*.png"))}


@pytest.mark.real_assets
def test_colorize_folder_then_skip_then_overwrite(bundle, sketch_dir, tmp_path):
    out = tmp_path / "out"
    r = run("colorize", sketch_dir, "-o", out, "--bundle", bundle, "-q")
    assert r.returncode == 0, r.stderr
    assert "wrote 2 image(s)" in r.stdout
    assert _sizes(out) == _sizes(sketch_dir)
    assert all(Image.open(p).mode == "RGB" for p in out.iterdir())
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    r = run("colorize", sketch_dir, "-o", out, "--bundle", bundle, "-q")
    assert r.returncode == 0 and "skipped 2 input(s)" in r.stderr
    r = run(
        "colorize",
        sketch_dir,
        "-o",
        out,
        "--bundle",
        bundle,
        "-q",
        "--overwrite",
        "--tile",
        "48",
        "--tile-overlap",
        "16",
        "--precision",
        "fp32",
    )
    assert r.returncode == 0, r.stderr
    assert _sizes(out) == _sizes(sketch_dir)


@pytest.mark.real_assets
def test_bad_file_does_not_stop_the_batch(bundle, sketch_dir, tmp_path):
    bad = sketch_dir / "broken.png"
    bad.write_text("not an image")
    out = tmp_path / "out"
    r = run("colorize", sketch_dir, "-o", out, "--bundle", bundle)
    assert r.returncode == 1
    assert "broken.png" in r.stderr and "not an image" in r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in sketch_dir.iterdir() if p != bad)


@pytest.mark.real_assets
def test_from_photo_end_to_end(bundle, photo_paths, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    src = photo_paths[0]
    Image.open(src).convert("RGB").resize((96, 72)).save(photos / "p.jpg")
    out = tmp_path / "out"
    r = run(
        "colorize",
        photos / "p.jpg",
        "-o",
        out,
        "--bundle",
        bundle,
        "--from-photo",
        "--sketch-method",
        "xdog",
        "--save-sketch",
        "-q",
    )
    assert r.returncode == 0, r.stderr
    assert Image.open(out / "p.png").size == (96, 72) and Image.open(out / "p.png").mode == "RGB"
    sk = np.asarray(Image.open(out / "p.sketch.png"))
    assert sk.shape == (72, 96) and set(np.unique(sk)) <= set(range(256)) and sk.min() < 128 < sk.max()


def test_default_bundle_embedded_then_cached_then_missing(bundle, tmp_path):
    img = tmp_path / "in.png"
    Image.fromarray(np.full((20, 28), 255, np.uint8)).save(img)
    home = tmp_path / "home"
    env = {"ADVSEG_HOME": str(home)}
    # Empty cache: the demo bundle shipped inside the package serves.
    r = run("colorize", img, "-o", tmp_path / "o1", "-q", env=env)
    assert r.returncode == 0, r.stderr
    embedded = np.asarray(Image.open(tmp_path / "o1" / "in.png"))
    assert embedded.shape == (20, 28, 3)
    # A bundle the user puts in the cache wins over the embedded one.
    shutil.copytree(bundle, home / "bundles" / "demo-sketch2color.advseg")
    r = run("colorize", img, "-o", tmp_path / "o2", "-q", env=env)
    assert r.returncode == 0, r.stderr
    cached = np.asarray(Image.open(tmp_path / "o2" / "in.png"))
    assert cached.shape == (20, 28, 3) and not np.array_equal(cached, embedded)
    # An explicit bundle that does not exist: a clear error naming the command that makes one.
    r = run("colorize", img, "-o", tmp_path / "o3", "--bundle", tmp_path / "nope.advseg", env=env)
    assert r.returncode == 1
    assert "bundle not found" in r.stderr and "nope.advseg" in r.stderr
    assert "advseg-export" in r.stderr and "Traceback" not in r.stderr


def test_usage_errors(bundle, tmp_path):
    r = run("colorize", tmp_path / "nothing-here.png", "-o", tmp_path / "o", "--bundle", bundle)
    assert r.returncode == 2 and "no such file or folder" in r.stderr and "Traceback" not in r.stderr
    img = tmp_path / "in.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(img)
    r = run("colorize", img, "-o", tmp_path / "o", "--bundle", bundle, "--save-sketch")
    assert r.returncode == 2 and "--save-sketch and --sketch-bundle need --from-photo" in r.stderr
    r = run("colorize", img, "-o", tmp_path / "o", "--bundle", bundle, "--precision", "int8")
    assert r.returncode == 1 and "no 'int8' artefact; available: fp32" in r.stderr


def test_info_prints_summary(bundle):
    r = run("info", bundle)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for needle in (
        "advseg-bundle/1",
        "task       sketch2color",
        "arch       resnet_6blocks",
        "ngf=4",
        "size multiple 4, min 8",
        "model.fp32.onnx",
        "opset 17",
        "max_abs 2.4e-06",
        "PSNR 112.3 dB",
        "vs torch-fp32, 2 inputs",
        "source_checkpoint_sha256",
        "latest_net_G.pth",
        "verified   sha256 of 1 artefact(s) OK",
    ):
        assert needle in out, needle
    from advseg_sdk.bundle import load_bundle

    sha = load_bundle(bundle).artefact("fp32").sha256
    assert sha[:16] in out
    r = run("info", bundle, "--json")
    assert r.returncode == 0 and '"format_version": "advseg-bundle/1"' in r.stdout


def test_info_on_broken_bundles(bundle, tmp_path):
    broken = shutil.copytree(bundle, tmp_path / "broken.advseg")
    f = broken / "model.fp32.onnx"
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    r = run("info", broken)
    assert r.returncode == 1 and "sha256 mismatch for model.fp32.onnx" in r.stderr and "Traceback" not in r.stderr
    assert run("info", broken, "--no-verify").returncode == 0
    r = run("info", tmp_path / "nope.advseg")
    assert r.returncode == 1 and "bundle not found" in r.stderr


@pytest.mark.real_assets
def test_output_folder_inside_input_folder_is_not_reread(bundle, sketch_dir):
    out = sketch_dir / "colour"
    for _ in range(2):
        r = run("colorize", sketch_dir, "-o", out, "--bundle", bundle, "-q", "--overwrite")
        assert r.returncode == 0, r.stderr
        assert "wrote 2 image(s)" in r.stdout
    assert len(list(out.iterdir())) == 2
