"""Fuzzing the two doors hostile data comes through: image decoding and bundle manifests.

Every input must end in a result or in the module's own one-line error (``ImageReadError``,
``BundleError``), never in another exception. Example counts are bounded so CI stays fast; each
test prints how many inputs it tried (``pytest -s`` shows them).
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_bundle import _fake_bundle

from advseg_sdk.bundle import Bundle, BundleError, load_bundle, validate_manifest
from advseg_sdk.imageio import ImageReadError, read_image, to_rgb_uint8

# 300 fixed examples per test in CI; ADVSEG_FUZZ_EXAMPLES=N runs N fresh random ones instead.
_N = int(os.environ.get("ADVSEG_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_N or 300,
    deadline=None,
    derandomize=not _N,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on damaged files
TRIED: dict[str, int] = {}


def _seeds() -> list[bytes]:
    """Valid encodings of small real-looking images in the formats people hand us."""
    rng = np.random.default_rng(0)
    rgb = (rng.random((9, 13, 3)) * 255).astype(np.uint8)
    out = []
    for fmt, mode in (
        ("PNG", "RGB"),
        ("PNG", "RGBA"),
        ("PNG", "L"),
        ("PNG", "I;16"),
        ("JPEG", "RGB"),
        ("BMP", "RGB"),
        ("GIF", "P"),
        ("TIFF", "RGB"),
        ("WEBP", "RGB"),
        ("PPM", "RGB"),
    ):
        im = (
            Image.fromarray(rgb).convert(mode)
            if mode != "I;16"
            else Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
        )
        buf = io.BytesIO()
        im.save(buf, format=fmt)
        out.append(buf.getvalue())
    return out


SEEDS = _seeds()


@st.composite
def image_bytes(draw) -> bytes:
    """A valid file with a few bytes flipped, cut short, or spliced; or plain random bytes."""
    kind = draw(st.sampled_from(["mutate", "truncate", "splice", "random"]))
    if kind == "random":
        return draw(st.binary(min_size=0, max_size=256))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, len(data)))])
    if kind == "splice":
        at = draw(st.integers(0, len(data)))
        return bytes(data[:at] + draw(st.binary(max_size=64)) + data[at:])
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@FUZZ
@given(data=image_bytes(), suffix=st.sampled_from([".png", ".jpg", ".bmp", ".gif", ".tif", ".webp", ".ppm", ""]))
def test_fuzz_image_decode(tmp_path: Path, data: bytes, suffix: str):
    TRIED["image"] = TRIED.get("image", 0) + 1
    f = tmp_path / f"x{suffix}"
    f.write_bytes(data)
    readers = [lambda: read_image(f, max_pixels=1 << 20), lambda: to_rgb_uint8(str(f))]
    try:
        im = Image.open(io.BytesIO(data))  # a PIL image handed to the SDK (Pillow may refuse first)
        readers.append(lambda: to_rgb_uint8(im))
    except Exception:
        pass
    for read in readers:
        try:
            rgb = read()
        except ImageReadError as exc:
            assert "\n" not in str(exc).strip()
        else:
            assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and min(rgb.shape[:2]) >= 1


# --------------------------------------------------------------------------- manifests

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

FIELDS = [
    ("task",),
    ("architecture",),
    ("architecture", "name"),
    ("architecture", "args"),
    ("input",),
    ("input", "channels"),
    ("input", "range"),
    ("input", "range", 0),
    ("input", "range", 1),
    ("input", "size_multiple"),
    ("input", "min_size"),
    ("input", "fixed_size"),
    ("input", "layout"),
    ("input", "color"),
    ("input", "name"),
    ("output",),
    ("output", "range"),
    ("output", "channels"),
    ("output", "name"),
    ("artefacts",),
    ("artefacts", 0),
    ("artefacts", 0, "file"),
    ("artefacts", 0, "sha256"),
    ("artefacts", 0, "bytes"),
    ("artefacts", 0, "format"),
    ("artefacts", 0, "precision"),
    ("artefacts", 0, "engine"),
    ("artefacts", 0, "opset"),
    ("parity",),
    ("provenance",),
    ("format_version",),
    ("name",),
]


def _set(m: dict, path: tuple, value) -> None:
    node = m
    for key in path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(key, {})
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return
    if isinstance(node, dict):
        node[path[-1]] = value
    elif isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node):
        node[path[-1]] = value


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory) -> Path:
    return _fake_bundle(tmp_path_factory.mktemp("fuzz"))


@FUZZ
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(FIELDS),
            JSON
            | st.sampled_from(
                [0, -1, 10**9, "three", [0, None], [1, 0], [256, "x"], "", "../x", "a/b", "NCHW", "engine", 3, [0, 1]]
            ),
        ),
        min_size=1,
        max_size=4,
    ),
    drop=st.lists(st.sampled_from(FIELDS), max_size=2),
)
def test_fuzz_manifest_fields(good_bundle: Path, edits, drop):
    TRIED["manifest-fields"] = TRIED.get("manifest-fields", 0) + 1
    m = json.loads((good_bundle / "manifest.json").read_text())
    for path, value in edits:
        _set(m, path, copy.deepcopy(value))
    for path in drop:
        node = m
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    try:
        validate_manifest(m, "fuzz")
    except BundleError as exc:
        assert "\n" not in str(exc)
        return
    # accepted: every typed view must work on it without another exception
    b = Bundle(good_bundle, m)
    spec = b.input_spec
    assert spec.channels in (1, 3) and spec.size_multiple >= 1 and spec.min_size >= 1
    assert math.isfinite(spec.range[0]) and spec.range[0] < spec.range[1]
    _ = (b.task, b.arch_name, b.available(), b.precisions, b.parity, b.provenance, b.output_spec, b.name)


@FUZZ
@given(
    text=st.one_of(
        JSON.map(json.dumps),
        st.text(max_size=200),
        st.sampled_from(
            [
                "{",
                "[" * 5000,
                '{"a": NaN}',
                '{"format_version": "advseg-bundle/1", "x": Infinity}',
                "\ufeff{}",
                "{}" * 3,
                '{"format_version": "advseg-bundle/1"}',
            ]
        ),
    )
)
def test_fuzz_manifest_text(tmp_path: Path, text: str):
    TRIED["manifest-text"] = TRIED.get("manifest-text", 0) + 1
    d = tmp_path / "b.advseg"
    d.mkdir(exist_ok=True)
    (d / "manifest.json").write_text(text, encoding="utf-8")
    try:
        load_bundle(d)
    except BundleError as exc:
        assert "\n" not in str(exc)


def test_fuzz_report():
    """Runs last in this file: how many inputs the fuzz tests above tried (all without a crash)."""
    print(f"fuzz inputs tried without a crash: {TRIED}, total {sum(TRIED.values())}")
    if TRIED:
        assert all(n >= 100 for n in TRIED.values()), TRIED
