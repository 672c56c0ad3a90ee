"""Networks, configs, init, our safetensors format and the checkpoint loaders (tiny models)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from advseg_train import checkpoint_formats as checkpoints
from advseg_train.networks import (
    DISCRIMINATOR_ARCHS,
    GENERATOR_ARCHS,
    INIT_TYPES,
    NORMS,
    CheckpointError,
    DiscriminatorConfig,
    GeneratorConfig,
    build_discriminator,
    build_generator,
    count_parameters,
    init_weights,
    load_discriminator,
    load_generator,
    save_discriminator,
    save_generator,
    set_dropout,
)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny convs on a shared 2-core box run far faster single-threaded (no OpenMP spinning)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _input_size(cfg: GeneratorConfig) -> int:
    return cfg.fixed_size[0] if cfg.fixed_size else 64


def _rand_img(cfg: GeneratorConfig, batch: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    s = _input_size(cfg)
    return torch.rand(batch, cfg.input_nc, s, s, generator=g) * 2 - 1


def _assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# --------------------------------------------------------------------------- configs


def test_config_dict_round_trip_and_validation() -> None:
    g = GeneratorConfig(arch="unet_128", ngf=8, norm="batch", use_dropout=True)
    assert GeneratorConfig.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    d = DiscriminatorConfig(arch="n_layers", input_nc=135, ndf=8, n_layers=4, use_sigmoid=True)
    assert DiscriminatorConfig.from_dict(d.to_dict()) == d
    with pytest.raises(ValueError, match="arch='resnet_7blocks'"):
        GeneratorConfig(arch="resnet_7blocks")
    with pytest.raises(ValueError, match="norm='group'"):
        DiscriminatorConfig(norm="group")
    with pytest.raises(ValueError, match="ngf must be a positive int"):
        GeneratorConfig(ngf=0)
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['n_blocks'\]"):
        GeneratorConfig.from_dict({"arch": "resnet_9blocks", "n_blocks": 9})
    assert GeneratorConfig(arch="resnet_6blocks").n_blocks == 6
    assert GeneratorConfig(arch="unet_256").fixed_size == (256, 256)
    assert GeneratorConfig(arch="resnet_9blocks").size_multiple == 4
    assert DiscriminatorConfig(arch="basic", n_layers=5).effective_n_layers == 3


# --------------------------------------------------------------------------- building


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("arch", GENERATOR_ARCHS)
def test_build_every_generator(arch: str, norm: str) -> None:
    cfg = GeneratorConfig(arch=arch, ngf=4, norm=norm, use_dropout=True)
    net = build_generator(cfg)
    assert net.config == cfg
    x = _rand_img(cfg)
    with torch.no_grad():
        y = net.eval()(x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1.0 and y.std() > 0
    # conv bias rule: convs feeding a norm have a bias unless the norm is batch. A pretrained
    # encoder (effnet_unet's EfficientNet-Lite0) keeps its own layers (BatchNorm, no biases):
    # the rule and the norm are the decoder's.
    encoder = getattr(net, "encoder", None)
    own = set(encoder.modules()) if encoder is not None else set()
    modules = [m for m in net.modules() if m not in own]
    expect_bias = norm != "batch"
    fed = [m for m in modules if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.out_channels != cfg.output_nc]
    assert fed and all((m.bias is not None) == expect_bias for m in fed)
    instance_norms = [m for m in modules if isinstance(m, nn.InstanceNorm2d)]
    assert all(not m.affine and not m.track_running_stats for m in instance_norms)
    assert (len(instance_norms) > 0) == (norm == "instance")
    has_bn = any(isinstance(m, nn.BatchNorm2d) and m.affine for m in modules)
    assert has_bn == (norm == "batch")


def test_resnet_is_fully_convolutional_and_unet_checks_size() -> None:
    net = build_generator(GeneratorConfig(arch="resnet_6blocks", ngf=4)).eval()
    with torch.no_grad():
        assert net(torch.zeros(2, 3, 36, 52)).shape == (2, 3, 36, 52)
    unet = build_generator(GeneratorConfig(arch="unet_128", ngf=4)).eval()
    with pytest.raises(ValueError, match="multiples of 128"):
        unet(torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("arch", DISCRIMINATOR_ARCHS)
def test_build_every_discriminator(arch: str, norm: str) -> None:
    cfg = DiscriminatorConfig(arch=arch, input_nc=6, ndf=4, n_layers=2, norm=norm)
    net = build_discriminator(cfg).eval()
    with torch.no_grad():
        y = net(torch.rand(1, 6, 64, 64) * 2 - 1)
    expected = {"basic": (1, 1, 6, 6), "n_layers": (1, 1, 14, 14), "pixel": (1, 1, 64, 64)}[arch]
    assert tuple(y.shape) == expected
    sig = build_discriminator(cfg.replace(use_sigmoid=True))
    sig.load_state_dict(net.state_dict())
    with torch.no_grad():
        ys = sig.eval()(torch.rand(1, 6, 64, 64))
    assert 0.0 <= ys.min() and ys.max() <= 1.0


def test_patchgan_output_at_256_is_30x30() -> None:
    net = build_discriminator(DiscriminatorConfig(ndf=4)).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_resnet_9blocks_parameter_count_is_cyclegan_default() -> None:
    net = build_generator(GeneratorConfig(arch="resnet_9blocks", ngf=64), init_type=None)
    assert count_parameters(net) == 11_378_179  # measured; equals stock CycleGAN G
    assert not any("fc" in name for name, _ in net.named_modules())


# --------------------------------------------------------------------------- init


@pytest.mark.parametrize("init_type", INIT_TYPES)
def test_init_weights_every_type(init_type: str) -> None:
    torch.manual_seed(0)
    net = build_generator(GeneratorConfig(arch="resnet_6blocks", ngf=8, norm="batch"), init_type=None)
    init_weights(net, init_type, gain=0.02)
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(m.bias is None or torch.count_nonzero(m.bias) == 0 for m in convs)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    w = torch.cat([m.weight.detach() for m in bns])
    assert abs(w.mean().item() - 1.0) < 0.01 and abs(w.std().item() - 0.02) < 0.005
    assert all(torch.count_nonzero(m.bias) == 0 for m in bns)
    if init_type == "normal":
        all_w = torch.cat([m.weight.detach().flatten() for m in convs])
        assert abs(all_w.std().item() - 0.02) < 0.001 and abs(all_w.mean().item()) < 0.001


def test_init_weights_rejects_unknown_type() -> None:
    with pytest.raises(ValueError, match="init_type='uniform'"):
        init_weights(nn.Conv2d(1, 1, 1), "uniform")


# --------------------------------------------------------------------------- dropout


def test_dropout_train_mode_is_random_eval_is_deterministic() -> None:
    """Exact official dropout masks cannot be reproduced (they depend on the official RNG call
    order); what we guarantee: dropout is active in train mode, off in eval and when switched
    off with set_dropout (the fixtures' trainbn_nodropout mode)."""
    for arch in ("resnet_6blocks", "unet_128"):
        cfg = GeneratorConfig(arch=arch, ngf=4, norm="instance", use_dropout=True)
        net = build_generator(cfg)
        x = _rand_img(cfg)
        with torch.no_grad():
            net.train()
            a, b = net(x), net(x)
            assert not torch.equal(a, b), arch
            # masks are drawn in forward order: the same RNG state gives the same output
            torch.manual_seed(5)
            c = net(x)
            torch.manual_seed(5)
            assert torch.equal(c, net(x))
            set_dropout(net, False)
            assert torch.equal(net(x), net(x))
            net.eval()
            assert torch.equal(net(x), net(x))


# --------------------------------------------------------------------------- our format


GEN_CASES = [
    GeneratorConfig(arch="resnet_9blocks", ngf=4, norm="instance"),
    GeneratorConfig(arch="resnet_6blocks", ngf=4, norm="batch", use_dropout=True),
    GeneratorConfig(arch="unet_128", ngf=4, norm="batch", use_dropout=True),
    GeneratorConfig(arch="unet_256", ngf=4, norm="none", input_nc=1, output_nc=2),
]
DISC_CASES = [
    DiscriminatorConfig(arch="basic", input_nc=3, ndf=4, norm="instance"),
    DiscriminatorConfig(arch="n_layers", input_nc=138, ndf=4, n_layers=4, norm="batch", use_sigmoid=True),
    DiscriminatorConfig(arch="pixel", input_nc=6, ndf=4, norm="none"),
]


def _perturb_bn_stats(net: nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.num_batches_tracked.fill_(7)


@pytest.mark.parametrize("cfg", GEN_CASES, ids=[c.arch for c in GEN_CASES])
def test_generator_round_trip(tmp_path: Path, cfg: GeneratorConfig) -> None:
    net = build_generator(cfg)
    _perturb_bn_stats(net)
    path = tmp_path / "sub" / "g.safetensors"
    save_generator(net, path, extra_metadata={"epoch": 3, "note": "hi"})
    meta = checkpoints.read_metadata(path)
    assert meta["advseg_format"] == "generator/1"
    assert json.loads(meta["config"]) == cfg.to_dict()
    assert meta["epoch"] == "3" and meta["note"] == "hi"
    assert [p.name for p in path.parent.iterdir()] == ["g.safetensors"]  # no temp file left
    loaded = load_generator(path)
    assert loaded.config == cfg and not loaded.training
    _assert_same_state(net, loaded)
    x = _rand_img(cfg, seed=1)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), loaded(x))


