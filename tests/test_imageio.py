"""advseg_sdk.imageio on real files: every odd input gives upright uint8 RGB or a clear error."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from advseg_sdk.imageio import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    ImageReadError,
    max_pixels_limit,
    read_image,
    to_rgb_uint8,
    write_image,
)

# --------------------------------------------------------------------------- file makers
# (shared with test_cli_sketch.py, which builds the same zoo for a batch run)


def _real_photo(size: int = 96) -> Image.Image:
    from advseg_sdk import assets

    im = Image.open(assets.photo_paths()[0]).convert("RGB")  # astronaut
    im.thumbnail((size, size))
    return im


def make_truncated_jpeg(path: Path) -> Path:
    buf = io.BytesIO()
    _real_photo().save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_exif_rotated_jpeg(path: Path) -> Path:
    """Stored 40 wide x 20 high, red block at the stored top-left, EXIF orientation 6 (rotate 90 CW)."""
    a = np.full((20, 40, 3), 255, np.uint8)
    a[:6, :6] = (255, 0, 0)
    im = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(path, format="JPEG", quality=95, exif=exif)
    return path


def make_huge_header_png(path: Path, width: int = 50_000, height: int = 50_000) -> Path:
    """A ~60-byte PNG whose header claims width x height RGB pixels (2.5 gigapixels by default)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )
    return path


