"""`advseg sketch` run as a real subprocess over real (good and broken) files, plus its Python API."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_imageio import make_zoo  # noqa: E402  (the same zoo of odd files)
from test_line_drawing import build_hed_bundle, has_2x2_black  # noqa: E402

from advseg_sdk.batch import collect_inputs
from advseg_sdk.cli_sketch import sketch_files

ADVSEG = Path(sys.executable).parent / "advseg"


def run_cli(*args, env_extra: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("ADVSEG_MAX_PIXELS", None)  # limits under test come from the arguments
    env.update(env_extra or {})
    return subprocess.run(
        [str(ADVSEG), "sketch", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env
    )


def leftovers(d: Path) -> list[Path]:
    return [p for p in d.rglob("*") if ".part" in p.name]


@pytest.fixture()
def zoo(tmp_path):
    good, bad = make_zoo(tmp_path / "in")
    return tmp_path / "in", good, bad


def test_batch_over_good_and_bad_files(zoo, tmp_path):
    src, good, bad = zoo
    out = tmp_path / "out"
    r = run_cli(src, "-o", out, "--method", "xdog")
    assert r.returncode == 1, r.stderr
    for name, p in bad.items():
        assert str(p) in r.stderr, (name, r.stderr)  # each bad file named
        assert not (out / f"{p.stem}.png").exists()
    assert "empty (0 bytes)" in r.stderr and "truncated" in r.stderr and "over the limit" in r.stderr
    assert "Traceback" not in r.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{p.stem}.png" for p in good.values())
    for p in good.values():
        sk = np.asarray(Image.open(out / f"{p.stem}.png"))
        src_hw = Image.open(p).size[::-1]
        expected_hw = src_hw[::-1] if p.name == "exif6.jpg" else src_hw  # written upright
        assert sk.dtype == np.uint8 and sk.ndim == 2 and sk.shape == expected_hw, p.name
    assert not leftovers(out)
    assert f"wrote {len(good)} sketch(es)" in r.stdout
    assert f"{len(bad)} input(s) failed" in r.stderr


def test_skip_existing_and_overwrite(tmp_path, photo_paths):
    src = tmp_path / "photos"
    (src / "nested").mkdir(parents=True)
    for i, p in enumerate(photo_paths[:2]):
        im = Image.open(p).convert("RGB")
        im.thumbnail((96, 96))
        im.save(src / ("nested" if i else ".") / f"photo{i}.jpg", quality=90)
    (src / "readme.txt").write_text("not an image, and not picked up from a folder")
    out = src / "sketches"  # inside the input folder: outputs must not become inputs
    r = run_cli(src, "-o", out, "--method", "canny")
    assert r.returncode == 0, r.stderr
    outputs = lambda: sorted(p for p in out.rglob("*") if p.is_file())  # noqa: E731
    assert [str(p.relative_to(out)) for p in outputs()] == ["nested/photo1.png", "photo0.png"]  # subfolders kept
    stamp = {p: p.stat().st_mtime_ns for p in outputs()}
    first = {p: p.read_bytes() for p in outputs()}

    r = run_cli(src, "-o", out, "--method", "canny")
    assert r.returncode == 0, r.stderr
    assert "skipped 2" in r.stderr and "wrote 0" in r.stdout
    assert {p: p.stat().st_mtime_ns for p in outputs()} == stamp

    r = run_cli(src, "-o", out, "--method", "canny", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert "wrote 2" in r.stdout
    assert {p: p.read_bytes() for p in outputs()} == first  # deterministic
    assert all(p.stat().st_mtime_ns >= stamp[p] for p in outputs())
    assert not leftovers(src)


def test_max_pixels_option(zoo, tmp_path):
    _, good, _ = zoo
    r = run_cli(good["gray"], good["one"], "-o", tmp_path / "o", "--method", "canny", "--max-pixels", "1000")
    assert r.returncode == 1
    assert str(good["gray"]) in r.stderr and "over the limit" in r.stderr and "--max-pixels" in r.stderr
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["one.png"]
    r = run_cli(good["gray"], "-o", tmp_path / "o2", "--method", "canny", env_extra={"ADVSEG_MAX_PIXELS": "1000"})
    assert r.returncode == 1 and "over the limit" in r.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        (["IN", "--method", "xdog"], ["-o"]),  # -o missing
        (["IN", "-o", "OUT", "--method", "pencil"], ["pencil"]),
        (["NOPE", "-o", "OUT"], ["no such file or folder"]),
        (["EMPTYDIR", "-o", "OUT"], ["no image files"]),
        (["IN", "-o", "OUT", "--size", "0"], ["--size"]),
        (["IN", "-o", "OUT", "--method", "xdog", "--bundle", "IN"], ["--bundle"]),
    ],
)
def test_usage_errors_exit_2(tmp_path, args, words):
    img = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(img)
    (tmp_path / "emptydir").mkdir()
    subst = {"IN": img, "OUT": tmp_path / "out", "NOPE": tmp_path / "missing.png", "EMPTYDIR": tmp_path / "emptydir"}
    r = run_cli(*[subst.get(a, a) for a in args])
    assert r.returncode == 2, (r.returncode, r.stderr)
    for w in words:
        assert w in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_missing_hed_bundle_names_the_export_command(tmp_path):
    img = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(img)
    home = tmp_path / "home"
    r = run_cli(img, "-o", tmp_path / "out", env_extra={"ADVSEG_HOME": str(home)})  # default method: hed
    assert r.returncode == 1
    assert f"advseg-export hed -o {home / 'bundles' / 'hed.advseg'}" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.real_assets
def test_hed_method_with_bundle(tmp_path, tmp_path_factory, photo_paths):
    bundle = build_hed_bundle(tmp_path_factory.mktemp("hedbundle"))
    src = tmp_path / "in"
    src.mkdir()
    im = Image.open(photo_paths[1]).convert("RGB")
    im.thumbnail((120, 120))
    im.save(src / "coffee.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 20)
    r = run_cli(src, "-o", tmp_path / "out", "--bundle", bundle, "--size", "64")
    assert r.returncode == 1, r.stderr
    assert str(src / "broken.jpg") in r.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["coffee.png"]
    sk = np.asarray(Image.open(tmp_path / "out" / "coffee.png"))
    assert sk.shape == im.size[::-1] and set(np.unique(sk)) <= {0, 255}
    assert 0.005 < (sk == 0).mean() < 0.25 and not has_2x2_black(sk)


# --------------------------------------------------------------------------- Python API


def test_sketch_files_api(zoo, tmp_path):
    src, good, bad = zoo
    err = io.StringIO()
    rep = sketch_files([src], tmp_path / "o", method="canny", progress=False, err=err)
    assert not rep.ok
    assert sorted(p.name for p, _ in rep.failed) == sorted(p.name for p in bad.values() if p.suffix in (".png", ".jpg"))
    assert len(rep.written) == len(good) and not rep.skipped
    assert all(str(p) in err.getvalue() for p, _ in rep.failed)
    rep2 = sketch_files([good["one"]], tmp_path / "o", method="canny", progress=False, err=err)
    assert rep2.ok and rep2.skipped == [good["one"]] and not rep2.written


def test_collect_inputs_same_stem(tmp_path):
    (tmp_path / "d").mkdir()
    for name in ("a.png", "a.jpg", "b.PNG", "c.txt"):
        Image.new("RGB", (4, 4)).save(tmp_path / "d" / name, format="PNG")
    files = collect_inputs([tmp_path / "d", tmp_path / "d" / "a.png"])
    assert [p.name for p in files] == ["a.jpg", "a.png", "b.PNG"]  # folder scan: image suffixes, no duplicates
    rep = sketch_files([tmp_path / "d"], tmp_path / "o", method="xdog", progress=False)
    assert sorted(p.name for p in rep.written) == ["b.png"]  # a.jpg and a.png would share a.png: refused
    assert sorted(p.name for p, _ in rep.failed) == ["a.jpg", "a.png"]
    with pytest.raises(FileNotFoundError, match="missing"):
        collect_inputs([tmp_path / "missing"])