@pytest.mark.parametrize("cfg", DISC_CASES, ids=[c.arch for c in DISC_CASES])
def test_discriminator_round_trip(tmp_path: Path, cfg: DiscriminatorConfig) -> None:
    net = build_discriminator(cfg)
    _perturb_bn_stats(net)
    path = tmp_path / "d.safetensors"
    save_discriminator(net, path)
    assert checkpoints.read_metadata(path)["advseg_format"] == "discriminator/1"
    loaded = load_discriminator(path)
    assert loaded.config == cfg  # use_sigmoid comes back from the metadata
    _assert_same_state(net, loaded)
    x = torch.rand(2, cfg.input_nc, 64, 64)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), loaded(x))


@pytest.mark.parametrize("cfg", GEN_CASES, ids=[c.arch for c in GEN_CASES])
def test_plain_state_dict_infers_architecture(cfg: GeneratorConfig) -> None:
    """A bare state dict (no config) gives back the same config, except what the weights cannot
    tell: norm none looks like instance; U-Net dropout is invisible."""
    net = build_generator(cfg)
    loaded = load_generator(net.state_dict())
    expected = cfg
    if cfg.norm == "none":
        expected = expected.replace(norm="instance")
    if not cfg.is_resnet:
        expected = expected.replace(use_dropout=False)
    assert loaded.config == expected
    _assert_same_state(net, loaded)
    again = load_generator(net.state_dict(), norm=cfg.norm, use_dropout=cfg.use_dropout)
    assert again.config == cfg


