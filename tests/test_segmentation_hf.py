"""Mask2Former / OneFormer segmenters on tiny randomly initialised configs of the real
architectures (transformers, offline: no hub download, no pretrained backbone)."""

from __future__ import annotations

import json

import pytest
import torch
from test_segmentation import assert_segmenter_contract

from advseg_train.segmentation import build_segmenter, coco_panoptic, maps
from advseg_train.segmentation.hf_panoptic import HFPanopticSegmenter

transformers = pytest.importorskip("transformers")


def _swin():
    return transformers.SwinConfig(
        image_size=64,
        patch_size=4,
        embed_dim=16,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 2, 2],
        window_size=4,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )


def mask2former_config(num_labels: int = 133, **kw):
    return transformers.Mask2FormerConfig(
        backbone_config=_swin(),
        num_labels=num_labels,
        num_queries=8,
        hidden_dim=32,
        mask_feature_size=32,
        feature_size=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_feedforward_dim=64,
        dim_feedforward=64,
        num_attention_heads=2,
        use_pretrained_backbone=False,
        **kw,
    )


def oneformer_config():
    return transformers.OneFormerConfig(
        backbone_config=_swin(),
        num_labels=133,
        num_queries=8,
        hidden_dim=32,
        conv_dim=32,
        mask_dim=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_feedforward_dim=64,
        dim_feedforward=64,
        num_attention_heads=2,
        text_encoder_width=32,
        text_encoder_num_layers=1,
        text_encoder_vocab_size=64,
        task_seq_len=24,
        text_encoder_context_length=24,
        use_pretrained_backbone=False,
    )


def _x(b=2, h=48, w=64):
    g = torch.Generator().manual_seed(1)
    return torch.rand(b, 3, h, w, generator=g) * 2 - 1


@pytest.fixture(scope="module")
def m2f():
    return HFPanopticSegmenter.from_config(mask2former_config(), kind="mask2former", seed=0)


def test_mask2former_contract_and_coco_layout(m2f):
    assert_segmenter_contract(m2f, _x())
    assert m2f.name == "mask2former" and m2f.class_names == list(coco_panoptic.CLASS_NAMES)
    assert sum(m2f.is_thing) == 80 and maps.multi_channels(m2f) == 135
    assert not m2f.model.training


def test_mask2former_probs_are_normalised_class_times_mask(m2f):
    """P(k) = (Σ_q softmax(cls_q)[k]·sigmoid(mask_q) + eps/K) / (Σ_k … + eps), computed here
    by hand from the raw model outputs (ImageNet normalisation, work size 64²)."""
    F = torch.nn.functional
    x = _x(1, 40, 56)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        pix = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
        out = m2f.model(pixel_values=((pix + 1) / 2 - mean) / std)
        cls = out.class_queries_logits.softmax(-1)[..., :-1]
        mk = F.interpolate(out.masks_queries_logits, size=(40, 56), mode="bilinear", align_corners=False).sigmoid()
        mass = torch.einsum("bqk,bqhw->bkhw", cls, mk)
        expect = (mass + 1e-3 / 133) / (mass.sum(1, keepdim=True) + 1e-3)
        got = m2f(x)
    assert m2f.work_size(40, 56) == (64, 64)
    torch.testing.assert_close(got, expect, atol=1e-5, rtol=1e-4)


def test_mask2former_hard_maps_and_void(m2f):
    x = _x()
    hard = maps.multi_map(m2f.labels(x), m2f, "hard")
    assert hard.shape == (2, 135, 48, 64) and hard.grad_fn is None
    assert torch.all(hard.sum(1) == 1) and torch.all(hard[:, 0] == 0) and torch.all(hard[:, 81] == 0)
    m2f.void_threshold = 1e9  # nothing is confident enough: every pixel unassigned
    try:
        assert torch.all(m2f.labels(x) == -1)
        assert maps.binary_map(m2f.labels(x), m2f.is_thing, "hard").sum() == 0
    finally:
        m2f.void_threshold = None


def test_oneformer_contract_with_task_token_ids():
    seg = HFPanopticSegmenter.from_config(
        oneformer_config(), kind="oneformer", seed=0, task_token_ids=list(range(1, 25))
    )
    assert_segmenter_contract(seg, _x())
    assert seg.name == "oneformer" and maps.multi_channels(seg) == 135
    with pytest.raises(ValueError, match="task_token_ids"):
        HFPanopticSegmenter.from_config(oneformer_config(), kind="oneformer")
    with pytest.raises(ValueError, match="length 24"):
        HFPanopticSegmenter.from_config(oneformer_config(), kind="oneformer", task_token_ids=[1, 2])


def test_mask2former_from_pretrained_local_dir(m2f, tmp_path):
    m2f.model.save_pretrained(tmp_path)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps(
            {"image_mean": mean, "image_std": std, "do_rescale": True, "rescale_factor": 1 / 255, "size_divisor": 32}
        )
    )
    seg = build_segmenter("mask2former", checkpoint=tmp_path)
    ref = HFPanopticSegmenter(m2f.model, "mask2former", image_mean=mean, image_std=std)
    x = _x(1)
    torch.testing.assert_close(seg(x), ref(x))
    assert not torch.allclose(seg(x), m2f(x))  # the preprocessor's mean/std were used
    assert all(not p.requires_grad for p in seg.parameters()) and not seg.training


def test_oneformer_from_pretrained_uses_checkpoint_tokenizer(tmp_path):
    seg0 = HFPanopticSegmenter.from_config(oneformer_config(), kind="oneformer", seed=0, task_token_ids=[0] * 24)
    seg0.model.save_pretrained(tmp_path)
    # a tiny character-level CLIP BPE vocabulary, so the real tokenizer path runs offline
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "CLIPTokenizer", "pad_token": "<|endoftext|>"})
    )
    seg = build_segmenter("oneformer", checkpoint=tmp_path)
    ids = seg.task_token_ids[0].tolist()
    text = "the task is panoptic".replace(" ", "")
    assert ids[0] == 0 and ids[1 + len(text)] == 1 and set(ids[2 + len(text) :]) == {0}
    assert ids[1] == vocab["t"] and ids[3] == vocab["e</w>"]
    assert_segmenter_contract(seg, _x(1))


def test_missing_or_wrong_checkpoint_is_a_clear_error(tmp_path, m2f):
    with pytest.raises(ValueError, match="needs checkpoint=<local directory>.*huggingface-cli download"):
        build_segmenter("mask2former")
    with pytest.raises(FileNotFoundError, match="no config.json in .*huggingface-cli download"):
        build_segmenter("mask2former", checkpoint=tmp_path / "nope")
    m2f.model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="holds a 'mask2former' model, not 'oneformer'"):
        build_segmenter("oneformer", checkpoint=tmp_path, task_token_ids=[0] * 24)


def test_non_coco_labels_need_is_thing():
    cfg = mask2former_config(num_labels=3, id2label={0: "cat", 1: "sky", 2: "grass"})
    with pytest.raises(ValueError, match="not the 133-class COCO-panoptic label set; pass is_thing"):
        HFPanopticSegmenter.from_config(cfg, kind="mask2former")
    seg = HFPanopticSegmenter.from_config(cfg, kind="mask2former", is_thing=[True, False, False])
    assert seg.class_names == ["cat", "sky", "grass"] and maps.multi_channels(seg) == 4
    assert_segmenter_contract(seg, _x(1, 32, 32))
