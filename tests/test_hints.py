"""Colour hints end to end: a tiny hint generator exported through the real export API, the bundle
declaring its hint input, the torch-free SDK rendering, padding and tiling hints, every bad-hint
error, `advseg colorize --hint/--hints` and `advseg-eval colour --hints` as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_bundle import export_onnx, make_bundle, sketch_from_photo, tiny_resnet

from advseg_sdk.bundle import HintSpec, load_bundle, validate_manifest
from advseg_sdk.colorizer import Colorizer, Pipeline
from advseg_sdk.hints import Hint, HintError, HintSet, parse_colour, parse_hint_text, parse_hints

BIN = Path(sys.executable).parent
HINT_INPUT = {"channels": 4, "encoding": "rgb-mask", "point_radius": 2}


# --------------------------------------------------------------------------- bundles


@pytest.fixture(scope="module")
def hint_bundle(tmp_path_factory) -> Path:
    """resnet_6blocks, ngf 4, hint_nc 4 -> our safetensors -> advseg_export.export_generator (fp32 + int8)."""
    import torch

    from advseg_export.api import export_generator
    from advseg_train.networks import build_generator, save_generator

    torch.manual_seed(11)
    net = build_generator(dict(arch="resnet_6blocks", ngf=4, hint_nc=4))
    assert net.config.in_channels == 7
    root = tmp_path_factory.mktemp("hints")
    ckpt = root / "g.safetensors"
    save_generator(net, ckpt)
    return export_generator(
        ckpt, root / "hinted.advseg", precisions=("fp32", "int8"), calib_count=4, allow_degraded=True
    )


def _local_hint_net(seed: int = 3):
    """A small fully convolutional 7-channel net without normalisation (receptive-field radius
    about 6 px), so tiling with overlap 32 reproduces the untiled output exactly."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(7, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 3, 3, padding=1),
        nn.Tanh(),
    ).eval()
    with torch.no_grad():
        net[0].weight[:, 3:].mul_(6.0)  # make the hint channels count
        net[6].weight.mul_(8.0)
    return net


def local_hint_bundle(root: Path, seed: int = 3, name: str = "local") -> Path:
    """:func:`_local_hint_net` exported (3 + 4 input channels, dynamic N/H/W) as a hint bundle."""
    import torch

    path = root / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _local_hint_net(seed),
            torch.zeros(1, 7, 32, 32),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "h", 3: "w"}},
        )
    spec = {"name": "input", "layout": "NCHW", "channels": 3, "color": "RGB", "range": [-1, 1]}
    spec.update(size_multiple=2, min_size=2, hints=HINT_INPUT)
    arch = {"name": "test_local", "args": {}}
    return make_bundle(root / f"{name}.advseg", {"fp32": path}, input_spec=spec, arch=arch)


@pytest.fixture(scope="module")
def local_bundle(tmp_path_factory) -> Path:
    return local_hint_bundle(tmp_path_factory.mktemp("local_hints"))


@pytest.fixture(scope="module")
def sketch(photo_paths) -> np.ndarray:
    return sketch_from_photo(photo_paths[0], long_side=90)  # (H, W), not a multiple of 4


class InputRecorder:
    """Wraps a real runner and keeps every batch it is given."""

    def __init__(self, inner):
        self.inner = inner
        self.batches: list[np.ndarray] = []
        for name in ("label", "providers", "input_name", "input_dtype", "max_batch", "max_hw", "min_hw"):
            setattr(self, name, getattr(inner, name))

    def run(self, x: np.ndarray) -> np.ndarray:
        self.batches.append(x.copy())
        return self.inner.run(x)


# --------------------------------------------------------------------------- export and bundle


