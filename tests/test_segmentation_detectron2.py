"""detectron2 Panoptic FPN backend: detectron2 itself is not installable here, so these tests
cover the clear ImportError and the pure-torch parts (soft combination, mask pasting, the
official panoptic decoding into the 3 / 135-channel layout, the code-free .pkl reader)."""

from __future__ import annotations

import importlib.util
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

from advseg_train.segmentation import build_segmenter, coco_panoptic, maps
from advseg_train.segmentation.detectron2_panoptic import (
    panoptic_to_labels,
    paste_soft_masks,
    safe_load_pkl,
    soft_class_mass,
)
from advseg_train.segmentation.tiny import TinySegmenter


@pytest.mark.skipif(importlib.util.find_spec("detectron2") is not None, reason="detectron2 present")
def test_missing_detectron2_is_a_clear_import_error():
    with pytest.raises(ImportError) as info:
        build_segmenter("detectron2-panoptic", weights="model_final_c10459.pkl")
    msg = str(info.value)
    assert "not on PyPI" in msg and "git+https://github.com/facebookresearch/detectron2.git" in msg
    assert "model_final_c10459.pkl" in msg and "dl.fbaipublicfiles.com" in msg


def test_paste_soft_masks_places_the_mask_in_its_box():
    masks = torch.ones(2, 28, 28, requires_grad=True)
    boxes = torch.tensor([[2.0, 3.0, 10.0, 7.0], [0.0, 0.0, 16.0, 12.0]])
    out = paste_soft_masks(masks, boxes, 12, 16)
    assert out.shape == (2, 12, 16)
    inner = out[0, 4:6, 3:9]  # pixel centres well inside box 0
    torch.testing.assert_close(inner, torch.ones_like(inner))
    assert out[0, :, 11:].abs().max() == 0 and out[0, 9:, :].abs().max() == 0
    assert out[0, :2].abs().max() == 0
    torch.testing.assert_close(out[1, 1:-1, 1:-1], torch.ones(10, 14))
    out[0].sum().backward()
    assert masks.grad[0].abs().sum() > 0 and masks.grad[1].abs().sum() == 0
    assert paste_soft_masks(torch.zeros(0, 28, 28), torch.zeros(0, 4), 5, 6).shape == (0, 5, 6)


def test_soft_class_mass_combines_instances_and_stuff():
    g = torch.Generator().manual_seed(0)
    sem = torch.randn(54, 20, 24, generator=g, requires_grad=True)
    masks = torch.full((2, 28, 28), 0.9, requires_grad=True)
    scores = torch.tensor([0.95, 0.5], requires_grad=True)
    classes = torch.tensor([17, 0])  # horse, person
    boxes = torch.tensor([[0.0, 0.0, 12.0, 20.0], [12.0, 0.0, 24.0, 10.0]])
    mass = soft_class_mass(sem, scores, classes, masks, boxes)
    assert mass.shape == (133, 20, 24)
    torch.testing.assert_close(mass[17, 5, 5], torch.tensor(0.95 * 0.9))
    torch.testing.assert_close(mass[0, 5, 20], torch.tensor(0.5 * 0.9))
    assert mass[17, :, 13:].abs().max() == 0
    stuff = torch.softmax(sem.detach(), 0)[1:]
    torch.testing.assert_close(mass[80:].detach(), stuff)
    from advseg_train.segmentation.base import normalise_mass

    probs = normalise_mass(mass[None], 1e-3)[0]
    torch.testing.assert_close(probs.sum(0), torch.ones(20, 24))
    assert (probs.argmax(0)[:, :10] == 17).all()  # the confident horse wins inside its box
    probs[17].sum().backward()
    assert sem.grad.abs().sum() > 0 and masks.grad.abs().sum() > 0 and scores.grad.abs().sum() > 0


def test_official_panoptic_decoding_gives_official_layout():
    pan = torch.tensor([[1, 1, 2, 0], [3, 3, 2, 0]], dtype=torch.int32)
    info = [
        {"id": 1, "isthing": True, "category_id": 0},  # person
        {"id": 2, "isthing": True, "category_id": 79},  # toothbrush
        {"id": 3, "isthing": False, "category_id": 53},  # last stuff label (rug-merged)
    ]
    labels = panoptic_to_labels(pan, info)
    assert labels.tolist() == [[0, 0, 79, -1], [132, 132, 79, -1]]
    assert coco_panoptic.CLASS_NAMES[132] == "rug-merged"
    seg = TinySegmenter()  # any COCO-panoptic segmenter shares the layout
    multi = maps.multi_map(labels[None], seg, "hard")
    binary = maps.binary_map(labels[None], seg.is_thing, "hard")
    # official: thing c -> channel 1 + c, stuff label s -> channel 1 + 80 + s
    assert multi[0, 1, 0, 0] == 1 and multi[0, 80, 0, 2] == 1 and multi[0, 1 + 80 + 53, 1, 0] == 1
    assert multi[0, :, :, 3].sum() == 0 and binary[0, :, :, 3].sum() == 0
    assert binary[0, 1].tolist() == [[1, 1, 1, 0], [0, 0, 1, 0]]
    assert binary[0, 2].tolist() == [[0, 0, 0, 0], [1, 1, 0, 0]]
    with pytest.raises(ValueError, match="stuff semantic label 0 outside 1..53"):
        panoptic_to_labels(pan, [{"id": 1, "isthing": False, "category_id": 0}])


def test_safe_pkl_reader_loads_arrays_and_refuses_code(tmp_path):
    good = tmp_path / "model_final_c10459.pkl"
    data = {"model": OrderedDict(w=np.arange(6, dtype=np.float32).reshape(2, 3)), "__author__": "Detectron2 Model Zoo"}
    for protocol in (2, 3, 4, 5):
        good.write_bytes(pickle.dumps(data, protocol=protocol))
        loaded = safe_load_pkl(good)
        np.testing.assert_array_equal(loaded["model"]["w"], data["model"]["w"])
        assert loaded["__author__"] == "Detectron2 Model Zoo"

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps({"model": Evil()}))
    with pytest.raises(ValueError, match="evil.pkl: not a plain detectron2 weights file.*refusing"):
        safe_load_pkl(bad)
    assert not (tmp_path / "pwned").exists()
