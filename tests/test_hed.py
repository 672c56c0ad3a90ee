"""HED port: parity with the original TF model's outputs, odd sizes, ONNX export, weight-file errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from advseg_train.hed import HED, HEDWeightsError, load_hed, preprocess_rgb_uint8

LOGIT_KEYS = [f"logit_side{i}" for i in range(1, 6)] + ["logit_fused"]


def _nchw(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32).transpose(0, 3, 1, 2)


def _rel_norm(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(y - ref) / np.linalg.norm(ref))


def _check(name: str, y: np.ndarray, ref_stored: np.ndarray) -> float:
    """Compare with the README's tolerances (tighter for float32-stored arrays); return max |diff|."""
    ref = _nchw(ref_stored)
    assert y.shape == ref.shape, f"{name}: shape {y.shape} != reference {ref.shape}"
    if ref_stored.dtype == np.float16:
        atol, rtol, max_rel_norm = 1e-3, 1e-3, 1e-3
    else:
        atol, rtol, max_rel_norm = 5e-4, 1e-4, 1e-5
    err = np.abs(y - ref)
    bad = err > atol + rtol * np.abs(ref)
    assert not bad.any(), f"{name}: {bad.sum()} values out of tolerance, max |diff| {err.max():.3g}"
    rel = _rel_norm(y, ref)
    assert rel <= max_rel_norm, f"{name}: relative norm {rel:.3g} > {max_rel_norm}"
    return float(err.max())


@pytest.fixture(scope="module")
def hed() -> HED:
    from advseg_sdk.assets import AssetMissingError

    try:
        return load_hed()
    except AssetMissingError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def fixture_files(hed_fixtures_dir: Path) -> list[Path]:
    files = sorted(hed_fixtures_dir.glob("*.npz"))
    assert files, f"no HED fixtures (*.npz) in {hed_fixtures_dir}"
    return files


@pytest.fixture(scope="module")
def outputs(hed: HED, fixture_files: list[Path]) -> dict[str, dict]:
    """Per fixture file: the stored arrays and our outputs from the exact input and from RGB [0,1]."""
    results = {}
    for path in fixture_files:
        ref = dict(np.load(path))
        with torch.no_grad():
            logits = hed.side_logits_bgr(torch.from_numpy(_nchw(ref["input_bgr"])))
            rgb = torch.from_numpy(ref["rgb_uint8"]).permute(2, 0, 1)[None].float() / 255.0
            prob_rgb = hed(rgb)
        results[path.name] = {
            "ref": ref,
            "logits": [t.numpy() for t in logits],
            "prob": torch.sigmoid(logits[-1]).numpy(),
            "prob_rgb": prob_rgb.numpy(),
        }
    return results


@pytest.mark.real_assets
def test_input_bgr_recipe(fixture_files: list[Path], hed: HED) -> None:
    for path in fixture_files:
        ref = np.load(path)
        expected = _nchw(ref["input_bgr"])
        got = preprocess_rgb_uint8(ref["rgb_uint8"])
        assert got.dtype == np.float32
        assert np.array_equal(got, expected), f"{path.name}: input_bgr recipe differs"
        # The in-module float32 preprocessing of RGB in [0, 1] is within 1 ulp at ~100.
        rgb = torch.from_numpy(ref["rgb_uint8"]).permute(2, 0, 1)[None].float() / 255.0
        np.testing.assert_allclose(hed.preprocess(rgb).numpy(), expected, rtol=0, atol=2e-5, err_msg=path.name)


@pytest.mark.real_assets
def test_logits_match_reference(outputs: dict[str, dict]) -> None:
    report = []
    for name, out in outputs.items():
        errs = [_check(f"{name}:{key}", y, out["ref"][key]) for key, y in zip(LOGIT_KEYS, out["logits"])]
        report.append(f"{name} max|logit diff| {max(errs):.2e}")
    print("\n".join(report))


@pytest.mark.real_assets
def test_prob_matches_reference(outputs: dict[str, dict]) -> None:
    for name, out in outputs.items():
        _check(f"{name}:prob_fused", out["prob"], out["ref"]["prob_fused"])
        assert 0.0 <= out["prob"].min() and out["prob"].max() <= 1.0


@pytest.mark.real_assets
def test_rgb_forward_matches_reference_prob(outputs: dict[str, dict]) -> None:
    for name, out in outputs.items():
        ref = _nchw(out["ref"]["prob_fused"])
        err = float(np.abs(out["prob_rgb"] - ref).max())
        print(f"{name} max|prob diff| (RGB [0,1] path) {err:.2e}")
        assert err < 1e-3, f"{name}: forward(RGB in [0,1]) differs from reference prob by {err:.3g}"


