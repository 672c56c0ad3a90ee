"""`advseg sketch` / `advseg colorize` never lose a user's file and never do nothing silently.

Real CLIs as subprocesses on real image files (XDoG sketches need no weights; colouring uses the
embedded demo bundle).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ADVSEG = Path(sys.executable).parent / "advseg"


def advseg(*args, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ADVSEG_MAX_PIXELS"}
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([str(ADVSEG), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def photo(path: Path, seed: int = 0, size: tuple[int, int] = (40, 32), fmt: str | None = None) -> Path:
    """A small real-looking image (smooth gradients and a disc), so XDoG and HED find edges."""
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // w), (yy * 255 // h), np.full((h, w), 90)], -1).astype(np.uint8)
    cy, cx, r = rng.integers(8, h - 8), rng.integers(8, w - 8), 6
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = (250, 240, 20)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, format=fmt)
    return path


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def no_traceback(r: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in r.stderr, r.stderr


# --------------------------------------------------------------------------- never write over an input


@pytest.mark.parametrize("command", [["sketch", "--method", "xdog"], ["colorize"]])
def test_output_never_replaces_its_input(tmp_path: Path, command: list[str]):
    same = tmp_path / "same"
    photo(same / "a.png")
    before = snapshot(same)
    r = advseg(*command, same / "a.png", "-o", same, "--overwrite")
    no_traceback(r)
    assert r.returncode == 1
    assert "would replace the input" in r.stderr and str(same / "a.png") in r.stderr
    assert snapshot(same) == before
    assert "wrote 0" in r.stdout


def test_folder_into_itself_replaces_no_input(tmp_path: Path):
    same = tmp_path / "same"
    photo(same / "a.jpg", 1, fmt="JPEG")
    photo(same / "a.png", 2)
    photo(same / "b.jpg", 3, fmt="JPEG")
    before = snapshot(same)
    r = advseg("colorize", same, "-o", same, "--overwrite", "-q")
    no_traceback(r)
    assert r.returncode == 1
    after = snapshot(same)
    assert {k: after[k] for k in before} == before  # every input byte-identical
    assert set(after) - set(before) == {"b.png"}
    assert "wrote 1 image(s)" in r.stdout


# --------------------------------------------------------------------------- unique, stable mapping


def test_same_stem_inputs_are_refused_not_merged(tmp_path: Path):
    d, out = tmp_path / "d", tmp_path / "out"
    photo(d / "a.jpg", 1, fmt="JPEG")
    photo(d / "a.png", 2)
    photo(d / "a_1.png", 3)
    r = advseg("sketch", d, "-o", out, "--method", "xdog")
    no_traceback(r)
    assert r.returncode == 1
    assert sorted(p.name for p in out.iterdir()) == ["a_1.png"]
    assert "wrote 1 sketch(es)" in r.stdout
    assert "would both be written to" in r.stderr
    assert str(d / "a.jpg") in r.stderr and str(d / "a.png") in r.stderr


def test_mapping_is_stable_when_files_are_added(tmp_path: Path):
    d, out = tmp_path / "d", tmp_path / "out"
    photo(d / "b.png", 1)
    assert advseg("sketch", d, "-o", out, "--method", "xdog").returncode == 0
    first = (out / "b.png").read_bytes()
    photo(d / "a.png", 2)
    photo(d / "B.jpg", 3, fmt="JPEG")  # same name as b.png on a case-insensitive disk
    r = advseg("sketch", d, "-o", out, "--method", "xdog")
    assert r.returncode == 1 and "would both be written to" in r.stderr
    assert (out / "b.png").read_bytes() == first  # b.png's output never moved or changed
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]


def test_nested_folders_are_mirrored(tmp_path: Path):
    d, out = tmp_path / "d", tmp_path / "out"
    photo(d / "2019" / "IMG_0001.jpg", 1, fmt="JPEG")
    photo(d / "2020" / "IMG_0001.jpg", 2, fmt="JPEG")
    photo(d / "top.png", 3)
    r = advseg("sketch", d, "-o", out, "--method", "xdog")
    assert r.returncode == 0, r.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == [
        "2019/IMG_0001.png",
        "2020/IMG_0001.png",
        "top.png",
    ]
    assert "wrote 3" in r.stdout


def test_saved_sketch_names_cannot_collide(tmp_path: Path):
    d, out = tmp_path / "d", tmp_path / "out"
    photo(d / "a.jpg", 1, fmt="JPEG")
    photo(d / "a.sketch.jpg", 2, fmt="JPEG")  # its colour output is a.sketch.png: a's saved sketch
    photo(d / "c.jpg", 3, fmt="JPEG")
    r = advseg("colorize", d, "-o", out, "--from-photo", "--sketch-method", "xdog", "--save-sketch", "-q")
    no_traceback(r)
    assert r.returncode == 1
    assert "would both be written to" in r.stderr and "a.sketch.png" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["c.png", "c.sketch.png"]


# --------------------------------------------------------------------------- temporaries


def test_part_files_are_ignored_and_stale_ones_cleaned(tmp_path: Path):
    d, out = tmp_path / "d", tmp_path / "out"
    photo(d / "a.png", 1)
    photo(d / ".a.png.k2j4h5g6.part.png", 2)  # what a killed run leaves beside an output
    out.mkdir()
    stale = photo(out / ".b.png.abcd1234.part.png", 3)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = photo(out / ".c.png.wxyz9876.part.png", 4)  # another run may be writing it now
    r = advseg("sketch", d, "-o", out, "--method", "xdog")
    assert r.returncode == 0, r.stderr
    assert "wrote 1 sketch(es)" in r.stdout
    assert not stale.exists() and fresh.exists()
    assert sorted(p.name for p in out.iterdir()) == [".c.png.wxyz9876.part.png", "a.png"]
    assert (d / ".a.png.k2j4h5g6.part.png").exists()  # inputs' folders are never cleaned


# --------------------------------------------------------------------------- nothing done silently


@pytest.mark.parametrize("command", [["sketch", "--method", "xdog"], ["colorize", "-q"]])
def test_input_folder_inside_output_folder(tmp_path: Path, command: list[str]):
    par = tmp_path / "par"
    photo(par / "in" / "a.png")
    r = advseg(*command, par / "in", "-o", par)
    assert r.returncode == 0, r.stderr
    assert (par / "a.png").is_file()
    assert "wrote 1" in r.stdout


@pytest.mark.parametrize("command", [["sketch", "--method", "xdog"], ["colorize"]])
def test_empty_input_folder_is_an_error(tmp_path: Path, command: list[str]):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    r = advseg(*command, tmp_path / "empty", "-o", tmp_path / "out")
    no_traceback(r)
    assert r.returncode == 2 and "no image files" in r.stderr


@pytest.mark.parametrize("command", [["sketch", "--method", "xdog"], ["colorize"]])
@pytest.mark.parametrize("where", ["under-a-file", "unwritable"])
def test_output_dir_that_cannot_be_created_is_one_line(tmp_path: Path, command: list[str], where: str):
    src = photo(tmp_path / "a.png")
    if where == "under-a-file":
        (tmp_path / "file.txt").write_text("x")
        out = tmp_path / "file.txt" / "out"
    else:
        if os.geteuid() == 0:
            out = Path("/proc/advseg-out")  # root may write anywhere else
        else:
            (tmp_path / "ro").mkdir(mode=0o500)
            out = tmp_path / "ro" / "out"
    r = advseg(*command, src, "-o", out)
    no_traceback(r)
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot create the output folder"), r.stderr