def test_export_declares_hints_and_the_graph_takes_seven_channels(hint_bundle: Path):
    import onnx

    manifest = json.loads((hint_bundle / "manifest.json").read_text())
    assert manifest["input"]["hints"] == HINT_INPUT
    assert manifest["input"]["channels"] == 3  # the sketch
    for f in ("model.fp32.onnx", "model.int8.onnx"):
        dims = onnx.load(str(hint_bundle / f)).graph.input[0].type.tensor_type.shape.dim
        assert dims[1].dim_value == 7, f
        assert not dims[2].dim_value and not dims[3].dim_value  # dynamic H, W
    parity = manifest["parity"]
    assert parity["model.fp32.onnx"]["input_shape"][1] == 7 and parity["model.fp32.onnx"]["psnr"] > 60
    assert "random hint squares" in parity["model.fp32.onnx"]["hints"]
    calib = next(a for a in manifest["artefacts"] if a["precision"] == "int8")["quantization"]["calibration"]
    assert calib["count"] == 4 and "zero hints" in calib["hints"]
    b = load_bundle(hint_bundle)
    assert b.input_spec.hints == HintSpec(channels=4, encoding="rgb-mask", point_radius=2)
    assert b.input_spec.graph_channels == 7
    col = Colorizer(b, precision="int8")
    assert col.accepts_hints
    assert col.colorize(np.full((24, 28), 255, np.uint8), hints=[(3, 4, "#ff0000")]).shape == (24, 28, 3)


@pytest.fixture(scope="module")
def plain_bundle(tmp_path_factory) -> Path:
    """A bundle from before hints: a 3-channel graph and no ``hints`` in its manifest."""
    root = tmp_path_factory.mktemp("plain")
    onnx_path = export_onnx(tiny_resnet(seed=2), root / "g.onnx")
    return make_bundle(root / "plain-sketch2color.advseg", {"fp32": onnx_path})


def test_old_bundles_load_and_refuse_hints_by_name(plain_bundle: Path, sketch):
    from advseg_sdk.bundle import default_bundle_path

    b = load_bundle(plain_bundle)
    assert b.input_spec.hints is None and b.input_spec.graph_channels == 3
    col = Colorizer(plain_bundle)
    assert not col.accepts_hints
    assert col.colorize(sketch).shape == (*sketch.shape, 3)
    named = r"bundle 'plain-sketch2color' \(.*plain-sketch2color.advseg\) takes no colour hints"
    with pytest.raises(HintError, match=named):
        col.colorize(sketch, hints=[(3, 4, "#ff0000")])
    with pytest.raises(HintError, match="takes no colour hints"):
        col.colorize([sketch, sketch], hints=[None, [(1, 1, "#00ff00")]])
    assert len(col.colorize([sketch, sketch], hints=[None, None])) == 2
    with pytest.raises(HintError, match="takes no colour hints"):
        Pipeline(plain_bundle, sketch="xdog").run(np.zeros((40, 50, 3), np.uint8), hints=[(1, 1, "#00ff00")])
    # the schema: an explicit null is no hint input; a bad hint object is refused
    good = json.loads((plain_bundle / "manifest.json").read_text())
    validate_manifest({**good, "input": {**good["input"], "hints": None}})
    from advseg_sdk.bundle import BundleError

    with pytest.raises(BundleError, match="hints"):
        validate_manifest({**good, "input": {**good["input"], "hints": {"channels": 2, "encoding": "rgb-mask"}}})
    assert default_bundle_path("demo-sketch2color").name == "demo-sketch2color.advseg"


def test_the_embedded_default_colours_a_hinted_region_and_leaves_the_rest():
    """One red (or blue) dot inside a drawn square turns the square red (blue) once the SDK spreads
    it over the square; as given (hint_spread none) the colour lands only at the dot. The area far
    outside changes little either way."""
    from advseg_sdk.bundle import packaged_bundle_dir

    bundle = packaged_bundle_dir() / "demo-sketch2color.advseg"
    spread, local = Colorizer(bundle), Colorizer(bundle, hint_spread="none")
    assert spread.accepts_hints and spread.hint_spread == "region"
    sketch = np.full((256, 256), 255, np.uint8)
    sketch[64:68, 64:192] = sketch[188:192, 64:192] = 0
    sketch[64:192, 64:68] = sketch[64:192, 188:192] = 0
    plain = spread.colorize(sketch).astype(np.float32)
    square, dot, far = (slice(80, 176), slice(80, 176)), (slice(126, 131), slice(126, 131)), slice(0, 24)
    for colour, channel in (("#e02020", 0), ("#2040e0", 2)):
        others = [c for c in range(3) if c != channel]
        filled = spread.colorize(sketch, hints=[(128, 128, colour)]).astype(np.float32)
        mean = filled[square].reshape(-1, 3).mean(0)
        assert mean[channel] - mean[others].max() > 25, (colour, mean)
        dotted = local.colorize(sketch, hints=[(128, 128, colour)]).astype(np.float32)
        at = dotted[dot].reshape(-1, 3).mean(0)
        assert at[channel] - at[others].max() > 40, (colour, at)
        corner = dotted[(slice(84, 92), slice(84, 92))].reshape(-1, 3).mean(0)
        assert corner[channel] - corner[others].max() < 25, (colour, corner)  # not spread
        for out in (filled, dotted):
            assert abs(out[far, far] - plain[far, far]).mean() < 35


