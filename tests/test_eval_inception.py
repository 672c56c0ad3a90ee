"""pytorch-fid Inception-v3: key layout, loading with clear errors, preprocessing, features.

pytorch-fid's own weights file is not available here (the user supplies it), so its layout is
checked against pytorch-fid's published one on random weights; the real offline weights are
tested in test_eval_inception_real.py.
"""

from __future__ import annotations

import copy

import pytest
import torch

from advseg_eval import inception as inc
from advseg_eval.features import InceptionFIDExtractor
from advseg_eval.inception import (
    FID_WEIGHTS_FILENAME,
    FID_WEIGHTS_SHA256,
    FID_WEIGHTS_SIZE,
    FIDInceptionV3,
    InceptionWeightsError,
    StateDictLayoutError,
    load_fid_inception,
)

# (key, shape) pairs of pytorch-fid's state dict: torchvision's Inception3 names with
# num_classes=1008 and no AuxLogits.
PYTORCH_FID_KEYS = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.running_var": (32,),
    "Conv2d_2b_3x3.conv.weight": (64, 32, 3, 3),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "Mixed_7c.branch3x3_2a.bn.bias": (384,),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


@pytest.fixture(scope="module")
def random_inception():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # far faster than two threads on a shared, oversubscribed runner
    torch.manual_seed(0)
    yield FIDInceptionV3().eval()
    torch.set_num_threads(before)


