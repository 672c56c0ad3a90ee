"""The GPU check's training smoke matrix as tests (marked ``gpu``, skipped without CUDA; the GPU
driver, ``scripts/gpu/session.py``, runs them on the GPU machine): every scheme × amp ×
segmentation variant × gradient mode trains a few steps with finite losses, and soft maps send the
generator a gradient while hard maps send none."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

SEG = ["seg.segmenter=tiny", "seg.segmenter_kwargs={width: 8}"]


@pytest.fixture(scope="module")
def pairs():
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 64, 64, generator=g) * 2 - 1, torch.rand(2, 3, 64, 64, generator=g) * 2 - 1


@pytest.mark.parametrize("grad", ["soft", "hard"])
@pytest.mark.parametrize("variant", ["binary", "multi"])
@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
@pytest.mark.parametrize("kind", ["pix2pix", "cycle_gan"])
def test_smoke_combination_trains_and_keeps_the_gradient_property(kind, amp, variant, grad, pairs):
    from advseg_train.segmentation import build_segmenter
    from scripts.gpu.smoke import SmokeCase, smoke_one

    A, B = pairs
    case = SmokeCase(kind, amp, variant, grad, ngf=8, size=64, load=72, device="cuda", steps=2)
    res = smoke_one(case, build_segmenter("tiny", width=8), A, B, SEG, log=lambda m: None)
    assert "error" not in res, res.get("error")
    assert res["finite"], res["losses"]
    assert (res["seg_grad_norm"] > 0) == (grad == "soft") and res["seg_grad_finite"]
    assert res["gradient_property"] == "holds" and res["passed"]