def test_zero_hints_are_no_hints(hint_bundle: Path, sketch):
    col = Colorizer(hint_bundle, precision="fp32")
    none = col.colorize(sketch)
    transparent = np.zeros((*sketch.shape, 4), np.uint8)
    transparent[..., :3] = 200  # colour without alpha is no hint
    for hints in ([], transparent):
        assert np.array_equal(col.colorize(sketch, hints=hints), none)
    rec = col.runner = InputRecorder(col.runner)
    col.colorize(sketch)
    assert rec.batches[0].shape[1] == 7 and not rec.batches[0][:, 3:].any()  # zeros fed


def test_points_are_squares_at_the_network_resolution_and_padding_has_no_hints(hint_bundle: Path, sketch):
    col = Colorizer(hint_bundle, precision="fp32", hint_spread="none")
    rec = col.runner = InputRecorder(col.runner)
    h, w = sketch.shape  # padded to a multiple of 4 by reflection
    y, x = h - 1, w - 2  # at the bottom-right corner: reflection would mirror it into the padding
    out = col.colorize(sketch, hints=[(x, y, (255, 0, 0))])
    (batch,) = rec.batches
    ph, pw = batch.shape[2:]
    assert (ph, pw) == (-(-h // 4) * 4, -(-w // 4) * 4) and (ph, pw) != (h, w)
    mask = batch[0, 6]
    ys, xs = np.nonzero(mask)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (y - 2, min(y + 2, ph - 1), x - 2, min(x + 2, pw - 1))
    assert np.allclose(batch[0, 3:6, y, x], [1.0, -1.0, -1.0])  # red in [-1, 1], times the mask
    assert not batch[0, 3:, h + 2 :].any() and not batch[0, 3:, :, w + 2 :].any()  # nothing mirrored
    sk = batch[0, 0]
    assert np.array_equal(sk[h:], sk[h - 2 : 2 * h - ph - 2 : -1])  # the sketch itself is reflected
    assert np.abs(out.astype(int) - col.colorize(sketch)).max() > 0


def test_render_scales_points_and_keeps_thin_scribble_strokes():
    hs = HintSet((100, 200), points=(Hint(101, 51, "#00ff00"),))
    planes = hs.render((50, 100))  # half the size
    ys, xs = np.nonzero(planes[..., 3])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (23, 27, 48, 52)  # side 5 around (25, 50)
    assert np.allclose(planes[25, 50, :3], [-1, 1, -1])
    scribble = np.zeros((400, 400, 4), np.uint8)
    scribble[100, 40:360] = (0, 0, 255, 255)  # a 1-px stroke
    planes = parse_hints(scribble, (400, 400)).render((100, 100))  # type: ignore[union-attr]
    rows = np.nonzero(planes[..., 3].any(1))[0]
    assert list(rows) == [25] and planes[25, 10:90, 3].all()
    assert np.allclose(planes[25, 10:90, :3], [-1, -1, 1])  # the colour survives the area resize
    # a window past the image (padding) gets nothing; scaled() keeps points on their pixels
    assert not parse_hints(scribble, (400, 400)).render((8, 8), window=(400, 0, 8, 8)).any()  # type: ignore[union-attr]
    moved = HintSet((10, 20), points=(Hint(19, 9, "#000000"),)).scaled((20, 40))
    assert moved.size == (20, 40) and (moved.points[0].x, moved.points[0].y) == (38.5, 18.5)


def test_a_hint_changes_the_output_near_it_tiled_as_untiled(local_bundle: Path, sketch):
    """Receptive-field radius ~6 px <= overlap // 4: tiled == untiled, hints included, and a hint
    only changes pixels within that radius of its square."""
    rgb = np.repeat(np.tile(sketch, (2, 3))[..., None], 3, axis=2)[:150, :250]
    whole_col = Colorizer(local_bundle)
    tiled_col = Colorizer(local_bundle, tile=64, tile_overlap=32, max_batch=3)
    assert len(tiled_col.tile_plan(*rgb.shape[:2])) > 4
    hints = [(70, 40, "#ff8800"), (119, 100, (10, 200, 30))]  # the second one in a tile overlap
    base = whole_col.colorize(rgb)
    whole = whole_col.colorize(rgb, hints=hints)
    tiled = tiled_col.colorize(rgb, hints=hints)
    assert np.abs(tiled.astype(int) - whole).max() <= 1
    assert np.abs(tiled_col.colorize(rgb).astype(int) - base).max() <= 1
    changed = np.abs(whole.astype(int) - base).max(2) > 0
    ys, xs = np.nonzero(changed)
    assert changed[40, 70] and changed[100, 119]
    near = np.minimum(np.maximum(abs(ys - 40), abs(xs - 70)), np.maximum(abs(ys - 100), abs(xs - 119)))
    assert near.max() <= 2 + 8  # square half-side + receptive field


def test_a_hint_changes_the_exported_generator_output_tiled_and_untiled(hint_bundle: Path, sketch):
    col = Colorizer(hint_bundle, precision="fp32")
    tiled = Colorizer(hint_bundle, precision="fp32", tile=48, tile_overlap=16)
    assert tiled.tile_plan(*sketch.shape)
    hints = [(20, 30, "#ff0000"), (60, 10, "#0000ff")]
    for c in (col, tiled):
        base, hinted = c.colorize(sketch).astype(int), c.colorize(sketch, hints=hints).astype(int)
        diff = np.abs(hinted - base).max(2)
        assert diff.max() > 0
        assert diff[25:36, 15:26].mean() > 0  # where the hint is
    # batches of mixed sizes carry their own hints
    small = sketch[:40, :50]
    outs = col.colorize([sketch, small], hints=[hints, None])
    assert np.array_equal(outs[0], col.colorize(sketch, hints=hints)) and np.array_equal(outs[1], col.colorize(small))


def test_scribble_png_array_and_points_forms(hint_bundle: Path, sketch, tmp_path: Path):
    col = Colorizer(hint_bundle, precision="fp32", hint_spread="none")
    h, w = sketch.shape
    scribble = np.zeros((h, w, 4), np.uint8)
    scribble[28:33, 18:23] = (255, 0, 0, 255)
    png = tmp_path / "scribble.png"
    Image.fromarray(scribble, "RGBA").save(png)
    from_array = col.colorize(sketch, hints=scribble)
    assert np.array_equal(col.colorize(sketch, hints=str(png)), from_array)
    assert np.array_equal(col.colorize(sketch, hints=png), from_array)
    # the same hint as a point (a 5x5 square centred on it)
    assert np.array_equal(col.colorize(sketch, hints=[Hint(20, 30, "#FF0000")]), from_array)
    assert np.array_equal(col.colorize(sketch, hints=[(20.0, 30.0, (255, 0, 0))]), from_array)


def test_bad_hints_raise_hint_errors_by_name(hint_bundle: Path, sketch, tmp_path: Path):
    col = Colorizer(hint_bundle, precision="fp32")
    h, w = sketch.shape
    rgb_png, text_png = tmp_path / "rgb.png", tmp_path / "text.png"
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(rgb_png)
    text_png.write_text("not an image")
    cases = [
        ([(w, 3, "#ff0000")], rf"hints\[0\] at \({w}, 3\) is outside the {w}x{h} image"),
        ([(1, 1, "#ff0000"), (-1, 3, "#ff0000")], r"hints\[1\] at \(-1, 3\) is outside"),
        ([(1, 1, "#ggg000")], r"hints\[0\]: colour '#ggg000' is not #RRGGBB"),
        ([(1, 1, "red")], r"colour 'red' is not #RRGGBB"),
        ([(1, 1, (300, 0, 0))], r"colour \(300, 0, 0\) must be three integers 0-255"),
        ([(1, "a", "#ff0000")], r"hints\[0\]: y = 'a' is not a number"),
        ([(1, 2)], r"hints\[0\]: \(1, 2\) is not a point"),
        (np.zeros((h + 1, w, 4), np.uint8), rf"scribble is {w}x{h + 1} \(WxH\) but the image is {w}x{h}"),
        (np.zeros((h, w, 3), np.uint8), r"must be an RGBA uint8 array"),
        (np.zeros((h, w, 4), np.float32), r"must be an RGBA uint8 array"),
        (str(rgb_png), rf"{rgb_png}.*has no alpha channel"),
        (text_png, rf"{text_png}: cannot read it"),
        (tmp_path / "missing.png", r"missing.png: cannot read it"),
        (42, r"int is not a hint form"),
    ]
    for hints, message in cases:
        with pytest.raises(HintError, match=message):
            col.colorize(sketch, hints=hints)
    assert issubclass(HintError, ValueError)
    with pytest.raises(HintError, match=r"input 1 hints\[0\] at"):
        col.colorize([sketch, sketch], hints=[None, [(w + 5, 0, "#ffffff")]])
    with pytest.raises(HintError, match="one entry per image"):
        col.colorize([sketch, sketch], hints=[[(1, 1, "#ffffff")]])
    with pytest.raises(HintError, match="is not X,Y,#RRGGBB"):
        parse_hint_text("3,4")
    assert parse_colour("#0a0B0c") == (10, 11, 12)
    from advseg_sdk import HintError as Exported

    assert Exported is HintError


def test_pipeline_maps_photo_hints_to_the_working_scale(hint_bundle: Path, photo_paths):
    from advseg_sdk.imageio import read_image

    photo = read_image(photo_paths[1])
    pipe = Pipeline(hint_bundle, sketch="xdog", work_short_side=48, hint_spread="none")
    ph, pw = photo.shape[:2]
    wh, ww = pipe.work_size((ph, pw))
    assert min(wh, ww) == 48
    rec = pipe.colorizer.runner = InputRecorder(pipe.colorizer.runner)
    x, y = pw // 2, ph // 3
    sketch, colour = pipe.run(photo, hints=[(x, y, "#00ff00")])
    assert sketch.shape == (ph, pw) and colour.shape == (ph, pw, 3)
    mask = rec.batches[-1][0, 6]
    ys, xs = np.nonzero(mask)
    cy, cx = int((y + 0.5) * wh / ph), int((x + 0.5) * ww / pw)  # the point's pixel at the working scale
    assert (ys.min() + 2, xs.min() + 2) == (cy, cx) and mask.sum() == 25
    assert not np.array_equal(colour, pipe.run(photo).color)
    with pytest.raises(HintError, match=r"hints\[0\] at .* is outside"):
        pipe.run(photo, hints=[(pw, 0, "#00ff00")])
    several = pipe.run([photo, photo], hints=[[(x, y, "#00ff00")], None])
    assert np.array_equal(several[0].color, colour)


# --------------------------------------------------------------------------- command lines


def _advseg(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "advseg"), *map(str, args)], capture_output=True, text=True, timeout=180)


