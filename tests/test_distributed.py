"""advseg_sdk.distributed: `advseg colorize` on Ray Data, on a real local Ray instance (2 CPUs).

Real photos (thumbnails of the cached ones) go through actors holding a real Pipeline on ONNX
Runtime; the outputs must be the single-process `advseg colorize` outputs pixel for pixel, bad
files must be rows of the result, a killed actor must be restarted and its batch retried, and a
re-run must only do what is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")

from advseg_sdk.distributed import CRASH_ONCE_ENV, colorize_dataset, colorize_folder  # noqa: E402

ADVSEG = Path(sys.executable).parent / "advseg"
# photos -> XDoG sketches -> colour: the Pipeline path with sketch sidecars, no weights to load
MODE = ("--from-photo", "--sketch-method", "xdog", "--save-sketch")
KW = dict(from_photo=True, sketch_method="xdog", save_sketch=True)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", CRASH_ONCE_ENV)}


def advseg(*args: object, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([str(ADVSEG), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=_env())


def images(folder: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(folder)): np.asarray(Image.open(p)) for p in sorted(folder.rglob("*.png"))}


def assert_same_images(out: Path, ref: Path) -> None:
    got, want = images(out), images(ref)
    assert sorted(got) == sorted(want)
    for name, arr in want.items():
        assert np.array_equal(got[name], arr), name
    assert not [p for p in out.rglob(".*")], "temporaries left behind"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, photo_paths) -> Path:
    """Every cached photo as a small thumbnail (two in a subfolder), one broken file, and two
    inputs that would share an output name."""
    d = tmp_path_factory.mktemp("dist") / "in"
    (d / "sub").mkdir(parents=True)
    for i, p in enumerate(photo_paths):
        im = Image.open(p).convert("RGB")
        im.thumbnail((64, 64))
        im.save((d / "sub" if i < 2 else d) / f"{p.stem}.png")
    (d / "broken.png").write_text("not an image")
    Image.open(photo_paths[0]).convert("RGB").resize((40, 30)).save(d / "twin.jpg")
    Image.open(photo_paths[1]).convert("RGB").resize((40, 30)).save(d / "twin.png")
    assert len(list(d.rglob("*"))) >= 35
    return d


@pytest.fixture(scope="module")
def reference(inputs) -> Path:
    """What single-process `advseg colorize` makes of the same inputs."""
    out = inputs.parent / "ref"
    r = advseg("colorize", inputs, "-o", out, *MODE, "-q")
    assert r.returncode == 1 and "broken.png" in r.stderr, r.stderr
    return out


@pytest.fixture(scope="module")
def cluster() -> str:
    """A local Ray instance with 2 CPUs; its address lets a CLI subprocess join it."""
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, object_store_memory=256 << 20, logging_level="WARNING"
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _failed_names(report) -> list[str]:
    return sorted(Path(f).name for f, _ in report.failed)


def test_importing_the_sdk_does_not_import_ray():
    code = (
        "import sys, advseg_sdk, advseg_sdk.cli, advseg_sdk.cli_colorize, advseg_sdk.distributed\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'torch'))\n"
        "assert not bad, bad\nprint('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


@pytest.mark.real_assets
def test_killed_actor_is_retried_and_outputs_match_single_process(cluster, inputs, reference, tmp_path, monkeypatch):
    out, marker = tmp_path / "out", tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ONCE_ENV, str(marker))  # the first actor to take a batch dies on it, once
    report = colorize_folder([inputs], out, actors=2, batch_size=4, progress=False, **KW)
    assert marker.exists(), "no actor was killed"
    assert_same_images(out, reference)  # pixel for pixel; nothing missing, nothing extra
    ins = [r["input"] for r in report.rows]
    assert len(ins) == len(set(ins)) == len(report.written) + 1  # one row per input: no duplicates
    assert len(report.written) == len(images(reference)) // 2 and report.actors == 2  # colour + sketch each
    assert _failed_names(report) == ["broken.png", "twin.jpg", "twin.png"]
    broken = [r for r in report.rows if r["status"] == "failed"]  # the result table
    assert [Path(r["input"]).name for r in broken] == ["broken.png"]
    assert "not an image" in broken[0]["error"] and str(inputs / "broken.png") in broken[0]["error"]
    assert report.images_per_s > 0 and "images/s" in report.summary()


def _partly_done(reference: Path, out: Path, missing: int = 3) -> list[Path]:
    """``out`` as a killed run leaves it: the reference outputs but ``missing`` colour images, and
    an old temporary; returns the outputs that are missing."""
    shutil.copytree(reference, out)
    gone = sorted(out.glob("*[!h].png"))[:missing]  # colour images, not <stem>.sketch.png
    for p in gone:
        p.unlink()
    stale = out / ".a.png.abcd1234.part.png"
    stale.write_bytes(b"half")
    os.utime(stale, (1, 1))
    return gone


@pytest.mark.real_assets
def test_cli_joins_a_cluster_by_address_and_resumes(cluster, inputs, reference, tmp_path):
    out = tmp_path / "out"
    gone = _partly_done(reference, out)
    redone = {p.with_name(p.stem + ".sketch.png") for p in gone}  # rewritten with their colour image
    before = {p: p.stat().st_mtime_ns for p in out.rglob("[!.]*.png") if p not in redone}
    r = advseg("colorize", inputs, "-o", out, *MODE, "--ray", "--ray-address", cluster, "--actors", "1", "-q")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "broken.png" in r.stderr and "would both be written to" in r.stderr
    assert f"skipped {len(images(reference)) // 2 - 3} input(s)" in r.stderr  # colour + sketch per input
    assert "wrote 3 image(s)" in r.stdout and "images/s" in r.stdout and "with 1 actor(s)" in r.stdout
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # finished outputs untouched
    assert_same_images(out, reference)  # the stale temporary is gone too


@pytest.mark.real_assets
@pytest.mark.slow
def test_cli_starts_a_local_ray_instance(inputs, reference, tmp_path):
    out = tmp_path / "out"
    gone = _partly_done(reference, out)
    r = advseg("colorize", inputs, "-o", out, *MODE, "--ray", "-q")  # actors: one per CPU, capped by the work
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"wrote {len(gone)} image(s)" in r.stdout and "with 1 actor(s)" in r.stdout
    assert_same_images(out, reference)


def test_cli_ray_options_need_ray(tmp_path, inputs):
    r = advseg("colorize", inputs, "-o", tmp_path / "o", "--actors", "2")
    assert r.returncode == 2 and "need --ray" in r.stderr


@pytest.mark.real_assets
def test_dataset_of_files_returns_arrays_and_error_rows(cluster, inputs):
    from advseg_sdk import Colorizer
    from advseg_sdk.imageio import read_image

    files = sorted(inputs.glob("*.png"))[:5] + [inputs / "broken.png"]
    ds = ray.data.from_items([{"path": str(f)} for f in files])
    rows = {r["path"]: r for r in colorize_dataset(ds, actors=1).take_all()}
    single = Colorizer()
    for f in files[:-1]:
        assert rows[str(f)]["error"] == ""
        assert np.array_equal(rows[str(f)]["color"], single.colorize(read_image(f)))
    assert "not an image" in rows[str(files[-1])]["error"]
    assert rows[str(files[-1])]["color"].size == 0