def make_zoo(d: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """(good, bad) dicts of real test files in ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    good: dict[str, Path] = {}
    bad: dict[str, Path] = {}
    bad["empty"] = d / "empty.jpg"
    bad["empty"].write_bytes(b"")
    bad["truncated"] = make_truncated_jpeg(d / "truncated.jpg")
    bad["text"] = d / "notes.png"
    bad["text"].write_text("hello, I am not a picture\n")
    g16 = (np.linspace(0, 65535, 48 * 40).reshape(40, 48)).astype(np.uint16)
    good["gray16"] = d / "gray16.png"
    Image.fromarray(g16).save(good["gray16"])
    good["gray"] = d / "gray.png"
    Image.fromarray((g16 >> 8).astype(np.uint8)).save(good["gray"])
    rgba = np.zeros((30, 50, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :25, 3] = 255
    rgba[:, 25:, 3] = 0
    good["rgba"] = d / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(good["rgba"])
    good["palette"] = d / "palette.png"
    _real_photo(64).quantize(colors=16).save(good["palette"])
    good["cmyk"] = d / "cmyk.jpg"
    Image.new("CMYK", (32, 24), (0, 255, 255, 0)).save(good["cmyk"], quality=95)
    good["exif"] = make_exif_rotated_jpeg(d / "exif6.jpg")
    good["one"] = d / "one.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(good["one"])
    good["photo"] = d / "photo.jpg"
    _real_photo(80).save(good["photo"], quality=90)
    bad["huge"] = make_huge_header_png(d / "huge.png")
    return good, bad


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return make_zoo(tmp_path_factory.mktemp("zoo"))


# --------------------------------------------------------------------------- good files


def _check_rgb(a: np.ndarray, hw: tuple[int, int]) -> None:
    assert a.dtype == np.uint8 and a.ndim == 3 and a.shape == (*hw, 3) and a.flags.c_contiguous


def test_16bit_png_is_scaled_not_clipped(zoo):
    good, _ = zoo
    a = read_image(good["gray16"])
    _check_rgb(a, (40, 48))
    raw = np.asarray(Image.open(good["gray16"])).astype(np.float64)
    assert raw.max() == 65535
    np.testing.assert_allclose(a[..., 0], np.rint(raw / 257), atol=1)  # scaled, not clipped at 255
    assert a[..., 0].min() == 0 and a[..., 0].max() == 255
    assert np.unique(a[..., 0]).size > 200  # the full ramp survives, no saturation
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()


def test_16bit_rgb_png(tmp_path):
    import cv2

    v = np.array([0, 257 * 100, 65535], np.uint16)
    bgr16 = np.broadcast_to(v[None, None, ::-1], (4, 5, 3)).copy()  # RGB = (0, 25700, 65535)
    p = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(p), bgr16)
    a = read_image(p)
    _check_rgb(a, (4, 5))
    assert tuple(a[0, 0]) == (0, 100, 255)


def test_grayscale(zoo):
    good, _ = zoo
    a = read_image(good["gray"])
    _check_rgb(a, (40, 48))
    ref = np.asarray(Image.open(good["gray"]))
    assert (a == ref[..., None]).all()


def test_rgba_composited_on_white(zoo):
    good, _ = zoo
    a = read_image(good["rgba"])
    _check_rgb(a, (30, 50))
    assert tuple(a[5, 5]) == (200, 0, 0)  # opaque
    assert tuple(a[5, 40]) == (255, 255, 255)  # transparent -> white paper, not black


def test_half_transparent_and_la(tmp_path):
    p = tmp_path / "la.png"
    la = np.zeros((3, 3, 2), np.uint8)
    la[..., 1] = 128  # black at 50 % alpha over white -> mid grey
    Image.fromarray(la, "LA").save(p)
    a = read_image(p)
    assert abs(int(a[1, 1, 0]) - 127) <= 1 and (a == a[..., :1]).all()


def test_palette(zoo):
    good, _ = zoo
    im = Image.open(good["palette"])
    assert im.mode == "P"
    a = read_image(good["palette"])
    _check_rgb(a, im.size[::-1])
    assert (a == np.asarray(im.convert("RGB"))).all()
    assert np.unique(a.reshape(-1, 3), axis=0).shape[0] > 4  # real colours, not one index


def test_palette_with_transparency(tmp_path):
    p = tmp_path / "pt.png"
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.putpixel((0, 0), 0)
    im.save(p, transparency=0)
    a = read_image(p)
    assert tuple(a[0, 0]) == (255, 255, 255) and tuple(a[2, 2]) == (255, 0, 0)


def test_cmyk_jpeg(zoo):
    good, _ = zoo
    assert Image.open(good["cmyk"]).mode == "CMYK"
    a = read_image(good["cmyk"])
    _check_rgb(a, (24, 32))
    r, g, b = (int(v) for v in a[12, 16])
    assert r > 230 and g < 25 and b < 25  # C=0 M=1 Y=1 K=0 is red


def test_exif_orientation_is_applied(zoo):
    good, _ = zoo
    assert Image.open(good["exif"]).size == (40, 20)  # stored landscape
    a = read_image(good["exif"])
    _check_rgb(a, (40, 20))  # displayed portrait
    # Orientation 6 = rotate 90 deg clockwise: the stored top-left goes to the top-right.
    r, g, b = (int(v) for v in a[2, 17])
    assert r > 200 and g < 60 and b < 60
    assert a[2, 2].min() > 200 and a[37, 2].min() > 200 and a[37, 17].min() > 200


def test_one_pixel(zoo):
    good, _ = zoo
    a = read_image(good["one"])
    _check_rgb(a, (1, 1))
    assert tuple(a[0, 0]) == (10, 20, 30)


def test_real_photo_matches_pillow(photo_paths):
    p = photo_paths[0]
    a = read_image(p)
    ref = np.asarray(Image.open(p).convert("RGB"))
    assert (a == ref).all()


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    "name, words",
    [
        ("empty", ["empty", "0 bytes"]),
        ("truncated", ["truncated"]),
        ("text", ["not an image", "text", "hello"]),
        ("huge", ["50000x50000", "limit", "max-pixels", MAX_PIXELS_ENV]),
    ],
)
def test_bad_file_error_names_file_and_reason(zoo, name, words):
    _, bad = zoo
    with pytest.raises(ImageReadError) as ei:
        read_image(bad[name])
    msg = str(ei.value)
    assert str(bad[name]) in msg
    for w in words:
        assert w in msg, msg
    assert isinstance(ei.value, ValueError)


def test_truncated_jpeg_refused_even_if_pillow_is_lenient(zoo):
    _, bad = zoo
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(ImageReadError, match="truncated"):
            read_image(bad["truncated"])
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)


def test_pixel_limit_argument_and_env(zoo, monkeypatch):
    good, _ = zoo
    with pytest.raises(ImageReadError, match=r"40x48|48x40") as ei:
        read_image(good["gray"], max_pixels=1000)
    assert "1000 pixels" in str(ei.value) and str(good["gray"]) in str(ei.value)
    assert read_image(good["gray"], max_pixels=48 * 40).shape == (40, 48, 3)  # the limit is inclusive
    monkeypatch.setenv(MAX_PIXELS_ENV, "100")
    assert max_pixels_limit() == 100
    with pytest.raises(ImageReadError, match="over the limit"):
        read_image(good["gray"])
    assert read_image(good["gray"], max_pixels=10_000).shape == (40, 48, 3)  # argument wins
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match=MAX_PIXELS_ENV):
        max_pixels_limit()
    monkeypatch.delenv(MAX_PIXELS_ENV)
    assert max_pixels_limit() == DEFAULT_MAX_PIXELS


def test_huge_header_is_refused_without_decoding(zoo):
    """The 2.5-gigapixel header is refused from the header alone (decoding needs 7.5 GB).

    Runs in a fresh interpreter and checks its peak RSS; without the header check the same call
    reaches ~2.6 GB before failing with MemoryError.
    """
    import subprocess
    import sys

    _, bad = zoo
    code = (
        "import sys\n"
        "from advseg_sdk.imageio import read_image, ImageReadError\n"
        "for limit in (None, 1_000_000_000):\n"  # 1 G is above Pillow's own bomb threshold
        "    try:\n"
        "        read_image(sys.argv[1], max_pixels=limit)\n"
        "        print('NO ERROR')\n"
        "    except ImageReadError as e:\n"
        "        print('ERR', e)\n"
        # VmHWM is this address space's peak; ru_maxrss would carry the forking parent's peak over exec.
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print('MAXRSS_KB', hwm)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(bad["huge"])], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [ln.split()[0] for ln in lines[:2]] == ["ERR", "ERR"], out.stdout
    assert all("over the limit" in ln and "50000x50000" in ln for ln in lines[:2])
    maxrss_mb = int(lines[2].split()[1]) / 1024
    assert maxrss_mb < 400, f"peak RSS {maxrss_mb:.0f} MB: the image was decoded"


# --------------------------------------------------------------------------- to_rgb_uint8


def test_to_rgb_uint8_arrays():
    g = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert (to_rgb_uint8(g) == g[..., None]).all()
    assert (to_rgb_uint8(g[..., None]) == g[..., None]).all()
    rgb = np.random.default_rng(0).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    assert (to_rgb_uint8(rgb) == rgb).all()
    assert (to_rgb_uint8(rgb[..., ::-1], bgr=True) == rgb).all()
    assert (to_rgb_uint8(rgb.astype(np.uint16) * 257) == rgb).all()
    assert (to_rgb_uint8(rgb.astype(np.float32) / 255) == rgb).all()
    rgba = np.concatenate([rgb, np.zeros((3, 4, 1), np.uint8)], axis=2)
    assert (to_rgb_uint8(rgba) == 255).all()  # fully transparent -> white
    rgba[..., 3] = 255
    assert (to_rgb_uint8(rgba) == rgb).all()
    assert (to_rgb_uint8(np.ones((2, 2), bool)) == 255).all()


def test_to_rgb_uint8_pil_and_path(zoo):
    good, _ = zoo
    assert (to_rgb_uint8(Image.open(good["rgba"])) == read_image(good["rgba"])).all()
    assert (to_rgb_uint8(str(good["cmyk"])) == read_image(good["cmyk"])).all()
    assert to_rgb_uint8(good["gray16"]).shape == (40, 48, 3)
    assert (to_rgb_uint8(Image.open(good["exif"])) == read_image(good["exif"])).all()  # upright too


@pytest.mark.parametrize(
    "arr, words",
    [
        (np.zeros((4, 4, 2), np.uint8), ["(4, 4, 2)"]),
        (np.zeros((2, 4, 4, 3), np.uint8), ["(2, 4, 4, 3)"]),
        (np.zeros((5,), np.uint8), ["(5,)"]),
        (np.zeros((0, 4, 3), np.uint8), ["empty"]),
        (np.zeros((4, 4, 3), np.int64), ["int64"]),
        (np.full((4, 4, 3), 2.0, np.float32), ["[0, 1]", "2"]),
        (np.full((4, 4), np.nan, np.float64), ["[0, 1]"]),
    ],
)
def test_to_rgb_uint8_errors_name_shape_or_dtype(arr, words):
    with pytest.raises(ImageReadError) as ei:
        to_rgb_uint8(arr)
    for w in words:
        assert w in str(ei.value), str(ei.value)


def test_to_rgb_uint8_wrong_type():
    with pytest.raises(ImageReadError, match="dict"):
        to_rgb_uint8({"not": "an image"})


# --------------------------------------------------------------------------- write_image


def test_write_image_roundtrip_and_atomic(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    out = write_image(tmp_path / "sub" / "x.png", rgb)
    assert (read_image(out) == rgb).all()
    gray = rgb[..., 0].copy()
    assert (read_image(write_image(tmp_path / "g.png", gray))[..., 0] == gray).all()
    jpg = write_image(tmp_path / "x.jpg", rgb, quality=95)
    assert Image.open(jpg).format == "JPEG"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["g.png", "x.jpg", "x.png"]
    import os

    mask = os.umask(0)
    os.umask(mask)
    assert (out.stat().st_mode & 0o777) == 0o666 & ~mask  # not mkstemp's private 0600


def test_write_image_refuses_bad_input_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="suffix"):
        write_image(tmp_path / "x.unknown", np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="float32"):
        write_image(tmp_path / "x.png", np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match=r"\(2, 2, 2\)"):
        write_image(tmp_path / "x.png", np.zeros((2, 2, 2), np.uint8))
    # an existing output is replaced only by a complete file
    target = tmp_path / "keep.jpg"
    write_image(target, np.zeros((3, 3), np.uint8))
    before = target.read_bytes()
    with pytest.raises(ValueError, match="quality"):
        write_image(target, np.full((3, 3, 3), 9, np.uint8), quality="best")  # fails inside the save
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.jpg"]
