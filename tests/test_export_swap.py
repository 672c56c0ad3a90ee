"""advseg-export replaces a bundle so that the path always holds a complete bundle, cleans up
after killed exports, and survives concurrent exports to one path."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_bundle import _fake_bundle

from advseg_export.api import _replace_dir, clean_stale_temporaries
from advseg_sdk.bundle import load_bundle
from advseg_train.networks import GeneratorConfig, build_generator, save_generator

EXPORT = Path(sys.executable).parent / "advseg-export"


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = build_generator(GeneratorConfig(arch="resnet_6blocks", ngf=4, norm="instance"))
    path = tmp_path_factory.mktemp("ckpt") / "g.safetensors"
    save_generator(net, path)
    return path


def _export(ckpt: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [str(EXPORT), str(ckpt), "-o", str(out), "--calib-count", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


_WATCH: dict[str, object] = {}


def _audit(event: str, args: tuple) -> None:
    """Before every rename/remove the process makes, note whether the watched path is a bundle."""
    out = _WATCH.get("out")
    if out is not None and event in ("os.rename", "os.replace", "os.rmdir", "shutil.rmtree", "os.remove"):
        _WATCH.setdefault("states", []).append((event, (out / "manifest.json").is_file()))  # type: ignore[union-attr]


sys.addaudithook(_audit)


def test_swap_never_leaves_the_path_without_a_bundle(tmp_path: Path):
    out = _fake_bundle(tmp_path, "b.advseg")
    template = _fake_bundle(tmp_path / "src", "new.advseg")
    _WATCH.clear()
    _WATCH["out"] = out
    try:
        for i in range(20):
            new = tmp_path / f".b.advseg.tmp-{i}"
            shutil.copytree(template, new)
            _replace_dir(new, out)
            assert (out / "manifest.json").is_file()
    finally:
        states = _WATCH.pop("states", [])
        _WATCH.clear()
    gaps = [event for event, present in states if not present]
    assert not gaps, f"{out} held no bundle at {len(gaps)} step(s) of the swap: {gaps[:3]}"
    load_bundle(out)
    assert _leftovers(tmp_path, "b.advseg") == []


def test_bundle_moved_aside_by_a_killed_swap_is_put_back(tmp_path: Path):
    """What a kill between 'move the old bundle aside' and 'move the new one in' leaves."""
    old = _fake_bundle(tmp_path / ".b.advseg.old-k1ll3d00", "bundle")
    partial = tmp_path / ".b.advseg.tmp-k1ll3d11"
    partial.mkdir()
    (partial / "model.fp32.onnx").write_bytes(b"half")
    manifest = (old / "manifest.json").read_bytes()
    removed = clean_stale_temporaries(tmp_path / "b.advseg")
    assert (tmp_path / "b.advseg" / "manifest.json").read_bytes() == manifest
    load_bundle(tmp_path / "b.advseg")
    assert _leftovers(tmp_path, "b.advseg") == [] and len(removed) == 2


def test_stale_temporaries_are_cleaned_but_a_live_export_is_left_alone(tiny_ckpt: Path, tmp_path: Path):
    out = tmp_path / "b.advseg"
    dead = tmp_path / ".b.advseg.tmp-d3ad0001"
    dead.mkdir()
    (dead / "model.fp32.onnx").write_bytes(b"junk")
    live = tmp_path / ".b.advseg.tmp-l1ve0001"
    live.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import fcntl, os, sys, time\n"
                f"fd = os.open({str(live)!r}, os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX)\n"
                "print('locked', flush=True); time.sleep(120)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        p = _export(tiny_ckpt, out)
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert not dead.exists() and live.exists()
        load_bundle(out)
    finally:
        holder.kill()
        holder.wait()


def test_killed_export_leaves_nothing_after_the_next_one(tiny_ckpt: Path, tmp_path: Path):
    out = tmp_path / "b.advseg"
    p = _export(tiny_ckpt, out)
    deadline = time.monotonic() + 120
    while not _leftovers(tmp_path, "b.advseg") and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert _leftovers(tmp_path, "b.advseg"), "the export finished before it could be killed"
    q = _export(tiny_ckpt, out)
    _, err = q.communicate(timeout=300)
    assert q.returncode == 0, err
    load_bundle(out)
    assert _leftovers(tmp_path, "b.advseg") == []


def test_concurrent_exports_to_one_path(tiny_ckpt: Path, tmp_path: Path):
    out = tmp_path / "b.advseg"
    procs = [_export(tiny_ckpt, out) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    load_bundle(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.advseg"]
