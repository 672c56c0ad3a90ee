"""Datasets built from reviewed member lists: exactly the listed images, licences per file, the
fixed split, black-on-white line art, and a clear failure when a listed image is missing."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advseg_sdk import dataset_catalog as cat
from advseg_sdk import datasets as ds
from advseg_sdk.assets import AssetError

REVIEWED = ("wallpapers", "people", "objects", "lineart")
FILES_JSON = Path(ds.__file__).parent / "data" / "dataset_files.json"


def _png(mode: str, size: tuple[int, int], colour: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, format="PNG")
    return out.getvalue()


def _outline_on_transparency(size: int = 240) -> bytes:
    """A black square outline on a fully transparent background, as clip art ships."""
    a = np.zeros((size, size, 4), np.uint8)
    a[40:-40, 40:44, 3] = a[40:-40, -44:-40, 3] = a[40:44, 40:-40, 3] = a[-44:-40, 40:-40, 3] = 255
    out = io.BytesIO()
    Image.fromarray(a, "RGBA").save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def fake_package(monkeypatch, tmp_path):
    """Builds run against an in-memory package (no download) in an empty cache."""
    monkeypatch.setenv("ADVSEG_HOME", str(tmp_path / "home"))
    files: dict[str, bytes] = {}
    monkeypatch.setattr(ds, "_members", lambda src, work: files)
    monkeypatch.setattr(ds, "_copyright_rules", lambda src, work: [])
    return files


def _spec(required: tuple[str, ...], lineart: bool = False, name: str = "reviewed-test") -> ds.DatasetSpec:
    src = cat.Source(
        kind="deb",
        spec="pkg",
        sha256="0" * 64,
        select=cat._listed(required, "p/", "pkg"),
        required=required,
        licence="CC0-1.0",
    )
    return ds.DatasetSpec(name, "test", (src,), lineart=lineart)


# --------------------------------------------------------------------------- the lists and selectors


def test_reviewed_lists_are_unique_and_dropped_members_are_out():
    doc = json.loads(FILES_JSON.read_text())
    for name in REVIEWED:
        members = [m for ms in doc[name].values() for m in ms]
        assert members and len(members) == len(set(members)), name
        assert not set(members) & set(doc["dropped"].get(name, {})), name
        spec = ds.DATASETS[name]
        assert sum(len(s.required) for s in spec.sources) == len(members)
        names = [s.select(m) for s in spec.sources for m in s.required]
        assert None not in names and len(set(names)) == len(names), name  # one file name per member


def test_selector_takes_exactly_the_listed_members():
    select = cat._listed(("p/food/fruit/kiwi.png", "p/Path/contents/images/2560x1600.jpg"), "p/", "t")
    assert select("p/food/fruit/kiwi.png") == "t-food-fruit-kiwi"
    assert select("p/Path/contents/images/2560x1600.jpg") == "t-Path"
    assert select("p/food/fruit/apple.png") is None
    assert select("p/food/fruit/kiwi.txt") is None


def test_existing_datasets_take_no_reviewed_list():
    for name in ("landscapes", "animals", "interiors", "illustrations"):
        assert all(not s.required for s in ds.DATASETS[name].sources), name


# --------------------------------------------------------------------------- builds (no download)


def test_a_listed_member_missing_from_the_package_fails_the_build(fake_package):
    fake_package["p/a.png"] = _png("RGB", (300, 300), (10, 200, 30))
    spec = _spec(("p/a.png", "p/gone.png"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(ds.DATASETS, spec.name, spec)
        with pytest.raises(AssetError, match=r"reviewed-test: 1 reviewed member\(s\) missing .*p/gone\.png"):
            ds.fetch_dataset(spec.name)
    assert not spec.root.exists()  # nothing half-built is left behind


def test_a_listed_member_that_is_not_a_usable_image_fails_the_build(fake_package):
    fake_package["p/icon.png"] = _png("RGB", (32, 32), (0, 0, 0))  # under min_side
    spec = _spec(("p/icon.png",))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(ds.DATASETS, spec.name, spec)
        with pytest.raises(AssetError, match="p/icon.png .* not a usable image"):
            ds.fetch_dataset(spec.name)


def test_line_art_is_flattened_to_black_lines_on_white_greyscale(fake_package):
    fake_package["p/square.png"] = _outline_on_transparency()
    fake_package["p/unlisted.png"] = _outline_on_transparency()
    spec = _spec(("p/square.png",), lineart=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(ds.DATASETS, spec.name, spec)
        root = ds.fetch_dataset(spec.name)
        (rec,) = ds.dataset_records(spec.name)
    assert rec["file"] == "pkg-square.png" and rec["licence"] == "CC0-1.0"
    with Image.open(root / rec["split"] / rec["file"]) as im:
        assert im.mode == "L"
        a = np.asarray(im)
    assert a[0, 0] == 255 and a[120, 120] == 255 and a[120, 41] == 0  # white paper, black line


# --------------------------------------------------------------------------- a real build


@pytest.fixture(scope="module")
def lineart() -> Path:
    """The real line-art set, built once into the cache (openclipart-png and tuxpaint-data)."""
    return ds.fetch_dataset("lineart")


@pytest.mark.real_assets
@pytest.mark.slow
def test_real_lineart_holds_the_listed_drawings_with_licences(lineart):
    records = json.loads((lineart / "dataset.json").read_text())["images"]
    listed = {m for ms in cat.reviewed_members("lineart").values() for m in ms}
    assert {r["member"] for r in records} == listed
    assert {r["split"] for r in records} == {"train", "test"}
    for r in records:
        path = lineart / r["split"] / r["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == r["sha256"]
        assert r["split"] == ds.split_of(r["file"])
        with Image.open(path) as im:
            a = np.asarray(im)
            assert im.mode == "L" and a.dtype == np.uint8
        assert np.median(a) == 255 and a.min() < 60  # white paper, dark lines
    by_origin = {r["origin"]: r["licence"] for r in records}
    assert by_origin["Debian package openclipart-png"].startswith("public-domain")
    assert by_origin["Debian package tuxpaint-data"] == "GPL-2+"  # from its DEP-5 copyright file


@pytest.mark.real_assets
@pytest.mark.slow
def test_real_rebuild_gives_the_same_files_and_split(lineart, monkeypatch, tmp_path):
    monkeypatch.setenv("ADVSEG_HOME", str(tmp_path))
    again = ds.fetch_dataset("lineart")
    assert again != lineart
    first = json.loads((lineart / "dataset.json").read_text())["images"]
    second = json.loads((again / "dataset.json").read_text())["images"]
    assert first == second  # names, splits, bytes and licences


@pytest.mark.real_assets
def test_real_package_without_a_listed_member_fails(monkeypatch, tmp_path):
    monkeypatch.setenv("ADVSEG_HOME", str(tmp_path))
    real = ds.DATASETS["lineart"].sources[1]  # tuxpaint-data: the smallest package
    bogus = "usr/share/tuxpaint/starters/no-such-drawing.png"
    src = dataclasses.replace(real, required=(*real.required, bogus))
    spec = dataclasses.replace(ds.DATASETS["lineart"], name="lineart-missing", sources=(src,))
    monkeypatch.setitem(ds.DATASETS, spec.name, spec)
    with pytest.raises(AssetError, match="missing from Debian package tuxpaint-data .*no-such-drawing.png"):
        ds.fetch_dataset(spec.name)


@pytest.mark.real_assets
def test_advseg_data_list_shows_the_reviewed_datasets(lineart, venv_bin):
    out = subprocess.run([str(venv_bin / "advseg"), "data", "list"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name in REVIEWED:
        assert f"\n{name} " in "\n" + out.stdout
    line = next(x for x in out.stdout.splitlines() if x.startswith("lineart "))
    n = {s: len(ds.dataset_records("lineart", s)) for s in ds.SPLITS}
    assert f"train={n['train']} test={n['test']}" in line
