"""advseg-train as processes: the CLI, SIGKILL during a checkpoint write, DDP with torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from advseg_train.config import resolve_config
from advseg_train.train_state import load_checkpoint
from advseg_train.trainer import train

torch.set_num_threads(1)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def aligned_root(tmp_path_factory, photo_paths) -> Path:
    """Real photos at 48x40 with xdog sketches, side by side (aligned, ``train/``)."""
    from advseg_sdk.line_drawing import xdog

    root = tmp_path_factory.mktemp("aligned")
    (root / "train").mkdir()
    for i, p in enumerate(photo_paths[:4]):
        photo = np.asarray(Image.open(p).convert("RGB").resize((48, 40), Image.BICUBIC))
        sketch = np.repeat(xdog(photo)[:, :, None], 3, axis=2)
        Image.fromarray(np.concatenate([sketch, photo], axis=1)).save(root / "train" / f"{i}.png")
    return root


TINY_YAML = {
    "model": {
        "kind": "pix2pix",
        "netG": "resnet_6blocks",
        "ngf": 8,
        "ndf": 4,
        "norm": "batch",
        "use_dropout": True,
        "gan_mode": "vanilla",
    },
    "loss": {"pool_size": 0},
    "seg": {"variant": "both", "segmenter": "tiny", "segmenter_kwargs": {"width": 4}},
    "data": {"mode": "aligned", "load_size": 36, "crop_size": 32},
    "optim": {"niter": 1, "niter_decay": 1},
    "run": {"log_every": 1, "sample_every": 2, "num_samples": 2, "checkpoint_every": 2, "threads": 1},
}


def _cli() -> str:
    exe = Path(sys.executable).parent / "advseg-train"
    assert exe.is_file(), f"console script missing: {exe} (pip install -e .)"
    return str(exe)


def test_cli_trains_from_yaml_with_overrides(tmp_path, aligned_root):
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(TINY_YAML))
    run = tmp_path / "run"
    proc = subprocess.run(
        [
            _cli(),
            "--config",
            str(cfg_file),
            "--set",
            "model.ngf=4",
            "--set",
            "run.progress=false",
            "--data.root",
            str(aligned_root),
            "--out",
            str(run),
            "--max-steps",
            "3",
            "--seg-grad",
            "soft",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "generator.safetensors" in proc.stdout

    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["model"]["ngf"] == 4 and resolved["model"]["norm"] == "batch"  # override + YAML
    assert resolved["data"]["root"] == str(aligned_root) and resolved["run"]["max_steps"] == 3

    ckpt = load_checkpoint(run / "checkpoints" / "latest.pt")  # weights_only load
    assert ckpt["position"]["global_step"] == 3

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for term in ("G_GAN", "G_L1", "G_seg_binary", "G_seg_multi", "G_total", "D", "D_seg_binary", "D_seg_multi"):
        assert f"loss/{term}" in tags, (term, sorted(tags))
    assert [e.step for e in events.Scalars("loss/G_seg_multi")] == [1, 2, 3]

    grid = np.asarray(Image.open(run / "samples" / "step_0000002.png"))
    assert grid.shape == (2 * 32, 5 * 32, 3)  # 2 samples x (sketch | fake | real | seg real | seg fake)

    from advseg_train.networks import load_generator

    gen = load_generator(run / "generator.safetensors")
    same = load_generator(run / "checkpoints" / "latest.pt")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(gen(x), same(x))
    assert gen.config.arch == "resnet_6blocks" and gen.config.ngf == 4
    # The resolved training config travels with the weights (advseg-export records it as provenance).
    from advseg_train.checkpoint_formats import read_metadata

    stored = json.loads(read_metadata(run / "generator.safetensors")["training_config"])
    assert stored["model"]["ngf"] == 4 and stored["model"]["netG"] == "resnet_6blocks"

    bad = subprocess.run([_cli(), "--set", "model.ngff=1"], capture_output=True, text=True, env=ENV, timeout=120)
    assert bad.returncode == 2 and "unknown config key 'model.ngff'" in bad.stderr


def test_sigkill_during_checkpoint_write_leaves_last_good_checkpoint(tmp_path, aligned_root):
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(TINY_YAML))
    run = tmp_path / "run"
    ckpts = run / "checkpoints"
    proc = subprocess.Popen(
        [
            _cli(),
            "--config",
            str(cfg_file),
            "--data.root",
            str(aligned_root),
            "--out",
            str(run),
            "--set",
            "model.ngf=4",
            "--set",
            "run.checkpoint_every=1",
            "--set",
            "run.sample_every=0",
            "--set",
            "debug.save_sleep_s=1.5",
            "--set",
            "run.progress=false",
            "--max-steps",
            "40",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # wait until a *second* write is half-way
            parts = list(ckpts.glob(".latest.pt.*.part*")) if ckpts.is_dir() else []
            if (ckpts / "latest.pt").is_file() and any(p.stat().st_size > 0 for p in parts):
                break
            assert proc.poll() is None, "training ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint write in progress was observed")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert list(ckpts.glob(".latest.pt.*.part*")), "the torn temporary file should still be there"

    state = load_checkpoint(ckpts / "latest.pt")
    step = state["position"]["global_step"]
    assert 1 <= step < 40
    cfg = resolve_config(
        cfg_file,
        overrides=[
            f"data.root={aligned_root}",
            f"run.out={run}",
            "model.ngf=4",
            "run.progress=false",
            "run.resume=true",
            "run.sample_every=0",
            f"run.max_steps={step + 2}",
        ],
    )
    result = train(cfg)
    assert result.resumed_from == step and result.global_step == step + 2
    assert not list(ckpts.glob(".latest.pt.*.part*"))  # stale temp files cleaned up


WORKER = """
import json, os, sys, torch
from advseg_train.config import resolve_config
from advseg_train.trainer import train
out, data = sys.argv[1], sys.argv[2]
cfg = resolve_config(overrides=[
    "model.kind=pix2pix", "model.netG=resnet_6blocks", "model.ngf=4", "model.ndf=4", "model.norm=batch",
    "data.mode=aligned", f"data.root={data}", "data.load_size=36", "data.crop_size=32",
    "seg.variant=binary", "seg.segmenter=tiny", "seg.segmenter_kwargs={width: 4}",
    "optim.niter=1", "optim.niter_decay=1", f"run.out={out}", "run.log_every=1", "run.checkpoint_every=2",
    "run.sample_every=0", "run.progress=false", "run.threads=1", "run.max_steps=3"])