@pytest.mark.parametrize("cfg", DISC_CASES, ids=[c.arch for c in DISC_CASES])
def test_plain_discriminator_state_dict_infers_architecture(cfg: DiscriminatorConfig) -> None:
    net = build_discriminator(cfg)
    loaded = load_discriminator(net.state_dict(), use_sigmoid=cfg.use_sigmoid)
    expected = cfg.replace(norm="instance") if cfg.norm == "none" else cfg
    assert loaded.config == expected
    _assert_same_state(net, loaded)


def test_save_refuses_module_without_config_and_writes_nothing(tmp_path: Path) -> None:
    net = build_generator(GeneratorConfig(arch="resnet_6blocks", ngf=4))
    with pytest.raises(ValueError, match="no .config"):
        save_generator(nn.Conv2d(3, 3, 1), tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match=r"\*\.safetensors"):
        save_generator(net, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="reserved key 'config'"):
        save_generator(net, tmp_path / "x.safetensors", extra_metadata={"config": "{}"})
    with pytest.raises(ValueError, match="no .config of type DiscriminatorConfig"):
        save_discriminator(net, tmp_path / "x.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_save_unwraps_compiled_or_parallel_module(tmp_path: Path) -> None:
    net = build_discriminator(DiscriminatorConfig(ndf=4))
    save_discriminator(nn.DataParallel(net), tmp_path / "d.safetensors")
    _assert_same_state(net, load_discriminator(tmp_path / "d.safetensors"))


# --------------------------------------------------------------------------- loaders


def test_ddp_prefix_and_training_checkpoint_dicts(tmp_path: Path) -> None:
    cfg = GeneratorConfig(arch="resnet_6blocks", ngf=4, norm="batch", use_dropout=True)
    net = build_generator(cfg)
    ddp_sd = {f"module.{k}": v for k, v in net.state_dict().items()}
    _assert_same_state(net, load_generator(ddp_sd))

    d_cfg = DiscriminatorConfig(ndf=4, use_sigmoid=True)
    disc = build_discriminator(d_cfg)
    ckpt = {
        "format": "advseg-train/1",
        "epoch": 2,
        "generator": net.state_dict(),
        "generator_config": cfg.to_dict(),
        "D_seg": disc.state_dict(),
        "D_seg_config": d_cfg.to_dict(),
        "optimizer_G": {"state": {}, "param_groups": [{"lr": 2e-4}]},
    }
    path = tmp_path / "latest.pth"
    torch.save(ckpt, path)
    g = load_generator(path)
    assert g.config == cfg
    _assert_same_state(net, g)
    d = load_discriminator(path, key="D_seg")
    assert d.config == d_cfg  # use_sigmoid from D_seg_config
    _assert_same_state(disc, d)
    with pytest.raises(CheckpointError, match="Pass key="):
        load_discriminator(path)
    with pytest.raises(CheckpointError, match="no entry 'D_B'"):
        load_discriminator(path, key="D_B")


def test_advsegloss_split_layout_with_dropout_and_fc_branch() -> None:
    """Write an AdvSegLoss-style split state dict (6 blocks, BatchNorm, dropout key shift, plus
    the unused fc branch) from one of our nets and load it back."""
    cfg = GeneratorConfig(arch="resnet_6blocks", ngf=4, norm="batch", use_dropout=True)
    net = build_generator(cfg)
    _perturb_bn_stats(net)
    n = 6
    split: dict[str, torch.Tensor] = {
        "model_fc.0.weight": torch.randn(256, 16 * cfg.ngf),
        "model_fc.0.bias": torch.randn(256),
        "model_fc.2.weight": torch.randn(3, 256),
        "model_fc.2.bias": torch.randn(3),
    }
    for k, v in net.state_dict().items():
        i, rest = int(k.split(".")[1]), k.split(".", 2)[2]
        if i < 10 + n:
            split[k] = v
        elif i < 16 + n:
            split[f"model_decode.{i - 10 - n}.{rest}"] = v
        else:
            split[f"model_out.{i - 16 - n}.{rest}"] = v
    split["model_fc_prep.0.weight"] = torch.randn(8, 16, 3, 3)
    split["model_fc_prep.1.weight"] = torch.ones(8)
    split["model_fc_prep.1.running_mean"] = torch.zeros(8)
    assert "model.10.conv_block.6.weight" in split  # dropout shifts the second conv
    loaded = load_generator(split)
    assert loaded.config == cfg and loaded.source_layout == "advsegloss_resnet_split"
    _assert_same_state(net, loaded)


def test_old_instance_norm_buffers_are_dropped_for_discriminators_too() -> None:
    net = build_discriminator(DiscriminatorConfig(ndf=4, norm="instance"))
    sd = dict(net.state_dict())
    for i in (3, 6, 9):
        c = sd[f"model.{i - 1}.weight"].shape[0]
        sd[f"model.{i}.running_mean"] = torch.randn(c)
        sd[f"model.{i}.running_var"] = torch.rand(c)
        sd[f"model.{i}.num_batches_tracked"] = torch.tensor(0)
    cleaned, dropped = checkpoints.drop_instance_norm_buffers(sd)
    assert len(dropped) == 9 and list(cleaned) == list(net.state_dict())
    _assert_same_state(net, load_discriminator(sd))


def test_mismatch_error_names_keys_and_shapes() -> None:
    net = build_generator(GeneratorConfig(arch="resnet_9blocks", ngf=4))
    with pytest.raises(CheckpointError) as exc:
        load_generator(net.state_dict(), ngf=8)
    msg = str(exc.value)
    assert "shape mismatch" in msg
    assert re.search(r"model\.1\.weight expected \[8, 3, 7, 7\] found \[4, 3, 7, 7\]", msg)
    assert "more)" in msg and len(msg) < 2000  # a few keys, not hundreds
    with pytest.raises(CheckpointError) as exc:
        load_generator(net.state_dict(), norm="batch")
    msg = str(exc.value)
    assert "expected key(s) not found" in msg and "model.2.weight [4]" in msg
    assert "unexpected key(s) found" in msg and "model.1.bias [4]" in msg
    assert isinstance(exc.value, ValueError)


def test_overrides_change_what_the_weights_cannot_tell() -> None:
    disc = build_discriminator(DiscriminatorConfig(ndf=4))
    plain = load_discriminator(disc.state_dict())
    sig = load_discriminator(disc.state_dict(), use_sigmoid=True)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(sig(x), torch.sigmoid(plain(x)))
    gen = build_generator(GeneratorConfig(arch="resnet_6blocks", ngf=4))
    none = load_generator(gen.state_dict(), norm="none")
    assert none.config.norm == "none"
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in none.modules())
    with pytest.raises(CheckpointError, match="invalid GeneratorConfig"):
        load_generator(gen.state_dict(), norm="layer")


