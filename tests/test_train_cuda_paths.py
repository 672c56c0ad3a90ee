"""CPU tests of what the CUDA training paths depend on: device choice, loader workers, the
vanilla GAN loss on logits under autocast, float32 segmentation maps, what gets compiled."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from advseg_train.config import resolve_config
from advseg_train.losses import AdvSegLoss, GANLoss
from advseg_train.models import build_model
from advseg_train.segmentation import build_segmenter
from advseg_train.trainer import build_loader, resolve_device, resolve_num_workers

torch.set_num_threads(1)


# --------------------------------------------------------------------------- device, workers


def test_resolve_device_always_gives_cuda_an_index():
    # torch.cuda.set_device(torch.device("cuda")) raises: every CUDA answer carries an index
    assert resolve_device("auto", cuda_available=True) == torch.device("cuda", 0)
    assert resolve_device("cuda", cuda_available=True) == torch.device("cuda", 0)
    assert resolve_device("cuda:3", cuda_available=True) == torch.device("cuda", 3)
    assert resolve_device("cuda", local_rank=1, world=2, cuda_available=True) == torch.device("cuda", 1)
    assert resolve_device("auto", local_rank=1, world=2, cuda_available=True) == torch.device("cuda", 1)
    for name in ("auto", "cuda", "cuda:3"):
        assert resolve_device(name, cuda_available=True).index is not None
    assert resolve_device("auto", cuda_available=False) == torch.device("cpu")
    assert resolve_device("cpu", cuda_available=True) == torch.device("cpu")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda", cuda_available=False)


def test_loader_workers_default_to_some_on_cuda_none_on_cpu():
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert resolve_num_workers(None, cpu, cpus=16) == 0
    assert resolve_num_workers(None, cuda, cpus=16) == 8
    assert resolve_num_workers(None, cuda, cpus=4) == 3
    assert resolve_num_workers(None, cuda, cpus=1) == 1
    assert resolve_num_workers(0, cuda, cpus=16) == 0  # an explicit value wins
    cfg = resolve_config(overrides=["data.root=x"])
    assert cfg.data.num_workers is None and cfg.run.cudnn_benchmark is True
    assert resolve_config(overrides=["data.root=x", "data.num_workers=2"]).data.num_workers == 2


def test_loader_drops_the_partial_batch_only_when_compiling(tmp_path, photo_paths):
    from PIL import Image

    from advseg_train.data import ResumableSampler, build_dataset

    for i, p in enumerate(photo_paths[:5]):  # 5 real side-by-side pairs
        photo = np.array(Image.open(p).convert("RGB").resize((40, 36), Image.BICUBIC))
        Image.fromarray(np.concatenate([photo[:, ::-1], photo], axis=1)).save(tmp_path / f"{i}.png")
    for compile, batches in ((False, 3), (True, 2)):  # compiled networks see one batch shape
        cfg = resolve_config(
            overrides=[
                "model.kind=pix2pix",
                "data.mode=aligned",
                f"data.root={tmp_path}",
                "data.phase=.",
                "data.load_size=36",
                "data.crop_size=32",
                "run.batch_size=2",
                f"run.compile={str(compile).lower()}",
            ]
        )
        dataset = build_dataset(cfg.data, paired=True)
        loader, workers, drop_last = build_loader(cfg, dataset, ResumableSampler(dataset), torch.device("cpu"))
        assert workers == 0 and drop_last is compile
        assert [len(b["A"]) for b in loader] == ([2, 2, 1] if not compile else [2, 2])[:batches]


# --------------------------------------------------------------------------- vanilla GAN loss


def test_vanilla_loss_on_saturated_logits_has_finite_grads_under_bf16_autocast():
    # a saturated patch: |logit| far past where bf16/fp16 sigmoid rounds to exactly 0 or 1
    x = torch.tensor([[[[-300.0, -40.0], [40.0, 300.0]]]])
    conv = nn.Conv2d(1, 1, 1, bias=False)
    nn.init.ones_(conv.weight)
    for real in (True, False):
        conv.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = conv(x)
            assert logits.dtype == torch.bfloat16
            loss = GANLoss("vanilla")(logits, real)
        loss.backward()
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        assert torch.isfinite(conv.weight.grad).all()
        # d/dz BCEwithlogits = (sigmoid(z) - target) / N, through the bf16 logits
        z = logits.detach().float()
        expect = ((torch.sigmoid(z) - float(real)) * x).mean()
        assert torch.allclose(conv.weight.grad.flatten()[0], expect, atol=1e-3)
        # the official formula on bf16 probabilities: log(0) is clamped, its gradient is lost
        p = torch.sigmoid(z.bfloat16()).float()
        assert (p == 0).any() and (p == 1).any()


def test_vanilla_models_have_no_sigmoid_in_their_discriminators():
    cfg = resolve_config(
        overrides=[
            "model.kind=pix2pix",
            "model.netG=resnet_6blocks",
            "model.ngf=4",
            "model.ndf=4",
            "model.gan_mode=vanilla",
            "data.mode=aligned",
            "data.root=x",
            "seg.variant=both",
            "seg.segmenter=tiny",
            "seg.segmenter_kwargs={width: 4}",
        ]
    )
    model = build_model(cfg)
    for name in model.discriminator_names:
        assert not any(isinstance(m, nn.Sigmoid) for m in model.nets[name].modules()), name
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    terms = model.train_step({"A": x, "B": x.flip(-1)})
    assert all(torch.isfinite(v) for v in terms.values())


# --------------------------------------------------------------------------- segmentation maps


@pytest.mark.parametrize("grad", ["soft", "hard"])
def test_tiny_segmenter_maps_are_float32_under_bf16_autocast(grad):
    seg = build_segmenter("tiny", width=4, sharpness=40.0)
    loss = AdvSegLoss(seg, variant="both", grad=grad)
    x = torch.rand(2, 3, 24, 24) * 2 - 1
    with torch.no_grad():
        ref = seg(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            images = nn.Identity()(x).bfloat16()  # a generator's bf16 output under autocast
            probs = seg(images)
            maps = loss.maps(images, differentiable=False)
    assert probs.dtype == torch.float32
    assert all(m.dtype == torch.float32 for m in maps.values())
    assert torch.allclose(probs.sum(1), torch.ones(2, 24, 24), atol=1e-5)  # normalised in fp32
    assert (probs - ref).abs().max() < 0.2  # only the bf16 network differs


@pytest.mark.real_assets
def test_isnet_background_probability_survives_bf16_autocast(photo_paths):
    from PIL import Image

    seg = build_segmenter("isnet", size_multiple=32)
    rgb = np.array(Image.open(photo_paths[0]).convert("RGB").resize((64, 64), Image.BICUBIC))
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        ref = seg(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            probs = seg(x)
    assert probs.dtype == torch.float32
    assert torch.equal(probs[:, 0] + probs[:, 1], torch.ones_like(probs[:, 0]))
    # confident foreground: 1 - p would be 0 in bf16 (p rounds to 1 above 1 - 2**-9)
    confident = probs[:, 0] > 1 - 2**-9
    if confident.any():
        assert (probs[:, 1][confident] > 0).all()
    assert (probs - ref).abs().max() < 0.25


# --------------------------------------------------------------------------- compile


@pytest.mark.parametrize("kind, gens", [("cycle_gan", ["G_A", "G_B"]), ("pix2pix", ["G"])])
def test_compile_wraps_generators_only_and_says_so(kind, gens):
    mode = "unaligned" if kind == "cycle_gan" else "aligned"
    cfg = resolve_config(
        overrides=[
            f"model.kind={kind}",
            "model.netG=resnet_6blocks",
            "model.ngf=4",
            "model.ndf=4",
            f"data.mode={mode}",
            "data.root=x",
            "seg.variant=both",
            "seg.segmenter=tiny",
            "seg.segmenter_kwargs={width: 4}",
        ]
    )
    model = build_model(cfg)
    model.wrap(compile=True)
    assert model.compiled == gens
    for name in model.discriminator_names:
        assert model._call[name] is model.nets[name] and model._frozen_call[name] is model.nets[name]
    for g in gens:
        assert model._call[g] is not model.nets[g]
    assert model.compile_summary.startswith(f"compiled {', '.join(gens)}; eager D")
