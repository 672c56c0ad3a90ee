"""advseg-bench end to end, as a subprocess: a tiny matrix (real export, real ONNX Runtime, real
torch, real HED weights, real photos), the report re-render and the scale command.

Tiny networks (ngf 4), 32–48 px, 2 timed calls; no timing assertions.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from advseg_bench import schema

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAST = ["--warmup", "1", "--repeats", "2", "--min-time", "0", "--min-repeats", "1", "--peak-seconds", "0.1"]


def _run(venv_bin: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(venv_bin / "advseg-bench"), *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"advseg-bench {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, venv_bin):
    out = tmp_path_factory.mktemp("bench")
    proc = _run(
        venv_bin,
        "run",
        "-m",
        "resnet_6blocks,pipeline",
        "--ngf",
        "4",
        "--sizes",
        "32,48",
        "--batch",
        "1,2",
        "--backends",
        "torch-eager,ort-cpu,ort-cuda,tensorrt",
        "--precisions",
        "fp32,int8",
        *FAST,
        "--no-progress",
        "-o",
        str(out),
        "--name",
        "tiny",
    )
    return out, proc, schema.load(out / "tiny.json")


@pytest.mark.slow
def test_run_writes_json_markdown_and_plots(matrix):
    out, proc, doc = matrix
    assert doc["schema"] == "advseg-bench/1" and doc["kind"] == "matrix"
    for key in ("machine", "software", "settings", "peaks", "load", "backends", "results", "targets"):
        assert key in doc
    assert doc["machine"]["cpu_cores_logical"] >= 1 and doc["software"]["onnxruntime"]
    assert doc["settings"]["threads"] >= 1
    assert doc["peaks"]["cpu"]["fp32"]["gflops"] > 0 and "int8" in doc["peaks"]["cpu"]
    ok = [r for r in doc["results"] if r["status"] == "ok"]
    measured = {(r["model"], r["backend"], r["precision"]) for r in ok}
    assert measured == {
        ("resnet_6blocks-ngf4", "torch-eager", "fp32"),
        ("resnet_6blocks-ngf4", "ort-cpu", "fp32"),
        ("resnet_6blocks-ngf4", "ort-cpu", "int8"),
        ("pipeline-resnet_6blocks-ngf4", "ort-cpu", "fp32"),
        ("pipeline-resnet_6blocks-ngf4", "ort-cpu", "int8"),
    }
    assert len(ok) == 5 * 4  # every (batch, size) of each
    for r in ok:
        lat = r["latency_ms"]
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert r["throughput_ips"] > 0 and r["peak_rss_mb"] > 0 and r["iterations"] >= 2
        assert r["gflops_per_image"] > 0 and r["achieved_gflops"] > 0
        # one process per backend: ONNX Runtime workers never have torch loaded
        assert r["details"]["torch_in_process"] is (r["backend"] == "torch-eager")
    int8 = [r for r in ok if r["precision"] == "int8" and r["model_kind"] == "generator"]
    assert all(r["details"]["bundle_parity"]["psnr"] is not None for r in int8)
    assert any(r["accuracy"] and r["accuracy"]["psnr_db"] for r in int8)  # measured on the bench input
    md = (out / "tiny.md").read_text()
    assert "| size | batch | backend | precision | p50 ms" in md and "## pipeline-resnet_6blocks-ngf4" in md
    for name in ("tiny-latency-vs-batch.png", "tiny-throughput-vs-size.png", "tiny-backends.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000
    assert "wrote" in proc.stdout and not list(out.glob(".*part*"))  # no temp files left


@pytest.mark.slow
def test_unavailable_backends_are_skipped_with_a_reason(matrix):
    _, proc, doc = matrix
    import onnxruntime as ort

    rows = {b["backend"]: b for b in doc["backends"]}
    assert set(rows) == {"torch-eager", "ort-cpu", "ort-cuda", "tensorrt"}
    for b in rows.values():
        assert b["available"] or b["reason"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert not rows["ort-cuda"]["available"] and "onnxruntime-gpu" in rows["ort-cuda"]["reason"]
        assert f"skipped backend ort-cuda: {rows['ort-cuda']['reason']}" in proc.stderr
    for name, row in rows.items():
        if not row["available"]:
            mine = [r for r in doc["results"] if r["backend"] == name]
            assert mine and all(r["status"] == "skipped" and r["reason"] == row["reason"] for r in mine)
    # combination-level skips carry their own reason (torch has no int8 path, nor the SDK pipeline)
    torch_int8 = [
        r
        for r in doc["results"]
        if r["backend"] == "torch-eager" and r["precision"] == "int8" and r["model_kind"] == "generator"
    ]
    assert torch_int8 and all("int8" in r["reason"] for r in torch_int8)
    pipe_torch = [r for r in doc["results"] if r["backend"] == "torch-eager" and r["model_kind"] == "pipeline"]
    assert pipe_torch and all(r["status"] == "skipped" and "pipeline" in r["reason"] for r in pipe_torch)


@pytest.mark.slow
def test_report_and_compare_on_real_results(matrix, tmp_path, venv_bin):
    out, _, doc = matrix
    proc = _run(venv_bin, "report", str(out / "tiny.json"), "-o", str(tmp_path))
    assert (tmp_path / "tiny.md").read_text() == (out / "tiny.md").read_text()
    assert (tmp_path / "tiny-backends.png").read_bytes()[:8] == PNG_MAGIC
    proc = _run(venv_bin, "compare", "--json", str(out / "tiny.json"), str(out / "tiny.json"))
    cmp = json.loads(proc.stdout)
    assert len(cmp["rows"]) == sum(r["status"] == "ok" for r in doc["results"])
    assert all(r["speedup"] == pytest.approx(1.0) for r in cmp["rows"])


@pytest.mark.slow
def test_scale_runs_whole_then_tiled_from_a_checkpoint(tmp_path, venv_bin):
    import torch

    from advseg_train.networks import GeneratorConfig, build_generator, save_generator

    torch.manual_seed(1)
    ckpt = tmp_path / "tiny_G.safetensors"
    save_generator(build_generator(GeneratorConfig("resnet_6blocks", ngf=4)), ckpt)
    proc = _run(
        venv_bin,
        "scale",
        "-m",
        f"checkpoint:{ckpt}",
        "--sizes",
        "32,72",
        "--tile-limit",
        "32",
        "--tile",
        "32",
        "--overlap",
        "8",
        "--untiled-too",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "-o",
        str(tmp_path),
        "--name",
        "sc",
    )
    doc = schema.load(tmp_path / "sc.json")
    assert doc["kind"] == "scale" and doc["settings"]["arch"] == "resnet_6blocks"
    rows = [(r["size"], r["details"]["tiled"], r["status"]) for r in doc["results"]]
    assert rows == [(32, False, "ok"), (72, True, "ok"), (72, False, "ok")]
    tiled = doc["results"][1]
    assert tiled["details"]["tiles"] == 9 and tiled["details"]["ms_per_megapixel"] > 0
    assert tiled["details"]["tile_hw"] == [32, 32]  # 3 tiles of 32 cover 72 with >= 8 px overlap
    assert tiled["details"]["work_ratio"] == pytest.approx(9 * 32 * 32 / 72**2, abs=1e-4)
    assert tiled["details"]["torch_in_process"] is False
    assert (tmp_path / "sc.png").read_bytes()[:8] == PNG_MAGIC
    assert "| size | MP | mode | tiles |" in (tmp_path / "sc.md").read_text()
    assert "72px tiled" in proc.stdout
