"""advseg-bench units: statistics, schema, planning decisions, compare ratios, reports, workers.

Fast tests: no model export here (the CLI runs are in test_bench_cli.py). No timing assertions.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from advseg_bench import schema
from advseg_bench.compare import compare_docs, format_comparison
from advseg_bench.models import ModelSpec, generator_spec, parse_models, psnr, size_problem
from advseg_bench.plan import Job, PlanRequest, estimate_call_s, make_plan
from advseg_bench.report import compute_targets, render_markdown
from advseg_bench.timing import TimingPolicy, measure, summarize

CPU_ONLY_ENV = {
    "torch": "2.x",
    "torch_cuda": False,
    "torch_cuda_reason": "torch is a CPU-only build",
    "ort_providers": ["CPUExecutionProvider"],
    "tensorrt": None,
    "tensorrt_error": "import tensorrt failed: No module named 'tensorrt'",
    "cuda_python": False,
    "gpu": False,
    "cxx_compiler": "/usr/bin/g++",
}


def _result(model, backend, precision, batch, size, p50, kind="generator", **extra):
    r = schema.empty_result(model, kind, backend, precision, batch, size, status="ok")
    r["latency_ms"] = {"mean": p50, "std": 0.0, "min": p50, "p50": p50, "p90": p50, "p99": p50, "max": p50}
    r["throughput_ips"] = batch / (p50 / 1e3)
    r["iterations"] = 3
    r["details"] = {"device": "cpu"}
    r.update(extra)
    return r


def _doc(results, slug="cpu-2core-test", models=None):
    return {
        "schema": schema.SCHEMA_VERSION,
        "kind": "matrix",
        "created": "2025-01-01T00:00:00+00:00",
        "command": ["advseg-bench", "run"],
        "machine": {"slug": slug, "os": "Linux", "cpu_model": "Test CPU", "cpu_cores_logical": 2, "gpus": []},
        "software": {"advseg": "0.1.0", "numpy": "2", "onnxruntime": "1.x", "torch": "2.x"},
        "settings": {"threads": 2},
        "peaks": {"cpu": {"fp32": {"gflops": 100.0}}},
        "load": {},
        "backends": [{"backend": "ort-cuda", "available": False, "reason": "no CUDA EP here"}],
        "models": models or [],
        "results": results,
    }


# --------------------------------------------------------------------------- timing


def test_summarize_matches_numpy_percentiles():
    times = [0.010, 0.012, 0.011, 0.050, 0.013]
    s = summarize(times)
    ms = np.array(times) * 1e3
    assert s["p50"] == pytest.approx(np.percentile(ms, 50))
    assert s["p90"] == pytest.approx(np.percentile(ms, 90))
    assert s["p99"] == pytest.approx(np.percentile(ms, 99))
    assert s["mean"] == pytest.approx(ms.mean())
    assert s["min"] == pytest.approx(10.0) and s["max"] == pytest.approx(50.0)
    with pytest.raises(ValueError):
        summarize([])


def test_measure_counts_warmup_and_repeats():
    calls = []
    t = measure(lambda: calls.append(1), TimingPolicy(warmup=2, repeats=5, min_time_s=0.0))
    assert len(calls) == 7 and len(t.times_s) == 5 and t.warmup == 2
    # a custom timer (what CUDA events plug into) replaces the host clock
    t2 = measure(lambda: None, TimingPolicy(warmup=0, repeats=3, min_time_s=0.0), timed_call=lambda f: 0.25)
    assert t2.times_s == [0.25, 0.25, 0.25]
    with pytest.raises(ValueError):
        TimingPolicy(repeats=0)


# --------------------------------------------------------------------------- models


def test_size_rules_and_model_parsing():
    unet = generator_spec("unet_256", ngf=8)
    assert size_problem(unet, 256) is None and size_problem(unet, 512) is None
    assert "multiple of 256" in size_problem(unet, 384)
    assert "multiple of 4" in size_problem(generator_spec("resnet_9blocks"), 250)
    specs = parse_models("resnet_6blocks,hed,pipeline", ngf=8)
    assert [s.kind for s in specs] == ["generator", "hed", "pipeline"]
    assert specs[2].name == "pipeline-resnet_6blocks-ngf8" and specs[2].config["ngf"] == 8
    with pytest.raises(ValueError, match="unknown generator architecture"):
        parse_models("resnet_12blocks")
    with pytest.raises(ValueError, match="listed twice"):
        parse_models("hed,hed")
    assert ModelSpec.from_dict(specs[0].to_dict()) == specs[0]


def test_psnr_convention():
    ref = np.zeros((1, 3, 4, 4), np.float32)
    cand = ref + 2.0 / 255.0  # one 8-bit step when [-1, 1] is mapped to 0..255
    out = psnr(ref, cand, (-1.0, 1.0))
    assert out["psnr_db"] == pytest.approx(20 * math.log10(255.0), abs=1e-3)
    assert out["max_abs"] == pytest.approx(2.0 / 255.0)
    assert psnr(ref, ref, (-1.0, 1.0))["psnr_db"] is None  # identical: infinite PSNR -> null


# --------------------------------------------------------------------------- planning


def test_plan_reports_unavailable_backends_and_unsupported_precisions():
    spec = generator_spec("resnet_6blocks", ngf=4)
    spec.checkpoint = "/nonexistent/but/not/opened.safetensors"
    costs = {spec.name: {"32": {"gflops": 0.01, "weights_mb": 1.0, "activation_peak_mb": 1.0}}}
    backends = ["torch-eager", "ort-cpu", "ort-cuda", "ort-trt", "tensorrt", "torch-cudagraph"]
    plan = make_plan(
        PlanRequest([spec], backends, ["fp32", "fp16", "bf16", "int8"], [1], [32]),
        CPU_ONLY_ENV,
        costs,
        {"cpu": {"fp32": {"gflops": 50.0}, "bf16": {"gflops": 1.0}, "int8": {"gflops": 80.0}}},
    )
    rows = {b["backend"]: b for b in plan.backends}
    assert rows["torch-eager"]["available"] and rows["ort-cpu"]["available"]
    for b in ("ort-cuda", "ort-trt", "tensorrt", "torch-cudagraph"):
        assert not rows[b]["available"] and rows[b]["reason"]
    assert "onnxruntime-gpu" in rows["ort-cuda"]["reason"]
    assert "TensorRT" in rows["tensorrt"]["reason"]
    skipped = {(r["backend"], r["precision"]): r["reason"] for r in plan.skipped}
    assert all(r["status"] == "skipped" and r["reason"] for r in plan.skipped)
    assert skipped[("ort-cuda", "fp32")] == rows["ort-cuda"]["reason"]
    assert "int8" in skipped[("torch-eager", "int8")]
    assert "fp16" in skipped[("torch-eager", "fp16")]
    assert "bf16" in skipped[("ort-cpu", "bf16")]
    assert "no int8 artefact" in skipped[("ort-cpu", "int8")]  # spec.bundle is None: no artefacts
    planned = {(j.backend, j.precision) for j in plan.jobs}
    assert planned == {("torch-eager", "fp32"), ("torch-eager", "bf16")}


def test_plan_skips_by_time_and_memory_with_reasons():
    spec = generator_spec("resnet_9blocks")
    spec.checkpoint = "x.safetensors"
    costs = {
        spec.name: {
            "256": {"gflops": 100.0, "weights_mb": 43.0, "activation_peak_mb": 65.0},
            "1024": {"gflops": 1600.0, "weights_mb": 43.0, "activation_peak_mb": 1040.0},
        }
    }
    peaks = {"cpu": {"fp32": {"gflops": 100.0}, "bf16": {"gflops": 0.5}}}
    plan = make_plan(
        PlanRequest(
            [spec], ["torch-eager"], ["fp32", "bf16"], [1, 32], [256, 1024], memory_budget_mb=8 * 1024, max_call_s=60
        ),
        CPU_ONLY_ENV,
        costs,
        peaks,
    )
    reasons = {(r["precision"], r["batch"], r["size"]): r["reason"] for r in plan.skipped}
    assert "measured bf16 peak" in reasons[("bf16", 1, 256)]
    assert "exceeds the budget" in reasons[("fp32", 32, 1024)]
    job = next(j for j in plan.jobs if j.precision == "fp32")
    # cheapest first (pixels x batch): 1x1024² < 32x256²
    assert [(c["batch"], c["size"]) for c in job.combos] == [(1, 256), (1, 1024), (32, 256)]
    assert estimate_call_s({"gflops": 100.0}, 8, 100.0) == pytest.approx(8.0)


# --------------------------------------------------------------------------- schema / compare / report


def test_schema_validation_names_the_problem(tmp_path):
    doc = _doc([_result("m", "ort-cpu", "fp32", 1, 256, 10.0)])
    schema.validate(doc)
    path = schema.write(tmp_path / "ok.json", doc)
    assert schema.load(path)["results"][0]["latency_ms"]["p50"] == 10.0
    bad = json.loads(json.dumps(doc))
    del bad["results"][0]["latency_ms"]
    with pytest.raises(schema.ResultsError, match="missing latency_ms"):
        schema.validate(bad)
    bad = dict(doc, schema="advseg-bench/0")
    with pytest.raises(schema.ResultsError, match="advseg-bench/1"):
        schema.validate(bad)
    skipped = schema.empty_result("m", "generator", "ort-cuda", "fp32", 1, 256, "skipped", reason=None)
    with pytest.raises(schema.ResultsError, match="without a reason"):
        schema.validate(_doc([skipped]))
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(schema.ResultsError, match="not a JSON file"):
        schema.load(tmp_path / "broken.json")
    # nothing half-written: a failed validation leaves no file behind
    with pytest.raises(schema.ResultsError):
        schema.write(tmp_path / "never.json", bad)
    assert not (tmp_path / "never.json").exists()


def test_compare_ratios_are_computed_from_medians():
    a = _doc(
        [
            _result("g", "torch-eager", "fp32", 1, 256, 600.0),
            _result("g", "ort-cpu", "fp32", 1, 256, 500.0),
            _result("g", "ort-cpu", "int8", 1, 256, 250.0),
        ]
    )
    b = _doc(
        [
            _result("g", "torch-eager", "fp32", 1, 256, 300.0),
            _result("g", "ort-cpu", "fp32", 1, 256, 1000.0),
            _result("h", "ort-cpu", "fp32", 1, 256, 1.0),
        ],
        slug="other-machine",
    )
    cmp = compare_docs(a, b)
    rows = {(r["backend"], r["precision"]): r for r in cmp["rows"]}
    assert set(rows) == {("torch-eager", "fp32"), ("ort-cpu", "fp32")}
    assert rows[("torch-eager", "fp32")]["speedup"] == pytest.approx(2.0)
    assert rows[("ort-cpu", "fp32")]["speedup"] == pytest.approx(0.5)
    assert rows[("ort-cpu", "fp32")]["throughput_ratio"] == pytest.approx(0.5)
    assert cmp["geomean_speedup"] == pytest.approx(1.0)
    assert len(cmp["only_a"]) == 1 and len(cmp["only_b"]) == 1
    text = format_comparison(cmp, "a", "b")
    assert "2.00x" in text and "0.50x" in text and "different machines" in text


def test_targets_and_markdown():
    models = [
        {"name": "r9", "kind": "generator", "arch": "resnet_9blocks"},
        {"name": "u", "kind": "generator", "arch": "unet_256"},
    ]
    parity_ok = {"device": "cpu", "bundle_parity": {"psnr": 33.0, "passed": True}}
    parity_bad = {"device": "cpu", "bundle_parity": {"psnr": 25.0, "passed": False}}
    res = [
        _result("r9", "torch-eager", "fp32", 1, 256, 600.0),
        _result("r9", "ort-cpu", "fp32", 1, 256, 500.0),
        _result("r9", "ort-cpu", "int8", 1, 256, 200.0, details=parity_ok),
        _result("r9", "torch-eager", "bf16", 1, 256, 100.0, details=parity_bad),  # fast but inaccurate
        _result("u", "torch-eager", "fp32", 1, 256, 140.0),
        _result("u", "ort-cpu", "fp32", 1, 256, 100.0),
    ]
    doc = _doc(res, models=models)
    by_name = {x["name"]: x for x in compute_targets(doc)}
    ort_r9 = by_name["resnet_9blocks: ONNX Runtime fp32 vs torch eager fp32"]
    assert ort_r9["value"] == pytest.approx(1.2) and ort_r9["met"] is True
    best = by_name["resnet_9blocks: best CPU path vs torch eager fp32 (PSNR >= 30 dB)"]
    assert best["value"] == pytest.approx(3.0) and best["met"] is True and best["best"]["precision"] == "int8"
    unet = by_name["unet_256: ONNX Runtime fp32 vs torch eager fp32"]
    assert unet["value"] == pytest.approx(1.4) and unet["met"] is False
    doc["targets"] = compute_targets(doc)
    md = render_markdown(doc)
    assert "| size | batch | backend | precision | p50 ms" in md
    assert "backend **ort-cuda**: no CUDA EP here" in md
    assert "**no**" in md and "33.0 dB (parity)" in md


# --------------------------------------------------------------------------- workers


def test_worker_reports_a_load_failure_per_combination(tmp_path):
    """A real worker process that cannot open its model reports each combination as an error."""
    from advseg_bench.runner import BenchRunConfig, _run_job

    spec = generator_spec("resnet_6blocks", ngf=4)
    spec.bundle = str(tmp_path / "missing.advseg")
    job = Job(spec, "ort-cpu", "fp32", "cpu", combos=[{"batch": 1, "size": 32}, {"batch": 2, "size": 32}])
    cfg = BenchRunConfig(
        models=[spec], backends=["ort-cpu"], precisions=["fp32"], batches=[1, 2], sizes=[32], threads=1, progress=False
    )
    from tqdm import tqdm

    msgs: list[str] = []
    with tqdm(total=2, disable=True) as bar:
        results = _run_job(job, cfg, bar, msgs.append)
    assert [(r["batch"], r["status"]) for r in results] == [(1, "error"), (2, "error")]
    assert all("bundle not found" in r["reason"] and "missing.advseg" in r["reason"] for r in results)
    assert len(msgs) == 2


def test_worker_usage_error_is_clear():
    proc = subprocess.run([sys.executable, "-m", "advseg_bench.worker"], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage:" in proc.stderr


def test_compare_cli_refuses_a_bad_file_clearly(tmp_path, venv_bin):
    good = schema.write(tmp_path / "a.json", _doc([_result("g", "ort-cpu", "fp32", 1, 256, 10.0)]))
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps({"schema": "something-else"}))
    proc = subprocess.run(
        [str(venv_bin / "advseg-bench"), "compare", str(good), str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "b.json" in proc.stderr and "advseg-bench/1" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [str(venv_bin / "advseg-bench"), "compare", str(good), str(tmp_path / "nope.json")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "results file not found" in proc.stderr


def test_compare_cli_prints_ratios(tmp_path, venv_bin):
    a = schema.write(tmp_path / "a.json", _doc([_result("g", "ort-cpu", "fp32", 1, 256, 30.0)]))
    b = schema.write(tmp_path / "b.json", _doc([_result("g", "ort-cpu", "fp32", 1, 256, 10.0)]))
    proc = subprocess.run([str(venv_bin / "advseg-bench"), "compare", str(a), str(b)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "3.00x" in proc.stdout and "geometric-mean speedup" in proc.stdout
    proc = subprocess.run(
        [str(venv_bin / "advseg-bench"), "compare", "--json", str(a), str(b)], capture_output=True, text=True
    )
    assert json.loads(proc.stdout)["rows"][0]["speedup"] == pytest.approx(3.0)


def test_machine_slug_names_the_vector_isa():
    """One CPU model string covers VMs with and without AVX-512/VNNI/bf16: the slug tells them apart."""
    from advseg_bench.environment import isa_tier, machine_slug

    base = {"cpu_cores_logical": 2, "cpu_model": "AMD EPYC", "gpus": []}
    zen4 = ["avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni"]
    assert machine_slug({**base, "cpu_flags_simd": zen4}) == "cpu-2core-amd-epyc-avx512bf16"
    assert machine_slug({**base, "cpu_flags_simd": ["avx", "avx2", "fma"]}) == "cpu-2core-amd-epyc-avx2"
    assert machine_slug({**base, "cpu_flags_simd": []}) == "cpu-2core-amd-epyc"
    assert isa_tier(["asimd", "i8mm"]) == "neon" and isa_tier(["avx2", "amx_int8"]) == "amx"
    gpu = {**base, "cpu_flags_simd": zen4, "gpus": [{"name": "NVIDIA H100 80GB HBM3"}]}
    assert machine_slug(gpu) == "gpu-nvidia-h100-80gb-hbm3"


def test_loaded_machine_facts_are_recorded():
    from advseg_bench.environment import LoadMonitor, machine_info, software_versions

    info = machine_info()
    assert info["cpu_cores_logical"] >= 1 and info["slug"] and "/" not in info["slug"]
    sw = software_versions()
    assert sw["numpy"] == np.__version__ and sw["onnxruntime"]
    with LoadMonitor(interval_s=0.05) as mon:
        import time

        time.sleep(0.2)
    s = mon.summary()
    assert len(s["before"]) == 3 and s["samples"] >= 1


def test_peak_rss_tracks_an_allocation():
    from advseg_bench.memory import PeakRSS

    with PeakRSS() as small:
        pass
    with PeakRSS() as big:
        a = np.ones(40_000_000 // 8)  # 40 MB
        a[::512] = 2.0
        del a
    assert big.peak_mb is not None and small.peak_mb is not None
    assert big.peak_mb >= small.peak_mb + 30


def test_plan_skips_fixed_size_graphs_at_other_sizes(tmp_path):
    """unet_256 bundles are exported at 256x256: ORT cannot run them at 512, torch can."""
    spec = generator_spec("unet_256", ngf=8)
    spec.checkpoint = "x.safetensors"
    spec.bundle = str(tmp_path / "u.advseg")
    Path(spec.bundle).mkdir()
    (Path(spec.bundle) / "manifest.json").write_text(
        json.dumps(
            {
                "input": {"fixed_size": [256, 256]},
                "artefacts": [{"file": "model.fp32.onnx", "format": "onnx", "precision": "fp32"}],
            }
        )
    )
    cost = {"gflops": 1.0, "weights_mb": 1.0, "activation_peak_mb": 1.0}
    plan = make_plan(
        PlanRequest([spec], ["torch-eager", "ort-cpu"], ["fp32"], [1], [256, 512]),
        CPU_ONLY_ENV,
        {spec.name: {"256": cost, "512": cost}},
        {"cpu": {"fp32": {"gflops": 100.0}}},
    )
    runs = {(j.backend, c["size"]) for j in plan.jobs for c in j.combos}
    assert runs == {("torch-eager", 256), ("torch-eager", 512), ("ort-cpu", 256)}
    (skip,) = plan.skipped
    assert skip["backend"] == "ort-cpu" and skip["size"] == 512 and "fixed at 256x256" in skip["reason"]