def test_state_dict_layout_is_pytorch_fids(random_inception):
    sd = random_inception.state_dict()
    for key, shape in PYTORCH_FID_KEYS.items():
        assert key in sd, key
        assert tuple(sd[key].shape) == shape, key
    assert not any(k.startswith("AuxLogits") for k in sd)
    assert not any(k.endswith("conv.bias") for k in sd), "BasicConv2d convolutions have no bias"
    bns = [m for m in random_inception.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 94 and all(m.eps == 1e-3 for m in bns)
    # The published file is 95,628,359 bytes; its float32 tensors account for all but ~0.1% of it.
    tensor_bytes = sum(v.numel() * v.element_size() for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    assert abs(tensor_bytes - FID_WEIGHTS_SIZE) / FID_WEIGHTS_SIZE < 0.002, tensor_bytes


def test_fid_specific_pooling_patches(random_inception):
    # TF-style average pooling ignores the zero padding: a constant map stays constant at borders.
    ones = torch.ones(1, 1, 5, 5)
    assert torch.equal(inc._tf_avg_pool(ones), ones)
    assert random_inception.Mixed_7b.pool == "avg" and random_inception.Mixed_7c.pool == "max"


def test_preprocessing_is_bilinear_299_in_minus1_1(random_inception):
    x = torch.rand(1, 3, 40, 60)
    y = random_inception.preprocess(x)
    assert y.shape == (1, 3, 299, 299)
    want = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
    assert torch.allclose(y, want)
    exact = torch.rand(2, 3, 299, 299)
    assert torch.equal(random_inception.preprocess(exact), exact * 2 - 1)
    with pytest.raises(ValueError, match=r"\(B,3,H,W\)"):
        random_inception.preprocess(torch.rand(1, 1, 32, 32))


def _perturbed_state(model: FIDInceptionV3) -> dict[str, torch.Tensor]:
    return {k: (v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v) for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory, random_inception):
    """Random weights saved like an older pytorch-fid file (no BatchNorm counters)."""
    sd = {k: v for k, v in _perturbed_state(random_inception).items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("inception") / FID_WEIGHTS_FILENAME
    torch.save(sd, path)
    return path, sd


def test_loads_a_state_dict_file_in_pytorch_fid_layout(weights_file):
    path, saved = weights_file
    model = load_fid_inception(path, check_hash=False)
    loaded = model.state_dict()
    for key in saved:
        assert torch.equal(loaded[key], saved[key]), key
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert len(model.weights_sha256) == 64


def test_full_state_dict_with_counters_loads(random_inception):
    sd = _perturbed_state(random_inception)
    fresh = copy.deepcopy(random_inception)
    inc.load_state_dict_checked(fresh, sd, "in-memory")
    assert torch.equal(fresh.state_dict()["Mixed_7c.branch_pool.conv.weight"], sd["Mixed_7c.branch_pool.conv.weight"])


def test_wrong_file_fails_the_sha256_check(weights_file):
    path, _ = weights_file
    with pytest.raises(InceptionWeightsError) as exc:
        load_fid_inception(path)  # check_hash defaults to True
    msg = str(exc.value)
    assert FID_WEIGHTS_SHA256 in msg and FID_WEIGHTS_FILENAME in msg and str(path) in msg


def test_missing_weights_error_says_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVSEG_HOME", str(tmp_path))
    with pytest.raises(InceptionWeightsError) as exc:
        load_fid_inception()
    msg = str(exc.value)
    assert FID_WEIGHTS_FILENAME in msg and FID_WEIGHTS_SHA256 in msg
    assert str(tmp_path / "weights" / FID_WEIGHTS_FILENAME) in msg
    assert "--inception-weights" in msg and "advseg assets fetch fid-inception" in msg


def test_renamed_or_reshaped_keys_are_named(random_inception):
    sd = dict(random_inception.state_dict())
    sd["Mixed_7c.branch_pool.conv.kernel"] = sd.pop("Mixed_7c.branch_pool.conv.weight")
    with pytest.raises(StateDictLayoutError) as exc:
        inc.load_state_dict_checked(random_inception, sd, "renamed.pth")  # raises before loading
    msg = str(exc.value)
    assert msg.startswith("renamed.pth: state dict does not match FIDInceptionV3's layout")
    assert "missing keys: Mixed_7c.branch_pool.conv.weight" in msg
    assert "unexpected keys: Mixed_7c.branch_pool.conv.kernel" in msg

    sd = dict(random_inception.state_dict())
    sd["fc.weight"] = torch.zeros(1000, 2048)  # torchvision's 1000 classes, not the FID graph's 1008
    with pytest.raises(StateDictLayoutError, match=r"fc.weight: file \(1000, 2048\) vs model \(1008, 2048\)"):
        inc.load_state_dict_checked(random_inception, sd, "reshaped.pth")


def test_file_with_code_is_refused(tmp_path):
    path = tmp_path / "pickle.pth"
    torch.save({"obj": _NotATensor()}, path)
    with pytest.raises(InceptionWeightsError, match="weights-only"):
        load_fid_inception(path, check_hash=False)


class _NotATensor:
    pass


def test_extractor_gives_n_by_2048_features(random_inception):
    ext = InceptionFIDExtractor(model=random_inception, weights_id="random-test", device="cpu")
    feats = ext(torch.rand(2, 3, 48, 64))
    assert feats.shape == (2, 2048) and feats.dtype.name == "float32"
    assert (feats >= 0).all() and feats.std() > 0  # pooled ReLU outputs, not constant
    assert ext.batches_run == 1
    assert "random-test" in ext.cache_id


def test_fid_and_kid_through_score_folders(random_inception, tmp_path):
    """The whole FID/KID path (folders -> pytorch-fid preprocessing -> Inception -> statistics)."""
    import numpy as np
    from PIL import Image

    from advseg_eval.score import score_folders

    rng = np.random.default_rng(0)
    for name, shift in (("gen", 60), ("real", 0)):
        (tmp_path / name).mkdir()
        for i in range(3):
            ramp = np.linspace(0, 180, 40)[None, :, None] + shift
            img = np.clip(ramp + rng.normal(0, 20, (30, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / name / f"{i}.png")
    ext = InceptionFIDExtractor(model=random_inception, weights_id="random-test", device="cpu")
    with pytest.warns(UserWarning, match="3 images < 2048"):
        rep = score_folders(
            tmp_path / "gen",
            tmp_path / "real",
            metrics=("fid", "kid"),
            extractors={ext.name: ext},
            cache_dir=tmp_path / "cache",
        )
    assert set(rep.metrics) == {"fid", "kid", "kid_std"}
    assert np.isfinite(rep.metrics["fid"]) and rep.metrics["fid"] > 0
    assert rep.details["inception-fid"]["fd_method"] == "lowrank"
    assert rep.to_dict()["labels"]["fid"] == "FID (pytorch-fid Inception-v3)"
    with pytest.warns(UserWarning, match="3 images < 2048"):
        same = score_folders(
            tmp_path / "real",
            tmp_path / "real",
            metrics=("fid",),
            extractors={ext.name: ext},
            cache_dir=tmp_path / "cache",
        )
    assert abs(same.metrics["fid"]) < 1e-6 * rep.metrics["fid"]
    assert same.details["inception-fid"]["real_stats_from_cache"] is True
