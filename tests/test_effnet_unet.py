"""The pretrained-encoder generator and what trains it: effnet_unet with the real ImageNet
EfficientNet-Lite0 weights, colour hints drawn from photos, sketch styles, the colour losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata

from advseg_sdk.assets import asset_path
from advseg_train.archs import GENERATORS, GeneratorConfig
from advseg_train.colour_losses import PerceptualLoss, chroma_loss, rgb_to_lab
from advseg_train.config import ConfigError, resolve_config
from advseg_train.effnet_unet import EfficientNetLite0Encoder, load_lite0_weights
from advseg_train.hints import HintSampler
from advseg_train.networks import build_generator, load_generator, load_pretrained_encoder, save_generator
from advseg_train.sketch_styles import SKETCH_STYLES, parse_styles, stylise
from advseg_train.trainer import train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def lite0_weights():
    path = asset_path("efficientnet-lite0")  # fetched by scripts/test.sh
    return torch.load(path, map_location="cpu", weights_only=True)


def _tiny(**kw):
    return build_generator(GeneratorConfig(arch="effnet_unet", ngf=8, norm="none", **kw), init_type="kaiming")


def test_effnet_unet_is_fully_convolutional_on_multiples_of_32():
    arch = GENERATORS["effnet_unet"]
    assert arch.size_multiple == 32 and arch.fixed_size is None and arch.pretrained_encoder == "efficientnet-lite0"
    net = _tiny().eval()
    with torch.no_grad():
        for h, w in ((64, 96), (96, 64)):
            y = net(torch.zeros(1, 3, h, w))
            assert y.shape == (1, 3, h, w)
            assert float(y.abs().max()) <= 1.0
    with pytest.raises(ValueError, match="multiples of 32"):
        net(torch.zeros(1, 3, 48, 64))


def test_decoder_has_no_transposed_convolutions():
    net = _tiny()
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())


def _classify(encoder: EfficientNetLite0Encoder, sd, rgb: np.ndarray) -> int:
    x = torch.from_numpy(np.asarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
    x = (F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True) - 127.0) / 128.0
    with torch.no_grad():
        f = encoder(x)[-1]
        h = F.conv2d(f, sd["_conv_head.weight"])
        mean, var = sd["_bn1.running_mean"], sd["_bn1.running_var"]
        h = F.batch_norm(h, mean, var, sd["_bn1.weight"], sd["_bn1.bias"], eps=1e-3)
        logits = F.linear(F.relu6(h).mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"])
    return int(logits.argmax())


def test_the_real_imagenet_weights_recognise_real_photos(lite0_weights):
    """The port is right: with the file's own head, the encoder names a cat and an espresso."""
    encoder = EfficientNetLite0Encoder(3).eval()
    unused = load_lite0_weights(encoder, lite0_weights)
    assert set(unused) == {k for k in lite0_weights if k.startswith(("_conv_head", "_bn1", "_fc"))}
    assert _classify(encoder, lite0_weights, skdata.chelsea()) in range(281, 286)  # ImageNet cats
    assert _classify(encoder, lite0_weights, skdata.coffee()) in (967, 968)  # espresso, cup


def test_hint_channels_start_at_zero_so_hints_change_nothing_before_training(lite0_weights):
    net = _tiny(hint_nc=4)
    load_lite0_weights(net.encoder, lite0_weights)
    stem = net.encoder._conv_stem.weight.detach()
    assert stem.shape[1] == 7
    assert torch.equal(stem[:, :3], lite0_weights["_conv_stem.weight"])
    assert float(stem[:, 3:].abs().max()) == 0.0


def test_pretrained_encoder_only_for_architectures_that_have_one():
    with pytest.raises(ValueError, match="no pretrained encoder"):
        load_pretrained_encoder(build_generator(GeneratorConfig(arch="resnet_6blocks", ngf=4)), "x.pth")


def test_effnet_unet_round_trips_through_safetensors_and_a_bare_state_dict(tmp_path):
    net = _tiny(hint_nc=4).eval()
    save_generator(net, tmp_path / "g.safetensors")
    loaded = load_generator(tmp_path / "g.safetensors")
    assert loaded.config == net.config and loaded.source_layout == "effnet_unet"
    bare = load_generator(net.state_dict())  # the architecture inferred from the weights
    assert bare.config.hint_nc == 4 and bare.config.ngf == 8 and bare.config.norm == "none"
    x = torch.rand(1, 7, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x)) and torch.equal(bare(x), net(x))


def test_hint_channels_are_checked():
    with pytest.raises(ValueError, match="hint_nc"):
        GeneratorConfig(arch="effnet_unet", hint_nc=3)


def test_hint_sampler_colours_hints_with_the_photo_and_can_give_none():
    photo = torch.zeros(3, 64, 64)
    photo[0] = 1.0  # pure red in [-1, 1]: (1, 0, 0) -> R=1, G=B=0 (mid)
    sampler = HintSampler(p_none=0.0)
    hints = sampler(photo, np.random.default_rng(1))
    mask = hints[3] > 0
    assert mask.any()
    assert torch.allclose(hints[:3, mask], photo[:, mask])
    assert float(hints[:3, ~mask].abs().max()) == 0.0
    none = HintSampler(p_none=1.0)(photo, np.random.default_rng(1))
    assert float(none.abs().max()) == 0.0
    again = sampler(photo, np.random.default_rng(1))
    assert torch.equal(hints, again)  # deterministic for one generator state