def test_wrong_kind_and_bad_files_give_clear_errors(tmp_path: Path) -> None:
    gen = build_generator(GeneratorConfig(arch="resnet_6blocks", ngf=4))
    disc = build_discriminator(DiscriminatorConfig(ndf=4))
    with pytest.raises(CheckpointError, match="does not look like a discriminator"):
        load_discriminator(gen.state_dict())
    with pytest.raises(CheckpointError, match="does not look like a generator"):
        load_generator(disc.state_dict())
    save_discriminator(disc, tmp_path / "d.safetensors")
    with pytest.raises(CheckpointError, match="'discriminator/1' file, not 'generator/1'"):
        load_generator(tmp_path / "d.safetensors")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_generator(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_generator(tmp_path / "junk.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_generator(tmp_path / "junk.safetensors")
    torch.save(gen, tmp_path / "pickled_module.pth")  # a whole pickled module: refused
    with pytest.raises(CheckpointError, match="weights_only"):
        load_generator(tmp_path / "pickled_module.pth")


def test_unsupported_depth_is_reported() -> None:
    net = build_generator(GeneratorConfig(arch="resnet_6blocks", ngf=4))
    sd = {k: v for k, v in net.state_dict().items() if not k.startswith("model.15.")}
    with pytest.raises(CheckpointError, match="5 blocks"):
        load_generator(sd)


def test_layouts_we_cannot_build_are_named() -> None:
    net = build_generator(GeneratorConfig(arch="resnet_6blocks", ngf=4, norm="instance"))
    no_bias = {k: v for k, v in net.state_dict().items() if not (k.endswith(".bias") and not k.startswith("model.23."))}
    with pytest.raises(CheckpointError, match="norm='none' as newer upstream"):
        load_generator(no_bias)
    affine_in = dict(net.state_dict())
    affine_in["model.2.weight"] = torch.ones(4)
    affine_in["model.2.bias"] = torch.zeros(4)
    with pytest.raises(CheckpointError, match="affine InstanceNorm"):
        load_generator(affine_in)


def test_pre_0_4_batchnorm_without_num_batches_tracked_loads() -> None:
    net = build_generator(GeneratorConfig(arch="unet_128", ngf=4, norm="batch"))
    _perturb_bn_stats(net)
    old = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    loaded = load_generator(old)
    x = _rand_img(loaded.config)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), loaded(x))