res = train(cfg)
rank = int(os.environ["RANK"])
torch.save({n: dict(net.named_parameters()) for n, net in res.model.nets.items()}, f"{out}/params_rank{rank}.pt")
syncs = {n: getattr(c, "forward_sync_buffers", getattr(c, "broadcast_buffers", None))
         for n, c in res.model._call.items()}
json.dump({"rank": rank, "step": res.global_step, "buffer_sync": syncs,
           "checkpoint": str(res.checkpoint) if res.checkpoint else None,
           "generator": str(res.generator) if res.generator else None, "losses": res.history[-1]},
          open(f"{out}/result_rank{rank}.json", "w"))
"""


@pytest.mark.slow
def test_ddp_two_cpu_processes_gloo(tmp_path, aligned_root):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(worker),
            str(out),
            str(aligned_root),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    r0, r1 = (json.loads((out / f"result_rank{r}.json").read_text()) for r in (0, 1))
    assert r0["step"] == r1["step"] == 3  # BatchNorm D run twice before one backward: no in-place error
    # no per-forward buffer broadcast (it would modify BatchNorm statistics saved for backward)
    assert set(r0["buffer_sync"].values()) == set(r1["buffer_sync"].values()) == {False}
    assert r0["checkpoint"] and r1["checkpoint"] is None and r1["generator"] is None  # rank 0 writes
    assert r0["losses"]["G_L1"] != r1["losses"]["G_L1"]  # each rank trained on its own shard
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest.pt"]
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["position"]["global_step"] == 3
    p0, p1 = (torch.load(out / f"params_rank{r}.pt", weights_only=True) for r in (0, 1))
    for name in p0:
        for k, v in p0[name].items():
            assert torch.equal(v, p1[name][k]), (name, k)  # gradients all-reduced: same weights
    assert proc.stdout.count("finished at step 3") + proc.stderr.count("finished at step 3") == 1
