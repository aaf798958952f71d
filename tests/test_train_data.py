"""Rows -> training samples: flips move boxes and masks with the pixels, mixes honour weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factories_train import COLOURS, make_real_repo, make_synthetic_repo, scene_row
from streetsynth.repo import load_split
from streetsynth.training.data import (DetectionSources, MixSampler, augment, build_augmentation, collate,
                                       parse_mix, row_to_sample)


def _flipped_sample(row):
    """A seed for which the 50% flip fires, and the flipped sample."""
    image, target = row_to_sample(row)
    for seed in range(20):
        img, tgt = augment(image.clone(), dict(target), build_augmentation("hflip"), seed)
        if not torch.allclose(img, image.float() / 255):
            return image, target, img, tgt
    raise AssertionError("the flip never fired in 20 seeds")


def test_row_to_sample_matches_row():
    row = scene_row(0, n_objects=3)
    image, target = row_to_sample(row)
    assert image.shape == (3, 64, 128) and image.dtype == torch.uint8
    assert target["labels"].tolist() == [o["category"] + 1 for o in row["objects"]]
    assert torch.allclose(target["boxes"], torch.tensor([o["bbox"] for o in row["objects"]]))
    # every mask pixel carries its class colour
    for m, lab in zip(target["masks"].bool(), target["labels"]):
        colour = torch.tensor(COLOURS[int(lab) - 1], dtype=torch.uint8)
        assert (image.permute(1, 2, 0)[m] == colour).all()


def test_hflip_moves_boxes_and_masks_with_pixels():
    row = scene_row(3, n_objects=2)
    image, target, img, tgt = _flipped_sample(row)
    assert torch.allclose(img, image.flip(-1).float() / 255)
    w = image.shape[-1]
    old = target["boxes"]
    expected = torch.stack([w - old[:, 2], old[:, 1], w - old[:, 0], old[:, 3]], dim=1)
    assert torch.allclose(tgt["boxes"], expected)
    for m, lab in zip(tgt["masks"].bool(), tgt["labels"]):
        colour = torch.tensor(COLOURS[int(lab) - 1], dtype=torch.float32) / 255
        assert torch.allclose(img.permute(1, 2, 0)[m], colour.expand(int(m.sum()), 3))
        ys, xs = torch.nonzero(m, as_tuple=True)
        box = tgt["boxes"][tgt["labels"] == lab][0] if (tgt["labels"] == lab).sum() == 1 else None
        if box is not None:
            assert xs.min() >= box[0] - 1 and xs.max() < box[2] + 1


def test_scale_jitter_keeps_canvas_and_consistency():
    row = scene_row(5, n_objects=2)
    image, target = row_to_sample(row)
    for seed in range(5):
        img, tgt = augment(image.clone(), dict(target), build_augmentation("hflip_scale"), seed)
        assert img.shape == image.shape
        for m, box in zip(tgt["masks"].bool(), tgt["boxes"]):
            ys, xs = torch.nonzero(m, as_tuple=True)
            assert xs.min() >= box[0] - 1.5 and xs.max() <= box[2] + 1.5
            assert ys.min() >= box[1] - 1.5 and ys.max() <= box[3] + 1.5


def test_same_seed_same_sample_and_unknown_preset():
    row = scene_row(1)
    image, target = row_to_sample(row)
    a = augment(image.clone(), dict(target), build_augmentation("hflip_scale"), 42)
    b = augment(image.clone(), dict(target), build_augmentation("hflip_scale"), 42)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1]["boxes"], b[1]["boxes"])
    with pytest.raises(ValueError, match="known: none, hflip, hflip_scale"):
        build_augmentation("lsj")


def test_box_only_row_under_each_policy():
    row = scene_row(2, with_masks=False)
    with pytest.raises(ValueError, match="drop-row"):
        row_to_sample(row)
    _, skipped = row_to_sample(row, "skip-object")
    assert len(skipped["boxes"]) == 0 and skipped["masks"].shape == (0, 64, 128)
    _, boxed = row_to_sample(row, "box-fill")
    assert len(boxed["boxes"]) == len(row["objects"])
    x0, y0, x1, y1 = [int(round(v)) for v in row["objects"][0]["bbox"]]
    assert boxed["masks"][0].sum() == (x1 - x0) * (y1 - y0)
    with pytest.raises(ValueError, match="missing-mask"):
        row_to_sample(row, "skip")


def _half_masked_repo(tmp_path):
    """Train rows 0-3 as built (every frame with panoptic masks); row 1 has its second object's mask taken away."""
    real = make_real_repo(tmp_path / "real", n_train=4, unmasked_rows={1: (1,)})
    return load_split(real, "stitched", "train")


def _all_targets(sources):
    """Every kept row of the real source as (row index, target)."""
    return [(int(sources.rows["real"][i]), sources[("real", i, 0)][1]) for i in range(sources.sizes()["real"])]


