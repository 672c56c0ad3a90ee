"""CPU tests of what the GPU benchmark paths depend on: peak memory after warm-up, which peak
bounds fp32 on CUDA, TensorRT profiles per batch, symmetric int8 for TensorRT, torch sessions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advseg_bench.plan import peak_basis, peak_for
from advseg_bench.run_ort import process_gpu_mb, trt_profile_shapes
from advseg_bench.run_trt import engine_profile
from advseg_bench.timing import TimingPolicy, measure

torch.set_num_threads(1)


def test_after_warmup_runs_between_warmup_and_timed_calls():
    events: list[str] = []
    t = measure(
        lambda: events.append("call"),
        TimingPolicy(warmup=3, repeats=4, min_time_s=0.0),
        after_warmup=lambda: events.append("reset"),
    )
    assert events == ["call"] * 3 + ["reset"] + ["call"] * 4
    assert len(t.times_s) == 4


def test_fp32_on_cuda_is_bounded_by_the_tf32_peak_and_says_so():
    peaks = {
        "cuda": {"fp32": {"gflops": 50_000.0}, "tf32": {"gflops": 400_000.0}, "bf16": {"gflops": 790_000.0}},
        "cpu": {"fp32": {"gflops": 100.0}, "fp16": {"gflops": 5.0}},
    }
    assert peak_basis("cuda", "torch-eager", "fp32") == "tf32"
    assert peak_for(peaks, "cuda", "torch-eager", "fp32") == 400_000.0
    assert peak_for(peaks, "cuda", "ort-cuda", "fp32") == 400_000.0
    assert peak_basis("cuda", "torch-eager", "bf16") == "bf16"
    assert peak_for(peaks, "cpu", "torch-eager", "fp32") == 100.0
    assert peak_basis("cpu", "ort-cpu", "fp16") == "fp32" and peak_for(peaks, "cpu", "ort-cpu", "fp16") == 100.0


def test_tensorrt_profiles_put_the_optimum_at_the_timed_batch():
    assert trt_profile_shapes("input", (8, 3, 256, 256)) == {
        "trt_profile_min_shapes": "input:8x3x256x256",
        "trt_profile_opt_shapes": "input:8x3x256x256",
        "trt_profile_max_shapes": "input:8x3x256x256",
    }
    for batch in (1, 8, 32):
        prof = engine_profile(3, batch, [256, 512])
        assert prof.opt == (batch, 3, 256, 256) and prof.max == (batch, 3, 512, 512) and prof.min == (1, 3, 256, 256)
    assert engine_profile(3, 4, [512, 1024]).opt == (4, 3, 512, 512)


def test_gpu_memory_without_nvidia_smi_says_why():
    import shutil

    mb, how = process_gpu_mb(baseline_mb=100.0)
    if shutil.which("nvidia-smi") is None:
        assert mb is None and how == "nvidia-smi unavailable"
    else:
        assert how.startswith("nvidia-smi")


@pytest.mark.real_assets
def test_symmetric_int8_artefact_has_only_zero_int8_zero_points(tmp_path):
    import onnx
    import onnxruntime as ort

    from advseg_export.calibration import ArrayCalibrationReader, calibration_inputs
    from advseg_export.onnx_export import export_onnx
    from advseg_export.precision import TENSORRT_INT8, Int8Options, asymmetric_zero_points, quantize_int8
    from advseg_train.networks import GeneratorConfig, build_generator

    torch.manual_seed(0)
    net = build_generator(GeneratorConfig(arch="resnet_6blocks", ngf=4, norm="instance")).eval()
    fp32 = tmp_path / "g.fp32.onnx"
    export_onnx(net, fp32, (1, 3, 32, 32))
    cin = calibration_inputs("sketch2color", (32, 32), (-1.0, 1.0), count=4)
    default = quantize_int8(
        fp32,
        tmp_path / "g.int8.onnx",
        ArrayCalibrationReader(cin.array),
        Int8Options(exclude_op_types=("ConvTranspose",)),
    )
    assert asymmetric_zero_points(default), "the CPU artefact (uint8 activations) is what TensorRT rejects"
    sym = quantize_int8(fp32, tmp_path / "g.int8sym.onnx", ArrayCalibrationReader(cin.array), TENSORRT_INT8)
    assert asymmetric_zero_points(sym) == []
    assert any(n.op_type == "QuantizeLinear" for n in sym.graph.node)
    x = cin.array[:1]
    ref = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got = ort.InferenceSession(str(tmp_path / "g.int8sym.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"input": x}
    )[0]
    mse = float(np.mean(((got - ref) * 127.5) ** 2))
    assert 10 * np.log10(255.0**2 / max(mse, 1e-12)) > 20  # a usable quantisation, not a broken graph
    onnx.checker.check_model(onnx.load(str(tmp_path / "g.int8sym.onnx")))


@pytest.mark.real_assets
def test_torch_session_loads_hed_from_a_converted_state_dict_and_references_strict_fp32(tmp_path):
    from safetensors.torch import save_file

    from advseg_bench.models import ModelSpec
    from advseg_bench.run_torch import TorchSession
    from advseg_train.hed import load_hed

    hed = load_hed()
    path = tmp_path / "hed.fp16.safetensors"
    save_file({k: v.half().contiguous() for k, v in hed.state_dict().items()}, str(path))
    spec = ModelSpec(name="hed", kind="hed", arch="hed", checkpoint=str(path))
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    sess = TorchSession(spec, "torch-eager", "bf16", "cpu", threads=1)
    ref, label = sess.reference(x)
    assert "fp32" in label and ref.shape == (1, 1, 32, 32)
    with torch.no_grad():
        full = hed(torch.from_numpy(x)).numpy()
    assert np.abs(ref - full).max() < 2e-2  # fp16-stored weights, fp32 arithmetic
    bound = sess.bind(x)
    bound["call"]()
    out = sess.output()
    assert out.dtype == np.float32 and np.abs(out - ref).max() < 0.1  # bf16 autocast vs fp32
    sess.close()
