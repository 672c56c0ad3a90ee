"""advseg_sdk.bundle: manifest writing/validation, loading from directories and zips, every error.

Also holds the small bundle builders the other SDK test files import (`from test_bundle import ...`):
tiny real generators exported with torch.onnx (the tests may use torch; the SDK may not).
"""

from __future__ import annotations

import json
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from advseg_sdk.bundle import (
    FORMAT_VERSION,
    Bundle,
    BundleError,
    default_bundle_dir,
    default_bundle_path,
    describe_artefact,
    load_bundle,
    pack_bundle,
    write_manifest,
)

# --------------------------------------------------------------------------- builders (shared)

RESNET_INPUT = {
    "name": "input",
    "layout": "NCHW",
    "channels": 3,
    "color": "RGB",
    "range": [-1, 1],
    "size_multiple": 4,
    "min_size": 8,
}
OUTPUT = {"name": "output", "layout": "NCHW", "channels": 3, "color": "RGB", "range": [-1, 1]}


def export_onnx(net, path: Path, opset: int = 17, sample_hw: tuple[int, int] = (32, 32)) -> Path:
    """torch module -> ONNX with dynamic batch, height and width (legacy exporter, opset 17)."""
    import torch

    net = net.eval()
    x = torch.zeros(1, 3, *sample_hw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            x,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "h", 3: "w"}},
        )
    return path


def tiny_resnet(seed: int = 0, norm: str = "instance"):
    import torch

    from advseg_train.networks import GeneratorConfig, build_generator

    torch.manual_seed(seed)
    return build_generator(GeneratorConfig("resnet_6blocks", ngf=4, norm=norm)).eval()


def tiny_unet128(seed: int = 0):
    import torch

    from advseg_train.networks import GeneratorConfig, build_generator

    torch.manual_seed(seed)
    return build_generator(GeneratorConfig("unet_128", ngf=4)).eval()