def test_sketch_styles_draw_lines_differently(photo_paths):
    from advseg_sdk.imageio import read_image
    from advseg_sdk.line_drawing import xdog

    rgb = read_image(photo_paths[0])[:256, :256]
    lines = xdog(rgb, binarize=True)  # stands in for HED lines here
    ink = {s: float((stylise(s, lines, rgb, np.random.default_rng(0)) < 128).mean()) for s in SKETCH_STYLES}
    assert ink["hed"] == float((lines < 128).mean())
    assert ink["hed_thick"] > ink["hed"]  # dilated
    assert ink["hed_gaps"] < ink["hed"]  # erased stretches
    assert 0.01 < ink["regions"] < 0.5  # region borders: some ink, mostly empty regions
    assert parse_styles("hed, xdog") == ("hed", "xdog")
    with pytest.raises(ValueError, match="unknown sketch style"):
        parse_styles("hed,crayon")


def test_rgb_to_lab_matches_skimage():
    from skimage.color import rgb2lab

    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1
    ours = rgb_to_lab(x)[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - rgb2lab(rgb)).max() < 0.05


def test_chroma_loss_prefers_the_right_colour_to_grey():
    real = torch.tensor([0.2, 0.8, -0.6])[None, :, None, None].expand(1, 3, 8, 8)  # a green
    grey = torch.full_like(real, 0.1)
    assert float(chroma_loss(real, real)) == 0.0
    assert float(chroma_loss(grey, real)) > float(chroma_loss(real * 0.9, real))


def test_perceptual_loss_is_zero_for_equal_images_and_grows_with_blur(photo_paths):
    from advseg_sdk.imageio import read_image

    loss = PerceptualLoss(asset_path("efficientnet-lite0"))
    rgb = read_image(photo_paths[0])[:128, :128]
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 127.5 - 1
    blur1 = F.avg_pool2d(x, 3, 1, 1)
    blur2 = F.avg_pool2d(x, 7, 1, 3)
    with torch.no_grad():
        assert float(loss(x, x)) == 0.0
        assert 0 < float(loss(blur1, x)) < float(loss(blur2, x))
    assert not any(p.requires_grad for p in loss.parameters())


def _cfg(tmp_path, photo_dir, *extra):
    return resolve_config(
        preset="demo",
        overrides=[
            f"data.root={photo_dir}",
            "data.sketch_method=hed",
            f"data.sketch_cache={tmp_path / 'cache'}",
            "data.preprocess=scale_shortside_and_crop",
            "data.load_size=72",
            "data.crop_size=64",
            "data.sketch_styles=hed,hed_thick,hed_outline,hed_gaps,xdog",
            "model.netG=effnet_unet",
            "model.ngf=8",
            "model.ndf=4",
            "model.norm=none",
            "model.init_type=kaiming",
            "model.hint_nc=4",
            "loss.lambda_perceptual=1",
            "loss.lambda_chroma=1",
            "seg.variant=none",
            "run.batch_size=2",
            "run.amp=bf16",
            f"run.out={tmp_path / 'run'}",
            "run.sample_every=0",
            "run.checkpoint_every=0",
            "run.progress=false",
            "run.threads=1",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory, photo_paths):
    from PIL import Image

    root = tmp_path_factory.mktemp("effnet_photos")
    for p in photo_paths[:3]:
        im = Image.open(p).convert("RGB")
        im.thumbnail((128, 128))
        im.save(root / f"{p.stem}.png")
    return root


def test_training_with_hints_styles_and_colour_losses_on_real_photos(tmp_path, photo_dir):
    """Real HED sketches, the real pretrained encoder, bf16 autocast on the CPU: the run trains,
    logs the colour terms, and writes a hint-taking effnet_unet generator."""
    result = train(_cfg(tmp_path, photo_dir, "run.max_steps=2"))
    assert result.generator is not None
    g = load_generator(result.generator)
    assert g.config.arch == "effnet_unet" and g.config.hint_nc == 4
    # started from ImageNet: the stem's RGB filters are (close to, after 2 steps) the pretrained ones
    ref = torch.load(asset_path("efficientnet-lite0"), weights_only=True)["_conv_stem.weight"]
    assert float((g.encoder._conv_stem.weight[:, :3] - ref).abs().max()) < 0.01


def test_colour_options_are_validated(tmp_path, photo_dir):
    with pytest.raises(ConfigError, match="hint_nc"):
        _cfg(tmp_path, photo_dir, "model.kind=cycle_gan", "data.mode=unaligned")
    with pytest.raises(ConfigError, match="sketch_styles"):
        _cfg(tmp_path, photo_dir, "data.sketch_styles=hed,pencil")
    with pytest.raises(ConfigError, match="sketch_styles"):
        _cfg(tmp_path, photo_dir, "data.sketch_method=xdog")
