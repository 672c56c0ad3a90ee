"""Spreading hints over sketch regions (SDK) and region hints in training (same regions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advseg_sdk.hint_spread import line_regions, spread_hints
from advseg_sdk.hints import Hint, HintSet
from advseg_train.hints import HintSampler


def two_boxes() -> np.ndarray:
    """A 120x160 page with two closed boxes (2-px lines): A at rows 20-60, cols 20-70; B at cols 90-140."""
    page = np.full((120, 160), 255, np.uint8)
    for x0, x1 in ((20, 70), (90, 140)):
        page[20:22, x0:x1] = page[58:60, x0:x1] = 0
        page[20:60, x0 : x0 + 2] = page[20:60, x1 - 2 : x1] = 0
    return page


def test_a_dot_fills_its_box_and_nothing_else():
    page = two_boxes()
    out = spread_hints(page, HintSet(page.shape, points=(Hint(45, 40, "#ff0000"),)))
    assert out is not None and out.scribble is not None and not out.points
    on = out.scribble[..., 3] > 0
    inside_a = np.zeros_like(on)
    inside_a[24:56, 24:66] = True  # box A's interior, away from its (dilated) lines
    assert on[inside_a].all() and (out.scribble[inside_a, :3] == (255, 0, 0)).all()
    assert not on[:, 80:].any()  # box B and the page right of A untouched
    assert not on[page < 128].any()  # the lines stay unhinted
    assert not on[:15].any() and not on[65:].any()  # the page around the boxes too


def test_two_hints_in_one_box_split_it_by_distance():
    page = two_boxes()
    hints = HintSet(page.shape, points=(Hint(30, 40, "#ff0000"), Hint(60, 40, "#0000ff")))
    rgba = spread_hints(page, hints).scribble
    assert tuple(rgba[40, 35, :3]) == (255, 0, 0) and tuple(rgba[40, 55, :3]) == (0, 0, 255)
    assert (rgba[24:56, 24:66, 3] == 255).all()


def test_a_hint_on_the_open_page_fills_only_a_disc_around_it():
    page = two_boxes()
    rgba = spread_hints(page, HintSet(page.shape, points=(Hint(150, 100, "#00ff00"),)), radius=10).scribble
    ys, xs = np.nonzero(rgba[..., 3])
    assert ys.size > 200  # the disc (about pi * 10^2 px)
    assert (np.hypot(ys - 100, xs - 150) <= 11.5).all()  # the radius from the hint's own 1-px disc


def test_scribbles_spread_and_no_hints_pass_through():
    page = two_boxes()
    scribble = np.zeros((*page.shape, 4), np.uint8)
    scribble[30:33, 100:110] = (10, 200, 30, 255)
    rgba = spread_hints(page, HintSet(page.shape, scribble=scribble)).scribble
    assert (rgba[24:56, 94:136, 3] == 255).all() and tuple(rgba[50, 120, :3]) == (10, 200, 30)
    assert spread_hints(page, None) is None
    empty = HintSet(page.shape)
    assert spread_hints(page, empty) is empty
    with pytest.raises(ValueError, match="sketch is 160x120"):
        spread_hints(page, HintSet((10, 10), points=(Hint(1, 1, "#000000"),)))


def test_gaps_of_a_pixel_are_closed_before_regions_are_found():
    page = two_boxes()
    page[38, 20:22] = 255  # a 1-px gap in box A's left wall
    labels, lines = line_regions(page)
    assert labels[40, 45] != labels[40, 5] and lines[20, 30] and not lines[40, 45]


def test_training_region_hints_fill_a_box_with_the_photos_colour_there():
    page = two_boxes()
    sketch = torch.from_numpy(page).float().div(127.5).sub(1).expand(3, -1, -1)
    photo = torch.zeros(3, *page.shape)
    photo[0, :, :80] = 0.8  # red-ish left half, green right half
    photo[1, :, 80:] = 0.6
    sampler = HintSampler(p_none=0.0, mean_count=1.0, p_region=1.0)
    seen_box = False
    for seed in range(40):
        hints = sampler(photo, np.random.default_rng(seed), sketch)
        mask = hints[3] > 0
        assert mask.any()
        if mask[40, 45] and not mask[40, 5]:  # box A was drawn: the whole box, its colour
            seen_box = True
            assert mask[24:56, 24:66].all()
            assert torch.allclose(hints[:3, 40, 45], torch.tensor([0.8, 0.0, 0.0]), atol=1e-5)
    assert seen_box
    # without region hints the sampler draws exactly what it drew before the option existed
    plain = HintSampler()
    assert torch.equal(plain(photo, np.random.default_rng(3)), plain(photo, np.random.default_rng(3), sketch))
