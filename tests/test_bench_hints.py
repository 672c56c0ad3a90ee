"""advseg-bench on a generator that takes colour hints: the bundle's graph reads the sketch's
channels and then the hints' (``input.hints``), and the benchmark feeds all of them (the hint
planes zero: automatic colouring) on ONNX Runtime and torch, and counts their cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from advseg_bench.models import generator_input, parse_models
from advseg_bench.plan import Job
from advseg_bench.runner import BenchRunConfig, _run_job


@pytest.fixture(scope="module")
def hinted_bundle(tmp_path_factory) -> Path:
    """resnet_6blocks, ngf 4, hint_nc 4 (7 input channels) exported with fp32 only."""
    import torch

    from advseg_export.api import export_generator
    from advseg_train.networks import build_generator, save_generator

    torch.manual_seed(5)
    net = build_generator(dict(arch="resnet_6blocks", ngf=4, hint_nc=4))
    root = tmp_path_factory.mktemp("bench_hints")
    ckpt = root / "g.safetensors"
    save_generator(net, ckpt)
    return export_generator(ckpt, root / "hinted.advseg", precisions=("fp32",), allow_degraded=True)


def test_generator_input_appends_zero_hint_planes():
    plain, hinted = generator_input(2, 16), generator_input(2, 16, hint_channels=4)
    assert plain.shape == (2, 3, 16, 16) and hinted.shape == (2, 7, 16, 16)
    assert (hinted[:, :3] == plain).all() and not hinted[:, 3:].any()


def _measure(spec, backend: str) -> list[dict]:
    from tqdm import tqdm

    job = Job(spec, backend, "fp32", "cpu", combos=[{"batch": 1, "size": 32}, {"batch": 2, "size": 32}])
    cfg = BenchRunConfig(
        models=[spec], backends=[backend], precisions=["fp32"], batches=[1, 2], sizes=[32], threads=1, progress=False
    )
    with tqdm(total=2, disable=True) as bar:
        return _run_job(job, cfg, bar, lambda _m: None)


@pytest.mark.parametrize("backend", ["ort-cpu", "torch-eager"])
def test_a_hinted_bundle_is_measured_with_all_its_input_channels(hinted_bundle: Path, backend: str):
    (spec,) = parse_models(f"bundle:{hinted_bundle}")
    assert spec.input_channels == 7
    if backend.startswith("torch"):
        assert spec.checkpoint is not None  # the bundle's source checkpoint beside it
    results = _measure(spec, backend)
    assert [(r["batch"], r["status"], r["reason"]) for r in results] == [(1, "ok", None), (2, "ok", None)]
    assert "accuracy_error" not in results[0]["details"]


def test_the_cost_model_counts_the_hint_channels(hinted_bundle: Path):
    from dataclasses import replace

    from advseg_bench.probe import model_cost

    (spec,) = parse_models(f"bundle:{hinted_bundle}")
    assert spec.config is not None
    plain = replace(spec, config={**spec.config, "hint_nc": 0})
    assert plain.input_channels == 3
    assert model_cost(spec, [32])[32]["gflops"] > model_cost(plain, [32])[32]["gflops"]
