"""Segmenter interface (tiny backend) and the soft / hard discriminator maps."""

from __future__ import annotations

import pytest
import torch

from advseg_train.segmentation import SEGMENTER_NAMES, Segmenter, build_segmenter, coco_panoptic, maps


def _images(b: int = 2, h: int = 40, w: int = 56, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g) * 2 - 1


def assert_segmenter_contract(seg: Segmenter, x: torch.Tensor) -> torch.Tensor:
    """The interface every backend must honour; returns the probabilities."""
    assert isinstance(seg, Segmenter)
    assert not seg.training
    assert all(not p.requires_grad for p in seg.parameters())
    assert len(seg.class_names) == len(seg.is_thing) == seg.num_classes
    assert isinstance(seg.name, str) and seg.name
    seg.train()  # a trainer's model.train() must not unfreeze it
    assert not seg.training and not any(m.training for m in seg.modules())
    x = x.clone().requires_grad_(True)
    probs = seg(x)
    assert probs.shape == (x.shape[0], seg.num_classes, *x.shape[-2:])
    assert torch.isfinite(probs).all()
    assert probs.min() >= 0
    torch.testing.assert_close(probs.sum(1), torch.ones_like(probs.sum(1)), atol=1e-4, rtol=0)
    # differentiable w.r.t. the input, never w.r.t. the parameters
    weights = torch.linspace(0, 1, seg.num_classes).view(1, -1, 1, 1)
    (probs * weights).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in seg.parameters())
    return probs.detach()


def test_registry_names():
    assert {"tiny", "isnet", "detectron2-panoptic", "mask2former", "oneformer"} <= set(SEGMENTER_NAMES)
    with pytest.raises(ValueError, match="unknown segmenter 'nope'.*tiny"):
        build_segmenter("nope")


def test_tiny_contract_and_coco_layout():
    seg = build_segmenter("tiny")
    probs = assert_segmenter_contract(seg, _images())
    assert seg.class_names == list(coco_panoptic.CLASS_NAMES)
    assert sum(seg.is_thing) == 80 and seg.is_coco_panoptic
    assert maps.binary_channels(seg) == 3 and maps.multi_channels(seg) == 135
    # a real spread of classes, not a constant map
    assert probs.argmax(1).unique().numel() > 5


def test_tiny_is_seeded_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = build_segmenter("tiny", seed=3), build_segmenter("tiny", seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    c = build_segmenter("tiny", seed=4)
    x = _images()
    assert torch.equal(a(x), b(x))
    assert not torch.allclose(a(x), c(x))


def test_tiny_generic_classes():
    seg = build_segmenter("tiny", num_classes=5, num_things=2)
    assert seg.is_thing == [True, True, False, False, False]
    assert maps.multi_channels(seg) == 6 and seg.multi_index == (1, 2, 3, 4, 5)
    assert_segmenter_contract(seg, _images(1, 17, 23))


def test_bad_input_is_a_clear_error():
    seg = build_segmenter("tiny")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*\(1, 1, 8, 8\)"):
        seg(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="floating-point"):
        seg(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


# ---------------------------------------------------------------- maps
def test_soft_maps_follow_official_layout_and_carry_gradient():
    seg = build_segmenter("tiny")
    x = _images().requires_grad_(True)
    probs = seg(x)
    b = maps.binary_map(probs, seg.is_thing, "soft")
    m = maps.multi_map(probs, seg, "soft")
    assert b.shape == (2, 3, 40, 56) and m.shape == (2, 135, 40, 56)
    assert b.requires_grad and m.requires_grad
    assert torch.all(b[:, 0] == 0) and torch.all(m[:, 0] == 0) and torch.all(m[:, 81] == 0)
    p = probs.detach()
    torch.testing.assert_close(b[:, 1].detach(), p[:, :80].sum(1))
    torch.testing.assert_close(b[:, 2].detach(), p[:, 80:].sum(1))
    torch.testing.assert_close(m[:, 1:81].detach(), p[:, :80])
    torch.testing.assert_close(m[:, 82:].detach(), p[:, 80:])
    m[:, 82].sum().backward()
    assert x.grad.abs().sum() > 0


def test_hard_maps_are_official_one_hot_without_gradient():
    seg = build_segmenter("tiny")
    x = _images().requires_grad_(True)
    probs = seg(x)
    b = maps.binary_map(probs, seg.is_thing, "hard")
    m = maps.multi_map(probs, seg, "hard")
    for t in (b, m):
        assert not t.requires_grad and t.grad_fn is None and t.dtype == torch.float32
        assert set(t.unique().tolist()) <= {0.0, 1.0}
        assert torch.all(t.sum(1) == 1)  # argmax: every pixel in exactly one channel
        assert torch.all(t[:, 0] == 0)
    assert torch.all(m[:, 81] == 0)
    lab = probs.argmax(1)
    # class c sits on channel multi_index[c]
    chan = torch.as_tensor(seg.multi_index)[lab]
    assert torch.equal(m.argmax(1), chan)
    assert torch.equal(b[:, 1].bool(), lab < 80)
    assert torch.equal(b[:, 2].bool(), lab >= 80)


def test_hard_maps_from_labels_leave_unassigned_pixels_empty():
    seg = build_segmenter("tiny", num_classes=4, num_things=1)
    labels = torch.tensor([[[0, 1, -1], [3, 2, -1]]])
    b = maps.binary_map(labels, seg.is_thing, "hard")
    m = maps.multi_map(labels, seg, "hard")
    expect_b = torch.tensor([[[0, 0, 0], [0, 0, 0]], [[1, 0, 0], [0, 0, 0]], [[0, 1, 0], [1, 1, 0]]])
    assert torch.equal(b[0], expect_b.float())
    assert m.shape == (1, 5, 2, 3)
    assert torch.equal(m[0, :, 0, 0], torch.tensor([0.0, 1, 0, 0, 0]))
    assert torch.equal(m[0, :, 1, 0], torch.tensor([0.0, 0, 0, 0, 1]))
    assert torch.all(m[0, :, :, 2] == 0)
    with pytest.raises(ValueError, match="integer labels are only accepted in hard mode"):
        maps.multi_map(labels, seg, "soft")
    with pytest.raises(ValueError, match="labels must lie in -1..3"):
        maps.multi_map(labels + 5, seg, "hard")


def test_stuff_area_limit_drops_small_stuff_only():
    seg = build_segmenter("tiny", num_classes=3, num_things=1)
    labels = torch.zeros(1, 10, 10, dtype=torch.long)
    labels[0, :2, :2] = 1  # 4 px of stuff class 1: dropped with limit 5
    labels[0, 5:, :] = 2  # 50 px of stuff class 2: kept
    labels[0, 9, 9] = 0  # 1 px thing: things are never area-filtered
    b = maps.binary_map(labels, seg.is_thing, "hard", stuff_area_limit=5)
    assert b[0, :, :2, :2].sum() == 0
    assert b[0, 2, 5:9].sum() == 40 and b[0, 1, 9, 9] == 1
    probs = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    m = maps.multi_map(probs, seg, "hard", stuff_area_limit=5)
    assert m[0, :, :2, :2].sum() == 0 and m.sum() == 100 - 4


def test_mode_is_checked():
    seg = build_segmenter("tiny", num_classes=3)
    with pytest.raises(ValueError, match="mode must be one of"):
        maps.binary_map(torch.ones(1, 3, 2, 2) / 3, seg.is_thing, "round")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        maps.binary_map(torch.ones(1, 4, 2, 2) / 4, seg.is_thing, "soft")
