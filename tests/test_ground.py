"""Grounded generation: attention maps give the planted masks; capture leaves the pipeline's output alone."""

from __future__ import annotations

import json

import numpy as np
import torch

from streetsynth.generators.attention_maps import AttentionStore, aggregate, coarse_masks
from streetsynth.generators.ground import GroundConfig, class_tokens, run_ground
from streetsynth.instances import Instances
from streetsynth.models.load import declare
from streetsynth.models.tiny_controlnet import build_tiny_text2img_pipeline
from streetsynth.repo import load_split


def _planted(grid_h: int, grid_w: int, tokens: int, rect: tuple[int, int, int, int], token: int) -> np.ndarray:
    """Softmax-like attention (1, K, HW) of a grid: ``token`` holds 0.8 inside ``rect`` (in 1/4 units), 0.05 out."""
    probs = np.full((grid_h, grid_w, tokens), 0.2 / (tokens - 1), np.float32)
    y0, y1, x0, x1 = (v * grid_h // 4 if i < 2 else v * grid_w // 8 for i, v in enumerate(rect))
    probs[:, :, token] = 0.05
    probs[y0:y1, x0:x1, token] = 0.8
    return probs.reshape(1, grid_h * grid_w, tokens).transpose(0, 2, 1)


def test_aggregation_of_a_constructed_attention_tensor_yields_the_planted_mask():
    rect = (1, 3, 2, 5)  # rows 1/4..3/4 of the height, columns 2/8..5/8 of the width
    per_res = {8 * 16: _planted(8, 16, 5, rect, 3), 4 * 8: _planted(4, 8, 5, rect, 3)}
    maps = aggregate(per_res, latent_hw=(8, 16), out_hw=(64, 128))
    assert maps.shape == (1, 5, 64, 128)
    planted = np.zeros((64, 128), bool)
    planted[16:48, 32:80] = True
    masks = coarse_masks(maps[0, 3], threshold=0.5, min_area=16)
    assert len(masks) == 1 and np.array_equal(masks[0], planted)
    two = maps[0, 3].copy()
    two[:, 100:] = two[:, 40:68]  # a second blob: a second instance
    assert len(coarse_masks(two, 0.5, 16)) == 2


def test_capture_records_every_cross_attention_call_and_leaves_the_image_unchanged():
    plain, watched = build_tiny_text2img_pipeline(0), build_tiny_text2img_pipeline(0)
    store = AttentionStore()
    store.install(watched.unet)
    prompt = "a street with a car"
    tokens = class_tokens(watched.tokenizer, prompt)
    assert list(tokens) == [0]
    store.reset(tokens[0], conditional_half=True)
    kw = dict(prompt=prompt, height=64, width=128, num_inference_steps=2, output_type="np", guidance_scale=2.0)
    a = plain(generator=torch.Generator().manual_seed(0), **kw).images
    b = watched(generator=torch.Generator().manual_seed(0), **kw).images
    assert np.array_equal(a, b)
    assert sorted(store.sums) == [4 * 8] and store.counts[4 * 8] == 4 * 2  # down 1, mid 1, up 2 cross-attention layers; 2 steps
    maps = store.maps((8, 16), (64, 128))
    assert maps.shape == (1, len(tokens[0]), 64, 128) and maps.max() == 1.0


def _ground(tmp_path, name, pipe, verifier, iou_threshold):
    res = run_ground(GroundConfig(out=str(tmp_path / name), prompts=("a street with a car and a pedestrian",),
                                  num=3, size=(64, 128), steps=2, min_area=8, iou_threshold=iou_threshold, sam=None,
                                  pipeline=pipe, verifier=verifier, rows_per_shard=1))
    return {r["id"]: (r, json.loads(r["generation"]["method_details"]), Instances.from_row(r))
            for r in load_split(res["folder"], "synthetic", "synthetic")}


def test_verification_keeps_exactly_the_candidates_the_verifier_agrees_with(tmp_path):
    pipe = declare(build_tiny_text2img_pipeline(0), "streetsynth/tiny-random-text2img", "seed-0")
    hw = 64 * 128
    both = lambda image: (np.ones((2, *image.shape[:2]), bool), np.array([0, 1]))  # noqa: E731
    everything = _ground(tmp_path, "all", pipe, both, iou_threshold=0.0)
    assert sorted(everything) == ["ground-00000", "ground-00001", "ground-00002"]
    for row, d, inst in everything.values():
        assert row["generation"]["method"] == "ground" and set(d["class_tokens"]) == {"vehicle", "pedestrian"}
        assert len(inst) == d["candidates"] >= 1 and set(inst.classes) <= {0, 1}
        # against a whole-image verifier mask a candidate's IoU is its area share; where candidates
        # overlap the row keeps the smaller one's pixels, so the smallest candidate is stored whole
        areas = inst.masks.sum(axis=(1, 2))
        assert (areas <= np.asarray(d["agreement"]) * hw).all()
        smallest = int(np.argmin(d["agreement"]))
        assert areas[smallest] == d["agreement"][smallest] * hw

    # a verifier that sees only one whole-image vehicle, at IoU 0.4: exactly the vehicle candidates
    # covering at least 40 % of the image stay, rows without one are rejected
    cars = lambda image: (np.ones((1, *image.shape[:2]), bool), np.array([0]))  # noqa: E731
    verified = _ground(tmp_path, "cars", pipe, cars, iou_threshold=0.4)
    expected = {}
    for sid, (_, d, inst) in everything.items():
        agree = [a if c == 0 else 0.0 for a, c in zip(d["agreement"], inst.classes)]
        if max(agree) >= 0.4:
            expected[sid] = (agree, [a for a in agree if a >= 0.4])
    assert 0 < len(expected) < len(everything)
    assert sorted(verified) == sorted(expected)
    for sid, (_, d, inst) in verified.items():
        agree, kept = expected[sid]
        assert d["agreement"] == agree and list(inst.classes) == [0] * len(kept)
        if len(kept) == 1:
            assert inst.masks[0].sum() == kept[0] * hw
