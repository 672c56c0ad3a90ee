"""advseg_sdk.runtime on real ONNX Runtime: parity with torch, providers, dtypes, artefact choice,
TensorRT engine matching and fallback.

Not testable here (no GPU, TensorRT not installable): the CUDA IO-binding path and running a
TensorRT engine. Engine *selection* is tested with engine entries whose metadata names other
GPUs / TensorRT versions; the engine files themselves are never executed on this machine.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_bundle import export_onnx, fp16_from, int8_from, make_bundle, tiny_resnet

from advseg_sdk.bundle import BundleError, EngineInfo, load_bundle
from advseg_sdk.runtime import (
    DeviceInfo,
    EngineMismatchWarning,
    OnnxRunner,
    RuntimeUnavailableError,
    TensorRTRunner,
    engine_mismatch,
    open_runner,
    resolve_providers,
)

H100 = {
    "gpu_name": "NVIDIA H100 80GB HBM3",
    "compute_capability": "9.0",
    "tensorrt_version": "10.8.0.43",
    "cuda_version": "12.8",
    "profiles": [{"input": "input", "min": [1, 3, 64, 64], "opt": [1, 3, 256, 256], "max": [8, 3, 1024, 1024]}],
}
A100_OLD_TRT = {**H100, "gpu_name": "NVIDIA A100-SXM4-40GB", "compute_capability": "8.0", "tensorrt_version": "10.0.1"}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """A tiny real resnet_6blocks generator (ngf=4) in fp32, fp16 (fp32 IO and fp16 IO) and int8."""
    root = tmp_path_factory.mktemp("runtime")
    net = tiny_resnet(seed=1)
    fp32 = export_onnx(net, root / "g.fp32.onnx")
    return {
        "net": net,
        "fp32": fp32,
        "fp16": fp16_from(fp32, root / "g.fp16.onnx", keep_io_types=True),
        "fp16io": fp16_from(fp32, root / "g.fp16io.onnx", keep_io_types=False),
        "int8": int8_from(fp32, root / "g.int8.onnx"),
    }


def _sketch_batch(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random((n, 3, h, w)) > 0.12, 1.0, -1.0).astype(np.float32)


def _psnr(a: np.ndarray, b: np.ndarray, peak_range: float = 2.0) -> float:
    return float(10 * np.log10(peak_range**2 / np.mean((a - b) ** 2)))


def test_onnx_fp32_matches_torch(models):
    import torch

    r = OnnxRunner(models["fp32"], intra_op_threads=1)
    x = _sketch_batch(2, 40, 56)
    with torch.no_grad():
        ref = models["net"](torch.from_numpy(x)).numpy()
    out = r.run(x)
    assert out.shape == (2, 3, 40, 56) and out.dtype == np.float32
    assert np.abs(out - ref).max() <= 1e-4
    assert r.providers == ["CPUExecutionProvider"] and r.input_dtype == np.float32
    assert not r.use_io_binding  # IO binding is only used on CUDA (not testable here)


def test_fp16_graphs_with_fp32_and_fp16_io(models):
    x = _sketch_batch(1, 32, 48)
    ref = OnnxRunner(models["fp32"]).run(x)
    r32io = OnnxRunner(models["fp16"])
    r16io = OnnxRunner(models["fp16io"])
    assert r32io.input_dtype == np.float32 and r16io.input_dtype == np.float16
    for r in (r32io, r16io):
        out = r.run(x)  # float32 in: cast to the graph's input dtype; float32 out
        assert out.dtype == np.float32 and out.shape == ref.shape
        assert _psnr(out, ref) > 40


def test_session_options(models):
    r = OnnxRunner(models["fp32"], intra_op_threads=1, inter_op_threads=1, graph_optimization="basic")
    assert r.run(_sketch_batch(1, 16, 16)).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="graph_optimization must be one of"):
        OnnxRunner(models["fp32"], graph_optimization="max")
    with pytest.raises(FileNotFoundError, match="ONNX model not found"):
        OnnxRunner(models["fp32"].with_name("missing.onnx"))


def test_not_an_onnx_file(tmp_path: Path):
    f = tmp_path / "junk.onnx"
    f.write_bytes(b"definitely not protobuf")
    with pytest.raises(ValueError, match=r"onnxruntime cannot load .*junk\.onnx"):
        OnnxRunner(f)


def test_provider_list_is_ordered_and_filtered():
    import onnxruntime as ort

    have = ort.get_available_providers()
    default = [n for n, _ in resolve_providers(None)]
    assert default == [
        p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider") if p in have
    ]
    if "CUDAExecutionProvider" not in have:
        with pytest.warns(RuntimeWarning, match="not available: CUDAExecutionProvider"):
            assert [n for n, _ in resolve_providers(["CUDAExecutionProvider", "CPUExecutionProvider"])] == [
                "CPUExecutionProvider"
            ]
        with pytest.raises(RuntimeUnavailableError, match="none of the requested providers can run"):
            resolve_providers(["CUDAExecutionProvider"])
    custom = resolve_providers([("CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"})])
    assert custom == [("CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"})]


# --------------------------------------------------------------------------- open_runner


@pytest.fixture(scope="module")
def bundle_all(models, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bundles")
    return make_bundle(root / "all.advseg", {"fp32": models["fp32"], "fp16": models["fp16"], "int8": models["int8"]})


def test_auto_picks_fp32_on_cpu_and_explicit_precisions(bundle_all, models):
    b = load_bundle(bundle_all)
    r = open_runner(b)
    assert isinstance(r, OnnxRunner) and r.path.name == "model.fp32.onnx"
    assert r.label.startswith("onnx-fp32:") and "CPUExecutionProvider" in r.label
    x = _sketch_batch(1, 32, 32, seed=3)
    ref = r.run(x)
    r16 = open_runner(b, precision="fp16")
    assert r16.path.name == "model.fp16.onnx" and _psnr(r16.run(x), ref) > 40
    r8 = open_runner(bundle_all, precision="int8")  # a path works too
    assert r8.path.name == "model.int8.onnx"
    assert _psnr(r8.run(x), ref) > 25  # tiny random net, 4 calibration inputs


def test_unsupported_precision_lists_available(bundle_all, tmp_path, models):
    with pytest.raises(
        BundleError, match=r"unsupported precision 'fp8'; choose 'auto' or one this bundle has: fp32, fp16, int8"
    ):
        open_runner(bundle_all, precision="fp8")
    only32 = make_bundle(tmp_path / "only32.advseg", {"fp32": models["fp32"]})
    with pytest.raises(BundleError, match=r"no 'int8' artefact; available: fp32"):
        open_runner(only32, precision="int8")
    with pytest.raises(BundleError, match=r"no 'trt' artefact.*available: fp32"):
        open_runner(only32, precision="trt")


def test_engine_mismatch_reasons():
    eng = EngineInfo.from_dict(H100)
    same = DeviceInfo("NVIDIA H100 80GB HBM3", "9.0", "10.8.0.43")
    assert engine_mismatch(eng, same) is None
    assert engine_mismatch(eng, DeviceInfo("NVIDIA H100 80GB HBM3", "9.0", "10.8.0")) is None
    assert "sm 9.0" in engine_mismatch(eng, DeviceInfo("NVIDIA A100-SXM4-40GB", "8.0", "10.8.0"))
    assert "TensorRT 10.8.0.43, this machine has TensorRT 10.3.0" in engine_mismatch(
        eng, DeviceInfo("NVIDIA H100 80GB HBM3", "9.0", "10.3.0")
    )
    assert "this GPU is NVIDIA H100 PCIe" in engine_mismatch(eng, DeviceInfo("NVIDIA H100 PCIe", "9.0", "10.8.0"))
    assert "no CUDA GPU" in engine_mismatch(eng, DeviceInfo())
    portable = EngineInfo.from_dict({**H100, "hardware_compatible": True})
    assert engine_mismatch(portable, DeviceInfo("NVIDIA A100-SXM4-40GB", "8.0", "10.8.0")) is None
    assert "compute capability 8.0 or newer" in engine_mismatch(portable, DeviceInfo("Tesla T4", "7.5", "10.8.0"))
    assert "TensorRT 10.8.0.43" in engine_mismatch(portable, DeviceInfo("NVIDIA A100-SXM4-40GB", "8.0", "10.9.0"))
    assert "TensorRT is not installed" in engine_mismatch(eng, DeviceInfo("NVIDIA H100 80GB HBM3", "9.0", None))


@pytest.fixture(scope="module")
def bundle_with_engine(models, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("engine")
    return make_bundle(
        root / "eng.advseg", {"fp32": models["fp32"]}, engines=[{"file": "a100-trt10.0.engine", "engine": A100_OLD_TRT}]
    )


def test_engine_for_other_gpu_falls_back_with_warning(bundle_with_engine):
    b = load_bundle(bundle_with_engine)
    assert [a.label for a in b.artefacts] == ["fp32", "trt-fp16"]
    with pytest.warns(
        EngineMismatchWarning, match=r"a100-trt10\.0\.engine: engine built for NVIDIA A100.*falling back to ONNX"
    ):
        r = open_runner(b)  # this machine: no GPU at all
    assert isinstance(r, OnnxRunner) and r.path.name == "model.fp32.onnx"
    # a machine with a different GPU / TensorRT, described explicitly
    h100 = DeviceInfo("NVIDIA H100 80GB HBM3", "9.0", "10.8.0.43")
    with pytest.warns(
        EngineMismatchWarning, match=r"built for NVIDIA A100-SXM4-40GB \(sm 8.0\), this GPU is NVIDIA H100"
    ):
        open_runner(b, device=h100)
    same_gpu_new_trt = DeviceInfo("NVIDIA A100-SXM4-40GB", "8.0", "10.8.0")
    with pytest.warns(EngineMismatchWarning, match=r"built with TensorRT 10.0.1, this machine has TensorRT 10.8.0"):
        open_runner(b, device=same_gpu_new_trt)
    with pytest.warns(EngineMismatchWarning):
        assert isinstance(open_runner(b, precision="trt"), OnnxRunner)


def test_engine_for_other_gpu_raises_when_strict(bundle_with_engine):
    with pytest.raises(BundleError, match=r"no usable TensorRT engine \(a100-trt10\.0\.engine: engine built for"):
        open_runner(bundle_with_engine, strict=True)
    with pytest.raises(BundleError, match="this GPU is NVIDIA H100"):
        open_runner(bundle_with_engine, strict=True, device=DeviceInfo("NVIDIA H100 80GB HBM3", "9.0", "10.0.1"))


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_matching_engine_without_tensorrt_is_reported(bundle_with_engine):
    """The metadata matches the described device, but TensorRT itself cannot be imported here."""
    dev = DeviceInfo("NVIDIA A100-SXM4-40GB", "8.0", "10.0.1")
    with pytest.warns(EngineMismatchWarning, match="TensorRT is not installed"):
        r = open_runner(bundle_with_engine, device=dev)
    assert isinstance(r, OnnxRunner)
    with pytest.raises(BundleError, match="TensorRT is not installed"):
        open_runner(bundle_with_engine, device=dev, strict=True)
    with pytest.raises(RuntimeUnavailableError, match=r"TensorRT is not installed: install NVIDIA TensorRT 10"):
        TensorRTRunner(load_bundle(bundle_with_engine).artefact_path("trt"))


def test_runner_output_is_first_graph_output(models):
    r = OnnxRunner(models["fp32"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outs = r.run_all(_sketch_batch(1, 16, 16))
    assert len(outs) == 1 and outs[0].shape == (1, 3, 16, 16)
