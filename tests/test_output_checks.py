"""No silent garbage: broken graph outputs fail clearly, HED on a huge photo stays in bounded
memory, and a damaged cached asset is not reported as present."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_bundle import RESNET_INPUT, make_bundle

from advseg_sdk.bundle import BundleError

ADVSEG = Path(sys.executable).parent / "advseg"


def _graph(path: Path, build, out_channels: int | str = 3) -> Path:
    """A real ONNX graph NCHW float -> NCHW float built from ``build(x_name) -> (nodes, y_name)``."""
    import onnx
    from onnx import TensorProto, helper

    nodes, y = build("input")
    nodes.append(helper.make_node("Identity", [y], ["output"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", out_channels, "h", "w"])],
        initializer=[
            helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
            helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
            helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _nan_graph(x: str):
    from onnx import helper

    return [
        helper.make_node("Abs", [x], ["a"]),
        helper.make_node("Neg", ["a"], ["b"]),
        helper.make_node("Sub", ["b", "one"], ["c"]),
        helper.make_node("Sqrt", ["c"], ["y"]),
    ], "y"


def _rgba_graph(x: str):
    from onnx import helper

    return [
        helper.make_node("Slice", [x, "starts", "ends", "axes"], ["alpha"]),
        helper.make_node("Concat", [x, "alpha"], ["y"], axis=1),
    ], "y"


def _rgba_graph_dynamic(x: str):
    """RGBA whose channel count ONNX Runtime cannot know before running: the alpha slice ends
    at max(x) (1 on a white sketch)."""
    from onnx import TensorProto, helper

    return [
        helper.make_node("ReduceMax", [x], ["m"], keepdims=0),
        helper.make_node("Cast", ["m"], ["mi"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["mi", "ends"], ["end"]),
        helper.make_node("Slice", [x, "starts", "end", "axes"], ["alpha"]),
        helper.make_node("Concat", [x, "alpha"], ["y"], axis=1),
    ], "y"


def _sketch(tmp_path: Path) -> Path:
    img = np.full((24, 32), 255, np.uint8)
    img[8:16, 4:28] = 0
    Image.fromarray(img).save(tmp_path / "s.png")
    return tmp_path / "s.png"


@pytest.mark.parametrize(
    ("build", "channels", "message"),
    [
        (_nan_graph, 3, r"produced NaN or infinite values"),
        (_rgba_graph, "c", r"graph output 'output' has 4 channels, the manifest says 3"),  # known when loaded
        (_rgba_graph_dynamic, "c", r"returned 4 channels; the manifest's output has 3"),  # known when run
    ],
    ids=["nan", "rgba", "rgba-dynamic"],
)
def test_broken_graph_outputs_fail_clearly(tmp_path: Path, build, channels, message: str):
    from advseg_sdk import Colorizer

    b = make_bundle(
        tmp_path / "b.advseg", {"fp32": _graph(tmp_path / "g.onnx", build, channels)}, input_spec=RESNET_INPUT
    )
    with pytest.raises(BundleError, match=message):
        Colorizer(b, providers=["CPUExecutionProvider"]).colorize(np.full((24, 32), 255, np.uint8))
    r = subprocess.run(
        [str(ADVSEG), "colorize", _sketch(tmp_path), "-o", tmp_path / "out", "--bundle", b, "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert not list((tmp_path / "out").glob("*.png"))
    assert "NaN" in r.stderr or "4 channels" in r.stderr, r.stderr


def test_hed_nan_output_fails_clearly(tmp_path: Path):
    import onnx
    from onnx import TensorProto, helper

    from advseg_sdk.bundle import describe_artefact, write_manifest
    from advseg_sdk.sketcher import SketchExtractor

    nodes, y = _nan_graph("input")
    nodes += [helper.make_node("Slice", [y, "starts", "ends", "axes"], ["output"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        initializer=[
            helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
            helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
            helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        ],
    )
    d = tmp_path / "hed.advseg"
    d.mkdir()
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(d / "model.fp32.onnx"))
    write_manifest(
        d,
        {
            "task": "photo2sketch",
            "architecture": {"name": "hed"},
            "input": {"name": "input", "channels": 3, "range": [0, 1]},
            "output": {"name": "output", "channels": 1, "range": [0, 1]},
            "artefacts": [describe_artefact(d / "model.fp32.onnx", "fp32")],
        },
    )
    ex = SketchExtractor("hed", bundle=d, providers=["CPUExecutionProvider"])
    with pytest.raises(ValueError, match=r"hed\.advseg produced NaN or infinite values"):
        ex.extract(np.zeros((20, 20, 3), np.uint8))


# --------------------------------------------------------------------------- 4096² HED sketch


@pytest.mark.slow
@pytest.mark.real_assets
def test_hed_sketch_of_a_4096_photo_stays_in_bounded_memory(tmp_path: Path, photo_paths):
    from test_line_drawing import build_hed_bundle

    hed = build_hed_bundle(tmp_path / "hed")
    big = tmp_path / "big.png"
    Image.open(photo_paths[0]).convert("RGB").resize((4096, 4096), Image.Resampling.BICUBIC).save(big)
    limit = 6 << 30  # address space: an unbounded run (~16 GB) dies here instead of swamping the host

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    # a small parent that reports the peak resident memory of its only child, the CLI
    probe = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print('PEAK_KIB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(r.returncode)"
    )
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            probe,
            str(ADVSEG),
            "sketch",
            str(big),
            "-o",
            str(tmp_path / "out"),
            "--bundle",
            str(hed),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        preexec_fn=cap,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "HED works at 1536x1536" in r.stderr and "4096x4096" in r.stderr  # it says what it did
    out = np.asarray(Image.open(tmp_path / "out" / "big.png"))
    assert out.shape == (4096, 4096) and 0.001 < (out == 0).mean() < 0.3
    peak_gib = int(r.stderr.split("PEAK_KIB")[1].split()[0]) / (1 << 20)
    print(f"peak RSS of `advseg sketch` on a 4096x4096 photo: {peak_gib:.2f} GiB")
    assert peak_gib < 3.0


# --------------------------------------------------------------------------- cached assets


@pytest.mark.real_assets
def test_truncated_cached_asset_is_not_present(tmp_path: Path, monkeypatch):
    from advseg_sdk import assets

    src = assets.asset_path("hed-bsds500")
    home = tmp_path / "home"
    monkeypatch.setenv("ADVSEG_HOME", str(home))
    a = assets.ASSETS["hed-bsds500"]
    a.path.parent.mkdir(parents=True)
    shutil.copyfile(src, a.path)
    assert a.is_present()  # checked once (sha256), then by size + stamp
    data = a.path.read_bytes()
    a.path.write_bytes(data[: len(data) // 2])  # an interrupted copy
    assert not a.is_present()
    with pytest.raises(assets.AssetMissingError, match="advseg assets fetch hed-bsds500"):
        assets.asset_path("hed-bsds500")
    r = subprocess.run(
        [str(ADVSEG), "assets", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ADVSEG_HOME": str(home)},
    )
    row = next(line for line in r.stdout.splitlines() if line.startswith("hed-bsds500"))
    assert "present=no" in row
    flipped = bytearray(data)
    flipped[12345] ^= 0xFF  # same size, different bytes
    a.path.write_bytes(bytes(flipped))
    assert not a.is_present()
    a.path.write_bytes(data)
    assert a.is_present()