def local_convnet(seed: int = 0):
    """A small fully convolutional net (stride 2 down/up, no normalisation): receptive-field
    radius about 6 px, so tiling with overlap >= 32 (margin 8) reproduces the untiled output."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 3, 3, padding=1),
        nn.Tanh(),
    ).eval()
    with torch.no_grad():  # spread the output over the tanh range so differences show in uint8
        net[6].weight.mul_(8.0)
    return net


def fp16_from(fp32_path: Path, out: Path, keep_io_types: bool) -> Path:
    """A real fp16 graph (ONNX Runtime's converter); fp32 IO when keep_io_types."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=keep_io_types)
    onnx.save(m, str(out))
    return out


def int8_from(fp32_path: Path, out: Path, hw: int = 32) -> Path:
    """Static QDQ int8 quantisation, calibrated on a few sketch-like inputs."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(0)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(
                [
                    {"input": (rng.random((1, 3, hw, hw), dtype=np.float32) > 0.1).astype(np.float32) * 2 - 1}
                    for _ in range(4)
                ]
            )

        def get_next(self):
            return next(self.it, None)

    import logging

    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(
        str(fp32_path),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return out


def make_bundle(
    dest: Path,
    onnx_files: dict[str, Path],
    input_spec: dict | None = None,
    task: str = "sketch2color",
    arch: dict | None = None,
    extra: dict | None = None,
    engines: list[dict] | None = None,
) -> Path:
    """Copy ONNX files into a new bundle dir ``dest`` as model.<precision>.onnx and write the manifest."""
    dest.mkdir(parents=True, exist_ok=True)
    arts = []
    for prec, src in onnx_files.items():
        target = dest / f"model.{prec}.onnx"
        shutil.copyfile(src, target)
        arts.append(describe_artefact(target, prec, opset=17))
    for e in engines or []:
        target = dest / e["file"]
        target.write_bytes(e.get("data", b"not a real engine: fake plan bytes for tests"))
        arts.append(describe_artefact(target, e.get("precision", "fp16"), format="engine", engine=e["engine"]))
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": dest.name.removesuffix(".advseg"),
        "task": task,
        "architecture": arch or {"name": "resnet_6blocks", "args": {"ngf": 4}},
        "input": input_spec or RESNET_INPUT,
        "output": OUTPUT if task == "sketch2color" else {"channels": 1, "range": [0, 1]},
        "artefacts": arts,
        **(extra or {}),
    }
    write_manifest(dest, manifest)
    return dest


def sketch_from_photo(path: Path, long_side: int = 96) -> np.ndarray:
    """A real sketch-like input: a photo downscaled, Canny edges, black lines on white (H, W)."""
    import cv2

    from advseg_sdk.imageio import read_image

    rgb = read_image(path)
    h, w = rgb.shape[:2]
    s = long_side / max(h, w)
    small = cv2.resize(rgb, (max(8, round(w * s)), max(8, round(h * s))), interpolation=cv2.INTER_AREA)
    edges = cv2.Canny(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), 60, 160)
    return (255 - edges).astype(np.uint8)


# --------------------------------------------------------------------------- fixtures


def _fake_bundle(root: Path, name: str = "fake.advseg", task: str = "sketch2color") -> Path:
    """A bundle whose artefact is opaque bytes: enough for format-level tests (no ONNX parsing)."""
    d = root / name
    d.mkdir(parents=True)
    (d / "model.fp32.onnx").write_bytes(bytes(range(256)) * 8)
    (d / "model.int8.onnx").write_bytes(b"\x01" * 1000)
    write_manifest(
        d,
        {
            "task": task,
            "architecture": {"name": "resnet_6blocks", "args": {"ngf": 4, "norm": "instance"}},
            "input": RESNET_INPUT,
            "output": OUTPUT,
            "artefacts": [
                describe_artefact(d / "model.fp32.onnx", "fp32", opset=17),
                describe_artefact(d / "model.int8.onnx", "int8", opset=17),
            ],
            "parity": {
                "model.int8.onnx": {
                    "reference": "torch-fp32",
                    "max_abs": 0.08,
                    "psnr": 36.5,
                    "inputs": ["a.png", "b.png"],
                }
            },
            "provenance": {"source_checkpoint_sha256": "ab" * 32, "package_version": "0.1.0"},
        },
    )
    return d


@pytest.fixture
def fake_bundle(tmp_path: Path) -> Path:
    return _fake_bundle(tmp_path)


# --------------------------------------------------------------------------- round trip


def test_write_and_load_round_trip(fake_bundle: Path):
    b = load_bundle(fake_bundle)
    assert isinstance(b, Bundle)
    assert b.format_version == FORMAT_VERSION
    assert b.task == "sketch2color" and b.arch_name == "resnet_6blocks"
    assert b.path == fake_bundle.absolute()
    assert b.precisions == ["fp32", "int8"]
    assert b.artefact_path("fp32") == fake_bundle.absolute() / "model.fp32.onnx"
    assert b.artefact("int8").bytes == 1000 and b.artefact("int8").opset == 17
    spec = b.input_spec
    assert (spec.size_multiple, spec.min_size, spec.fixed_size, spec.range, spec.channels) == (
        4,
        8,
        None,
        (-1.0, 1.0),
        3,
    )
    assert b.parity["model.int8.onnx"]["psnr"] == 36.5
    assert b.provenance["package_version"] == "0.1.0"
    # written atomically: only the manifest and the artefacts are in the folder
    assert sorted(p.name for p in fake_bundle.iterdir()) == ["manifest.json", "model.fp32.onnx", "model.int8.onnx"]
    assert json.loads((fake_bundle / "manifest.json").read_text())["format_version"] == FORMAT_VERSION


def test_default_paths(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("ADVSEG_HOME", str(tmp_path / "home"))
    assert default_bundle_dir() == tmp_path / "home" / "bundles"
    assert default_bundle_path("hed") == tmp_path / "home" / "bundles" / "hed.advseg"


def test_unknown_precision_lists_available(fake_bundle: Path):
    b = load_bundle(fake_bundle)
    with pytest.raises(BundleError, match=r"no 'fp16' artefact; available: fp32, int8"):
        b.artefact_path("fp16")
    with pytest.raises(BundleError, match=r"no 'trt' artefact.*available: fp32, int8"):
        b.artefact("trt")


def test_write_manifest_validates(tmp_path: Path):
    d = tmp_path / "x.advseg"
    d.mkdir()
    (d / "model.fp32.onnx").write_bytes(b"abc")
    art = describe_artefact(d / "model.fp32.onnx", "fp32")
    good = {"task": "sketch2color", "architecture": {"name": "a"}, "input": {}, "output": {}, "artefacts": [art]}
    with pytest.raises(BundleError, match="task 'colour' is not one of"):
        write_manifest(d, {**good, "task": "colour"})
    with pytest.raises(BundleError, match="missing key 'artefacts'"):
        write_manifest(d, {k: v for k, v in good.items() if k != "artefacts"})
    with pytest.raises(BundleError, match="precision 'fp8' is not one of"):
        write_manifest(d, {**good, "artefacts": [{**art, "precision": "fp8"}]})
    with pytest.raises(BundleError, match="must be a plain file name"):
        write_manifest(d, {**good, "artefacts": [{**art, "file": "../evil.onnx"}]})
    with pytest.raises(BundleError, match="needs an 'engine' object"):
        write_manifest(d, {**good, "artefacts": [{**art, "format": "engine"}]})
    with pytest.raises(BundleError, match="'model.fp16.onnx' listed in manifest.json is missing"):
        write_manifest(d, {**good, "artefacts": [{**art, "file": "model.fp16.onnx"}]})
    assert not (d / "manifest.json").exists()  # nothing written on failure
    write_manifest(d, good)
    assert load_bundle(d).manifest["format_version"] == FORMAT_VERSION


# --------------------------------------------------------------------------- zip


def test_zip_bundle_extracts_once_into_cache(fake_bundle: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ADVSEG_HOME", str(tmp_path / "home"))
    z = pack_bundle(fake_bundle, tmp_path / "fake.advseg.zip")
    b = load_bundle(z)
    assert b.source == z.absolute() and b.path != z
    assert b.path.is_relative_to(tmp_path / "home" / "bundle-cache")
    assert b.manifest == load_bundle(fake_bundle).manifest
    assert load_bundle(z).path == b.path  # keyed by the zip's sha256: reused
    caches = [p for p in (tmp_path / "home" / "bundle-cache").iterdir()]
    assert len(caches) == 1 and not caches[0].name.startswith(".")


def test_zip_with_top_level_folder(fake_bundle: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ADVSEG_HOME", str(tmp_path / "home"))
    z = tmp_path / "nested.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in fake_bundle.iterdir():
            zf.write(f, arcname=f"fake.advseg/{f.name}")
    assert load_bundle(z).precisions == ["fp32", "int8"]


def test_corrupt_and_unsafe_zips(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ADVSEG_HOME", str(tmp_path / "home"))
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(BundleError, match=r"corrupt bundle .*bad\.zip: not a readable zip archive"):
        load_bundle(bad)
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("manifest.json", "{}")
        zf.writestr("../../escape.txt", "x")
    with pytest.raises(BundleError, match="unsafe path '../../escape.txt'"):
        load_bundle(evil)
    assert not (tmp_path / "escape.txt").exists()


# --------------------------------------------------------------------------- errors


def test_missing_bundle_names_the_command(tmp_path: Path):
    with pytest.raises(BundleError, match=r"bundle not found: .*nope\.advseg; create one with `advseg-export"):
        load_bundle(tmp_path / "nope.advseg")
    with pytest.raises(BundleError, match=r"`advseg-export hed -o .*hed\.advseg`"):
        load_bundle(tmp_path / "hed.advseg")


def test_directory_without_manifest(tmp_path: Path):
    (tmp_path / "empty.advseg").mkdir()
    with pytest.raises(
        BundleError, match=r"is not an advseg bundle: no manifest.json in it; create one with `advseg-export"
    ):
        load_bundle(tmp_path / "empty.advseg")


def test_corrupt_json(fake_bundle: Path):
    (fake_bundle / "manifest.json").write_text('{"format_version": "advseg-bundle/1", "task": ')
    with pytest.raises(BundleError, match=r"corrupt bundle .*manifest.json is not valid JSON \(.* line 1, column"):
        load_bundle(fake_bundle)


def test_unknown_format_version(fake_bundle: Path):
    m = json.loads((fake_bundle / "manifest.json").read_text())
    m["format_version"] = "advseg-bundle/99"
    (fake_bundle / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(
        BundleError, match=r"unsupported format version 'advseg-bundle/99'; this advseg reads advseg-bundle/1"
    ):
        load_bundle(fake_bundle)


def test_missing_artefact_file(fake_bundle: Path):
    (fake_bundle / "model.int8.onnx").unlink()
    with pytest.raises(BundleError, match=r"artefact 'model.int8.onnx' listed in manifest.json is missing"):
        load_bundle(fake_bundle)
    assert load_bundle(fake_bundle, verify=False).precisions == ["fp32", "int8"]


def test_sha256_mismatch_names_file_expected_and_got(fake_bundle: Path):
    f = fake_bundle / "model.fp32.onnx"
    expected = load_bundle(fake_bundle).artefact("fp32").sha256
    data = bytearray(f.read_bytes())
    data[100] ^= 0xFF  # same size, one byte flipped
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError) as ei:
        load_bundle(fake_bundle)
    msg = str(ei.value)
    assert "sha256 mismatch for model.fp32.onnx" in msg
    assert f"expected {expected}" in msg
    import hashlib

    assert f"got {hashlib.sha256(bytes(data)).hexdigest()}" in msg


def test_truncated_artefact(fake_bundle: Path):
    f = fake_bundle / "model.fp32.onnx"
    f.write_bytes(f.read_bytes()[:10])
    with pytest.raises(BundleError, match=r"size mismatch for model.fp32.onnx: manifest says 2048 bytes, file has 10"):
        load_bundle(fake_bundle)


def test_wrong_task(tmp_path: Path):
    d = _fake_bundle(tmp_path, "hed-like.advseg", task="photo2sketch")
    with pytest.raises(BundleError, match=r"is a 'photo2sketch' bundle .* but a 'sketch2color' bundle is needed"):
        load_bundle(d, task="sketch2color")
    assert load_bundle(d, task="photo2sketch").task == "photo2sketch"


def test_plain_file_is_not_a_bundle(tmp_path: Path):
    f = tmp_path / "model.onnx"
    f.write_bytes(b"\x08\x01")
    with pytest.raises(BundleError, match="expected a bundle directory or a .zip"):
        load_bundle(f)