def test_half_labelled_frame_is_dropped_by_default(tmp_path):
    rows = _half_masked_repo(tmp_path)
    sources = DetectionSources({"real": rows})
    assert sources.sizes() == {"real": 3}
    assert [i for i, _ in _all_targets(sources)] == [0, 2, 3]
    assert sources.counts["real"] == {"rows": 4, "rows_with_unmasked": 1, "unmasked_objects": 1, "rows_dropped": 1,
                                      "objects_dropped": 0, "objects_box_filled": 0}
    assert "dropped 1 rows" in sources.report()
    # every kept row trains on all of its objects, each with mask pixels
    for i, target in _all_targets(sources):
        assert len(target["labels"]) == len(rows[i]["objects"]) >= 2
        assert target["masks"].flatten(1).any(dim=1).all()


def test_half_labelled_frame_is_filled_under_box_fill(tmp_path):
    rows = _half_masked_repo(tmp_path)
    sources = DetectionSources({"real": rows}, missing_masks="box-fill")
    assert sources.sizes() == {"real": 4} and sources.counts["real"]["objects_box_filled"] == 1
    target = dict(_all_targets(sources))[1]
    assert len(target["labels"]) == len(rows[1]["objects"])
    x0, y0, x1, y1 = [int(round(v)) for v in rows[1]["objects"][1]["bbox"]]
    assert target["masks"][1].sum() == (x1 - x0) * (y1 - y0)


def test_skip_object_keeps_the_image_and_warns(tmp_path):
    rows = _half_masked_repo(tmp_path)
    with pytest.warns(UserWarning, match="learnt as background"):
        sources = DetectionSources({"real": rows}, missing_masks="skip-object")
    assert sources.sizes() == {"real": 4} and sources.counts["real"]["objects_dropped"] == 1
    assert len(dict(_all_targets(sources))[1]["labels"]) == len(rows[1]["objects"]) - 1


def test_empty_row():
    image, target = row_to_sample(scene_row(0, n_objects=0))
    img, tgt = augment(image, target, build_augmentation("hflip_scale"), 0)
    assert tgt["boxes"].shape == (0, 4) and tgt["labels"].shape == (0,)


@pytest.mark.parametrize("text, expected", [
    ("real=1", {"real": 1.0, "synthetic": 0.0}),
    ("real=1.0,synthetic=0.5", {"real": 1.0, "synthetic": 0.5}),
    ("synthetic=2", {"real": 0.0, "synthetic": 2.0}),
])
def test_parse_mix(text, expected):
    assert parse_mix(text) == expected


@pytest.mark.parametrize("text, message", [
    ("real", "SOURCE=WEIGHT"), ("fake=1", "unknown source"), ("real=-1", ">= 0"),
    ("real=0", "positive weight"), ("real=x", "not a number"),
])
def test_parse_mix_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_mix(text)


def test_mix_ratios_honoured_over_a_long_draw():
    sampler = MixSampler({"real": 10, "synthetic": 30}, parse_mix("real=1.0,synthetic=0.5"), 6000, seed=3)
    keys = list(sampler)
    share = sum(k[0] == "real" for k in keys) / len(keys)
    assert share == pytest.approx(2 / 3, abs=0.03)
    rows = np.bincount([k[1] for k in keys if k[0] == "synthetic"], minlength=30)
    assert rows.min() > 0  # every synthetic row gets drawn
    assert list(sampler) == keys  # reproducible
    sampler.set_epoch(1)
    assert list(sampler) != keys
    only_syn = list(MixSampler({"real": 10, "synthetic": 30}, parse_mix("synthetic=1"), 200, seed=3))
    assert {k[0] for k in only_syn} == {"synthetic"}
    with pytest.raises(ValueError, match="no rows"):
        MixSampler({"real": 10, "synthetic": 0}, parse_mix("real=1,synthetic=1"), 10, 0)


def test_sources_read_repos_through_a_dataloader(tmp_path):
    real = load_split(make_real_repo(tmp_path / "real"), "stitched", "train")
    syn = load_split(make_synthetic_repo(tmp_path / "syn"), "synthetic", "synthetic")
    sources = DetectionSources({"real": real, "synthetic": syn}, "hflip_scale")
    sampler = MixSampler(sources.sizes(), parse_mix("real=1,synthetic=1"), 6, seed=0)
    loader = torch.utils.data.DataLoader(sources, batch_size=3, sampler=sampler, collate_fn=collate)
    batches = list(loader)
    assert len(batches) == 2
    images, targets = batches[0]
    assert len(images) == 3 and images[0].dtype == torch.float32 and images[0].max() <= 1.0
    assert all(t["masks"].shape[0] == t["boxes"].shape[0] == t["labels"].shape[0] for t in targets)