def test_advseg_train_checkpoint_layout(tmp_path: Path) -> None:
    """The trainer's layout: nets under model.nets, the generator named in "generator"."""
    g_cfg = GeneratorConfig(arch="unet_128", ngf=4, norm="batch", use_dropout=True)
    g_a, g_b = build_generator(g_cfg), build_generator(g_cfg)
    d_a, d_b = (build_discriminator(DiscriminatorConfig(ndf=4)) for _ in range(2))
    ckpt = {
        "advseg_format": "train-checkpoint/1",
        "config": {"model": {"netG": "unet_128"}},
        "model": {
            "nets": {
                "G_A": g_a.state_dict(),
                "G_B": g_b.state_dict(),
                "D_A": d_a.state_dict(),
                "D_B": d_b.state_dict(),
            },
            "optimizers": {},
        },
        "generator": {"name": "G_A", "config": g_cfg.to_dict()},
    }
    torch.save(ckpt, tmp_path / "ckpt.pt")
    g = load_generator(tmp_path / "ckpt.pt")
    assert g.config == g_cfg  # dropout of a U-Net comes from the stored config
    _assert_same_state(g_a, g)
    _assert_same_state(g_b, load_generator(tmp_path / "ckpt.pt", key="G_B"))
    _assert_same_state(d_b, load_discriminator(tmp_path / "ckpt.pt", key="D_B"))
    with pytest.raises(CheckpointError, match=r"discriminators \['D_A', 'D_B'\]: pass key="):
        load_discriminator(tmp_path / "ckpt.pt")