def test_colorize_cli_hint_options(hint_bundle: Path, plain_bundle: Path, sketch, tmp_path: Path):
    src = tmp_path / "in" / "sketch.png"
    src.parent.mkdir()
    Image.fromarray(sketch).save(src)
    h, w = sketch.shape
    common = ("--bundle", hint_bundle, "--precision", "fp32", "-q")
    plain = _advseg("colorize", src, "-o", tmp_path / "plain", *common)
    assert plain.returncode == 0, plain.stderr
    hinted = _advseg(
        "colorize", src, "-o", tmp_path / "hinted", *common, "--hint", "3,4,#ff0000", "--hint", "40,30,#00ff00"
    )
    assert hinted.returncode == 0, hinted.stderr
    a = np.asarray(Image.open(tmp_path / "plain" / "sketch.png"))
    b = np.asarray(Image.open(tmp_path / "hinted" / "sketch.png"))
    col = Colorizer(hint_bundle, precision="fp32")
    assert np.array_equal(b, col.colorize(sketch, hints=[(3, 4, "#ff0000"), (40, 30, "#00ff00")]))
    assert not np.array_equal(a, b)
    scribble = np.zeros((h, w, 4), np.uint8)
    scribble[2:7, 1:6] = (255, 0, 0, 255)
    Image.fromarray(scribble, "RGBA").save(tmp_path / "s.png")
    Image.fromarray(scribble[:-1]).save(tmp_path / "small.png")
    Image.fromarray(scribble[..., :3]).save(tmp_path / "rgb.png")
    ok = _advseg("colorize", src, "-o", tmp_path / "scribbled", *common, "--hints", tmp_path / "s.png")
    assert ok.returncode == 0, ok.stderr
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "scribbled" / "sketch.png")), col.colorize(sketch, hints=scribble)
    )

    def usage(*args: object, match: str) -> None:
        proc = _advseg("colorize", *args, *common)
        assert proc.returncode == 2, (args, proc.stderr)
        assert match in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr

    usage(src, src, "-o", tmp_path / "x", "--hint", "3,4,#ff0000", match="need a single input image")
    usage(src.parent, "-o", tmp_path / "x", "--hint", "3,4,#ff0000", match="need a single input image")
    usage(src, "-o", tmp_path / "x", "--hint", "3,4,#zz0000", match="'--hint'")
    usage(src, "-o", tmp_path / "x", "--hint", "3;4", match="is not X,Y,#RRGGBB")
    usage(src, "-o", tmp_path / "x", "--hint", f"{w},4,#ff0000", match=f"outside the {w}x{h} input image")
    usage(src, "-o", tmp_path / "x", "--hints", tmp_path / "rgb.png", match="no alpha channel")
    usage(src, "-o", tmp_path / "x", "--hints", tmp_path / "small.png", match="'--hints'")
    usage(src, "-o", tmp_path / "x", "--hints", tmp_path / "nope.png", match="'--hints'")
    usage(src, "-o", tmp_path / "x", "--hints", tmp_path / "s.png", "--hint", "1,1,#ffffff", match="not both")
    old = subprocess.run(
        [
            str(BIN / "advseg"),
            "colorize",
            src,
            "-o",
            tmp_path / "old",
            "--bundle",
            plain_bundle,
            "--hint",
            "3,4,#ff0000",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert old.returncode == 1 and "takes no colour hints" in old.stderr and "Traceback" not in old.stderr
    info = _advseg("info", hint_bundle)
    assert info.returncode == 0 and "hints      4ch rgb-mask" in info.stdout


def test_sample_hints_are_seeded_by_name_and_take_the_working_scale_colour():
    from advseg_eval.colour import sample_hints

    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    a, b = sample_hints(photo, 5, "a.png"), sample_hints(photo, 5, "a.png")
    assert a == b and sample_hints(photo, 5, "b.png") != a
    for p in a:
        x, y = int(p.x), int(p.y)
        patch = photo[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3].reshape(-1, 3).mean(0)
        assert np.abs(np.asarray(p.rgb) - patch).max() <= 0.5
    half = sample_hints(photo, 5, "a.png", (30, 40))
    assert [(p.x, p.y) for p in half] == [(p.x, p.y) for p in a]  # positions in the photo's pixels


@pytest.mark.real_assets
def test_eval_colour_with_hints_scores_old_and_new_models_side_by_side(
    hint_bundle: Path, plain_bundle: Path, photo_paths, tmp_path
):
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in photo_paths[:2]:
        im = Image.open(p).convert("RGB")
        im.thumbnail((96, 96))
        im.save(photos / f"{p.stem}.png")

    def run(out: Path, *extra: str) -> subprocess.CompletedProcess:
        cmd = [str(BIN / "advseg-eval"), "colour", "--photos", str(photos), "--sketch", "xdog", "--out", str(out)]
        cmd += ["--threads", "1", "--eval-size", "96", *extra]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ})

    hinted = run(
        tmp_path / "h", "--bundle", f"hinted={hint_bundle}", "--bundle", f"embedded={plain_bundle}", "--hints", "3"
    )
    assert hinted.returncode == 0, hinted.stderr[-2000:]
    summary = json.loads((tmp_path / "h" / "summary.json").read_text())
    assert summary["hints"] == {
        "per_photo": 3,
        "hinted": ["hinted"],
        "unhinted": ["embedded"],
        "spread": {"hinted": "region"},
    }
    report = (tmp_path / "h" / "report.md").read_text()
    assert "Colour hints: 3 points per photo" in report and "embedded: takes no hints" in report
    assert "hinted: hints spread over their sketch regions." in report
    sheet = np.asarray(Image.open(tmp_path / "h" / "hints_sheet.png"))
    assert sheet.shape[1] == 256 * 5  # sketch | hints | hinted | embedded | photo
    # the model without hints is scored exactly as without --hints
    plain = run(tmp_path / "p", "--bundle", f"embedded={plain_bundle}")
    assert plain.returncode == 0, plain.stderr[-2000:]
    before = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert before["methods"]["embedded"] == summary["methods"]["embedded"]
    assert "hints" not in before and not (tmp_path / "p" / "hints_sheet.png").exists()
    assert "Colour hints" not in (tmp_path / "p" / "report.md").read_text()