@pytest.mark.real_assets
def test_odd_size_batch(hed: HED) -> None:
    x = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        prob = hed(x)
        logits = hed.side_logits(x)
    assert prob.shape == (2, 1, 37, 53)
    assert torch.isfinite(prob).all() and prob.min() >= 0 and prob.max() <= 1
    assert len(logits) == 6 and all(t.shape == (2, 1, 37, 53) for t in logits)
    torch.testing.assert_close(torch.sigmoid(logits[-1]), prob)
    # Each batch item is computed independently.
    with torch.no_grad():
        torch.testing.assert_close(hed(x[1:]), prob[1:], atol=1e-6, rtol=1e-5)
    # Tiny inputs down to 1x1 go through all four pools.
    with torch.no_grad():
        assert hed(torch.rand(1, 3, 1, 1)).shape == (1, 1, 1, 1)


@pytest.mark.real_assets
def test_frozen_but_differentiable_and_dtype_moves(hed: HED) -> None:
    assert not hed.training
    assert all(not p.requires_grad for p in hed.parameters())
    x = torch.rand(1, 3, 24, 30, requires_grad=True)
    hed(x).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    hed64 = load_hed().to(torch.float64)
    assert hed64.bgr_mean.dtype == torch.float64
    with torch.no_grad():
        torch.testing.assert_close(hed64(x.detach().double()).float(), hed(x.detach()), atol=1e-4, rtol=1e-4)


def test_rejects_bad_input_shape() -> None:
    model = HED()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*\(1, 1, 8, 8\)"):
        model(torch.rand(1, 1, 8, 8))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.real_assets
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # legacy TorchScript exporter, used on purpose
def test_onnx_export_dynamic_size(hed: HED, tmp_path: Path) -> None:
    import onnxruntime as ort

    onnx_path = tmp_path / "hed.onnx"
    axes = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(
        hed,
        (torch.rand(1, 3, 32, 32),),
        str(onnx_path),
        dynamo=False,
        opset_version=17,
        input_names=["image"],
        output_names=["prob"],
        dynamic_axes={"image": axes, "prob": axes},
    )
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 45, 37, generator=torch.Generator().manual_seed(1))  # other size, odd pools
    got = session.run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        expected = hed(x).numpy()
    assert got.shape == (2, 1, 45, 37)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- weight-file errors


def test_missing_dataset_names_file_and_dataset(tmp_path: Path) -> None:
    path = tmp_path / "partial.weights.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("block1/layers/conv2d/vars")
        g.attrs["name"] = "block1_conv1"
        g.create_dataset("0", data=np.zeros((3, 3, 3, 64), np.float32))
        g.create_dataset("1", data=np.zeros((64,), np.float32))
    with pytest.raises(HEDWeightsError, match=r"partial\.weights\.h5.*'block1/layers/conv2d_1/vars/0' is missing"):
        load_hed(path)


def test_misshaped_dataset_names_file_and_shapes(tmp_path: Path) -> None:
    path = tmp_path / "bad.weights.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("block1/layers/conv2d/vars")
        g.attrs["name"] = "block1_conv1"
        g.create_dataset("0", data=np.zeros((64, 3, 3, 3), np.float32))  # torch layout, not Keras
    with pytest.raises(
        HEDWeightsError,
        match=r"bad\.weights\.h5.*'block1/layers/conv2d/vars/0' has shape "
        r"\(64, 3, 3, 3\), expected \(3, 3, 3, 64\)",
    ):
        load_hed(path)


def test_not_hdf5_and_missing_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(b"not an hdf5 file")
    with pytest.raises(HEDWeightsError, match=r"junk\.weights\.h5.*not a readable HDF5"):
        load_hed(junk)
    with pytest.raises(FileNotFoundError, match=r"nope\.h5.*advseg assets fetch hed-bsds500"):
        load_hed(tmp_path / "nope.h5")


@pytest.mark.real_assets
def test_convs_mapped_by_name_attribute_not_group_order(hed: HED, tmp_path: Path) -> None:
    """Swap two same-shaped conv groups in a copy: the `name` attributes must still route them."""
    from advseg_sdk.assets import asset_path

    path = tmp_path / "swapped.weights.h5"
    shutil.copyfile(asset_path("hed-bsds500"), path)
    with h5py.File(path, "r+") as f:
        layers = f["block3/layers"]
        layers.move("conv2d_1", "tmp")
        layers.move("conv2d_2", "conv2d_1")
        layers.move("tmp", "conv2d_2")
        assert layers["conv2d_1/vars"].attrs["name"] == "block3_conv3"
    swapped = load_hed(path)
    for (key, a), b in zip(hed.state_dict().items(), swapped.state_dict().values()):
        assert torch.equal(a, b), key
