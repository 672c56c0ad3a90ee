"""Bundles a hostile party made: external ONNX data, zip bombs, symlinks, malformed manifests.

Every case must end in one clear :class:`BundleError` (or a one-line CLI error), never in a
traceback, a filled disk or a "verified" verdict.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_bundle import OUTPUT, RESNET_INPUT, _fake_bundle, export_onnx, local_convnet, make_bundle

from advseg_sdk.bundle import BundleError, describe_artefact, load_bundle, pack_bundle, write_manifest


def _advseg(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "advseg_sdk.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def _one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def convnet_onnx(tmp_path_factory) -> Path:
    return export_onnx(local_convnet(), tmp_path_factory.mktemp("onnx") / "g.onnx")


# --------------------------------------------------------------------------- 1. external data


def test_onnx_external_data_is_refused(convnet_onnx: Path, tmp_path: Path):
    import onnx

    d = tmp_path / "ext.advseg"
    d.mkdir()
    model = onnx.load(str(convnet_onnx))
    onnx.save_model(
        model,
        str(d / "model.fp32.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    # the manifest hashes the small graph file only; the weights file is unlisted
    write_manifest(
        d,
        {
            "task": "sketch2color",
            "architecture": {"name": "x"},
            "input": RESNET_INPUT,
            "output": OUTPUT,
            "artefacts": [describe_artefact(d / "model.fp32.onnx", "fp32")],
        },
        verify=False,
    )  # write_manifest itself refuses it (checked below)
    (d / "weights.bin").write_bytes(b"\0" * (d / "weights.bin").stat().st_size)  # tampered: all zero
    with pytest.raises(BundleError, match=r"model\.fp32\.onnx keeps tensor data in a separate file \('weights\.bin'\)"):
        load_bundle(d)
    line = _one_line_error(_advseg("info", d))
    assert "weights.bin" in line and "verified" not in line
    with pytest.raises(BundleError, match="weights.bin"):
        write_manifest(d, json.loads((d / "manifest.json").read_text()))


# --------------------------------------------------------------------------- 2. zip bombs


def test_zip_member_with_huge_ratio_is_refused_before_extraction(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ADVSEG_HOME", str(tmp_path / "home"))
    d = _fake_bundle(tmp_path)
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in d.iterdir():
            zf.write(f, f.name)
        zf.writestr("padding.bin", b"\0" * (64 << 20))  # 64 MiB of zeros -> ~64 kB compressed
    assert z.stat().st_size < 1 << 20
    with pytest.raises(BundleError, match=r"padding\.bin.* compression ratio"):
        load_bundle(z)
    cache = tmp_path / "home" / "bundle-cache"
    assert not cache.exists() or not any(cache.iterdir())


def test_zip_declaring_3_gib_is_refused_before_extraction(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ADVSEG_HOME", str(tmp_path / "home"))
    d = _fake_bundle(tmp_path)
    z = tmp_path / "declared.zip"
    pack_bundle(d, z)
    # forge the central directory: model.fp32.onnx now declares 3 GiB uncompressed
    data = bytearray(z.read_bytes())
    name = b"model.fp32.onnx"
    at = data.index(b"PK\x01\x02" + bytes(0))  # first central-directory header
    while True:
        n = struct.unpack_from("<H", data, at + 28)[0]
        if bytes(data[at + 46 : at + 46 + n]) == name:
            struct.pack_into("<I", data, at + 24, 3 << 30)
            break
        at = data.index(b"PK\x01\x02", at + 4)
    z.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.fp32\.onnx.* 3\.2 GB uncompressed.*limit"):
        load_bundle(z)
    cache = tmp_path / "home" / "bundle-cache"
    assert not cache.exists() or not any(cache.iterdir())


def test_extraction_that_fails_validation_is_removed(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ADVSEG_HOME", str(tmp_path / "home"))
    d = _fake_bundle(tmp_path)
    z = tmp_path / "bad-hash.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in d.iterdir():
            zf.writestr(f.name, f.read_bytes() if f.name == "manifest.json" else f.read_bytes()[::-1])
    with pytest.raises(BundleError, match="sha256 mismatch"):
        load_bundle(z)
    cache = tmp_path / "home" / "bundle-cache"
    assert not cache.exists() or not any(cache.iterdir())


# --------------------------------------------------------------------------- 3. symlinks


def test_symlinked_artefact_is_refused(tmp_path: Path):
    d = tmp_path / "link.advseg"
    d.mkdir()
    target = Path("/etc/passwd")
    (d / "model.fp32.onnx").symlink_to(target)
    write_manifest(
        d,
        {
            "task": "sketch2color",
            "architecture": {"name": "x"},
            "input": RESNET_INPUT,
            "output": OUTPUT,
            "artefacts": [describe_artefact(target, "fp32") | {"file": "model.fp32.onnx"}],
        },
        verify=False,
    )
    with pytest.raises(BundleError, match=r"model\.fp32\.onnx is a symbolic link"):
        load_bundle(d)
    line = _one_line_error(_advseg("info", d))
    assert "symbolic link" in line


def test_symlinked_manifest_is_refused(tmp_path: Path):
    real = _fake_bundle(tmp_path, "real.advseg")
    d = tmp_path / "other.advseg"
    d.mkdir()
    for f in real.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    (d / "manifest.json").unlink()
    (d / "manifest.json").symlink_to(real / "manifest.json")
    with pytest.raises(BundleError, match=r"manifest\.json is a symbolic link"):
        load_bundle(d)


def _zip_with_symlink(z: Path, files: dict[str, bytes], link_name: str, link_target: str) -> None:
    with zipfile.ZipFile(z, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        info = zipfile.ZipInfo(link_name)
        info.create_system = 3  # unix
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, link_target)


@pytest.mark.parametrize("link_name", ["model.int8.onnx", "weights/"])
def test_zip_symlink_entries_are_refused(tmp_path: Path, monkeypatch, link_name: str):
    monkeypatch.setenv("ADVSEG_HOME", str(tmp_path / "home"))
    d = _fake_bundle(tmp_path)
    files = {f.name: f.read_bytes() for f in d.iterdir() if f.name != "model.int8.onnx"}
    z = tmp_path / "link.zip"
    _zip_with_symlink(z, files, link_name, "/etc")
    with pytest.raises(BundleError, match=r"symbolic link"):
        load_bundle(z)
    line = _one_line_error(_advseg("info", z, env={"ADVSEG_HOME": str(tmp_path / "home")}))
    assert "symbolic link" in line
    cache = tmp_path / "home" / "bundle-cache"
    assert not cache.exists() or not any(cache.iterdir())


# --------------------------------------------------------------------------- 11. manifest schema


def _with(d: Path, edit) -> Path:
    m = json.loads((d / "manifest.json").read_text())
    edit(m)
    (d / "manifest.json").write_text(json.dumps(m))
    return d


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["input"].update(channels="three"), r"input\.channels: 'three' is not one of \[1, 3\]"),
        (lambda m: m["input"].update(range=[0, None]), r"input\.range\[1\]: None is not of type 'number'"),
        (lambda m: m["output"].update(range=[0, 0]), r"output\.range must be \[lo, hi\] with lo < hi"),
        (lambda m: m["input"].update(size_multiple=0), r"input\.size_multiple: 0 is less than the minimum of 1"),
        (
            lambda m: m["input"].update(size_multiple=10**9),
            r"input\.size_multiple: 1000000000 is greater than the maximum",
        ),
        (lambda m: m["input"].update(min_size=-3), r"input\.min_size: -3 is less than the minimum of 1"),
        (lambda m: m["input"].update(fixed_size=[256, "x"]), r"input\.fixed_size"),
        (lambda m: m["input"].update(fixed_size=[0, 256]), r"input\.fixed_size"),
        (lambda m: m["artefacts"][0].update(engine="x"), r"artefacts\[0\]\.engine: 'x' is not of type 'object'"),
        (lambda m: m["artefacts"][0].update(bytes="2048"), r"artefacts\[0\]\.bytes: '2048' is not of type"),
        (lambda m: m.update(architecture="resnet"), r"architecture: 'resnet' is not of type 'object'"),
        (lambda m: m.update(provenance=[1]), r"provenance: \[1\] is not of type 'object'"),
    ],
    ids=[
        "channels-str",
        "range-null",
        "range-empty",
        "size_multiple-0",
        "size_multiple-huge",
        "min_size-neg",
        "fixed_size-str",
        "fixed_size-0",
        "engine-str",
        "bytes-str",
        "arch-str",
        "provenance-list",
    ],
)
def test_wrong_types_and_ranges_are_one_line_errors(tmp_path: Path, edit, message: str):
    d = _with(_fake_bundle(tmp_path), edit)
    with pytest.raises(BundleError, match=r"invalid manifest\.json in .*: " + message):
        load_bundle(d, verify=False)
    line = _one_line_error(_advseg("info", d))
    assert "invalid manifest.json" in line


@pytest.mark.parametrize("constant", ["Infinity", "-Infinity", "NaN"])
def test_manifest_with_non_finite_numbers_is_refused(tmp_path: Path, constant: str):
    d = _fake_bundle(tmp_path)
    text = (d / "manifest.json").read_text()
    m = json.loads(text)
    m["output"]["range"] = [-1, 12345]
    (d / "manifest.json").write_text(json.dumps(m).replace("12345", constant))
    with pytest.raises(BundleError, match=rf"manifest\.json contains {constant}"):
        load_bundle(d, verify=False)


def test_deeply_nested_manifest_is_one_line_error(tmp_path: Path):
    d = _fake_bundle(tmp_path)
    text = (d / "manifest.json").read_text()
    deep = "[" * 100_000 + "]" * 100_000
    (d / "manifest.json").write_text(text.rstrip().rstrip("}") + f', "extra": {deep}}}')
    with pytest.raises(BundleError, match=r"nested too deeply"):
        load_bundle(d, verify=False)
    _one_line_error(_advseg("info", d))
    shallow = "[" * 40 + "]" * 40
    (d / "manifest.json").write_text(text.rstrip().rstrip("}") + f', "extra": {shallow}}}')
    with pytest.raises(BundleError, match=r"nested deeper than 32 levels"):
        load_bundle(d, verify=False)


def test_schema_is_published_in_docs(repo_dir: Path):
    from advseg_sdk.bundle import manifest_schema

    published = json.loads((repo_dir / "docs" / "bundle-manifest.schema.json").read_text())
    assert published == manifest_schema()
    assert published["properties"]["format_version"]["const"] == "advseg-bundle/1"


def test_existing_bundles_follow_the_schema():
    from advseg_sdk.bundle import packaged_bundle_dir

    for d in packaged_bundle_dir().glob("*.advseg"):
        load_bundle(d, verify=False)


# --------------------------------------------------------------------------- 11. ONNX graph vs manifest


def _graph_bundle(tmp_path: Path, onnx_path: Path, **spec) -> Path:
    return make_bundle(tmp_path / "g.advseg", {"fp32": onnx_path}, input_spec={**RESNET_INPUT, **spec})


def _no_input_graph(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    const = helper.make_node(
        "Constant",
        [],
        ["output"],
        value=helper.make_tensor("v", TensorProto.FLOAT, [1, 3, 8, 8], np.zeros(192, np.float32).tolist()),
    )
    graph = helper.make_graph(
        [const], "g", [], [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 8, 8])]
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_graph_without_inputs_is_one_line_error(tmp_path: Path):
    from advseg_sdk import Colorizer

    b = _graph_bundle(tmp_path, _no_input_graph(tmp_path / "c.onnx"))
    with pytest.raises(BundleError, match=r"model\.fp32\.onnx has 0 graph inputs; a bundle graph takes exactly one"):
        Colorizer(b, providers=["CPUExecutionProvider"])
    sketch = tmp_path / "s.png"
    from advseg_sdk.imageio import write_image

    write_image(sketch, np.full((16, 16), 255, np.uint8))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "advseg_sdk.cli",
            "colorize",
            str(sketch),
            "-o",
            str(tmp_path / "o"),
            "--bundle",
            str(b),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "0 graph inputs" in _one_line_error(r)


def test_graph_input_channels_must_match_manifest(tmp_path: Path, convnet_onnx: Path):
    from advseg_sdk import Colorizer

    b = _graph_bundle(tmp_path, convnet_onnx, channels=1)
    with pytest.raises(BundleError, match=r"graph input 'input' has 3 channels, the manifest says 1"):
        Colorizer(b, providers=["CPUExecutionProvider"])


def test_graph_input_name_must_match_manifest(tmp_path: Path, convnet_onnx: Path):
    from advseg_sdk import Colorizer

    b = _graph_bundle(tmp_path, convnet_onnx, name="sketch")
    with pytest.raises(BundleError, match=r"graph input is named 'input', the manifest says 'sketch'"):
        Colorizer(b, providers=["CPUExecutionProvider"])
