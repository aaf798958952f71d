"""The recipe learns at every size: short schedules reach their peak, evaluation does not depend on
stale batch-norm statistics, anchors fit the boxes, v2's pretrained normalisation is frozen."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factories_train import scene_row
from streetsynth.models.detector import build_maskrcnn, freeze_backbone_norm, load_detector, save_checkpoint_dir
from streetsynth.training.anchors import fit_ratios, matchable, plan_anchors
from streetsynth.training.data import augment, build_augmentation, collate, row_to_sample, select_segments
from streetsynth.training.evaluate import evaluate_model
from streetsynth.training.maskrcnn import lr_lambda, warmup_length
from streetsynth.training.norm import norm_layers, recompute_norm_stats


@pytest.mark.parametrize("total, warm", [(30, 6), (12, 2), (4, 0), (1000, 100)])
def test_short_schedule_reaches_its_peak_learning_rate(total, warm):
    f = lr_lambda(100, 0.001, total)
    lrs = [f(step) for step in range(total)]
    assert warmup_length(100, total) == warm
    assert max(lrs) == 1.0 and lrs.index(1.0) == warm
    assert lrs[0] == (0.001 if warm else 1.0)


def _batches(indices):
    samples = [augment(*row_to_sample(scene_row(i)), build_augmentation("none"), 0) for i in indices]
    return [collate(samples[k:k + 2]) for k in range(0, len(samples), 2)]


def test_evaluation_is_the_same_around_extra_forward_passes():
    torch.manual_seed(0)
    model = build_maskrcnn("tiny", num_classes=5, min_size=64, max_size=128)
    val = [scene_row(1000 + i) for i in range(2)]
    fixed = _batches(range(4))
    assert recompute_norm_stats(model, fixed) == 4
    before = [m.running_mean.clone() for m in norm_layers(model)]
    first = evaluate_model(model, val, progress=False)
    model.eval()
    with torch.no_grad():
        out_first = model([b.clone() for b in fixed[0][0]])
    model.train()
    with torch.no_grad():  # extra training-mode passes on other images move the running statistics ...
        for images, targets in _batches(range(10, 16)):
            model(images, targets)
    assert not all(torch.equal(a, m.running_mean) for a, m in zip(before, norm_layers(model)))
    recompute_norm_stats(model, fixed)  # ... which the recipe re-estimates before every evaluation
    assert all(torch.equal(a, m.running_mean) for a, m in zip(before, norm_layers(model)))
    assert evaluate_model(model, val, progress=False) == first
    model.eval()
    with torch.no_grad():
        out_second = model([b.clone() for b in fixed[0][0]])
    assert all(torch.equal(a["scores"], b["scores"]) for a, b in zip(out_first, out_second))


def test_anchor_matching_known_cases():
    wh = np.array([[32.0, 32.0], [4.0, 20.0]])
    # square 32 px anchor, 2 px off in x and y: IoU 900/1148 = 0.78; a 4x20 box reaches no default anchor
    assert matchable(wh, [[32.0]], [1.0], [8]).tolist() == [True, False]
    assert matchable(wh, [[16.0], [32.0]], [0.5, 1.0, 2.0], [8, 16]).tolist() == [True, False]
    assert fit_ratios(np.array([[10.0, 5], [10, 7], [4, 16], [4, 20], [4, 18]]), np.array([0, 0, 1, 1, 1])) == \
        [0.6, pytest.approx(np.sqrt(0.6 * 4.5), abs=1e-3), 4.5]


def _object_rows(height, width, boxes):
    return [{"height": height, "width": width,
             "objects": [{"bbox": list(b), "category": c} for b, c in boxes]}]


def test_resize_that_loses_a_class_is_refused_and_the_default_falls_back_to_the_image_size():
    # 8x40 px pedestrians and 40x24 px vehicles on 160x384 scenes
    rows = _object_rows(160, 384, [((10 + 20 * k, 50, 18 + 20 * k, 90), 1) for k in range(5)]
                        + [((200, 60, 240, 84), 0)] * 3)
    with pytest.raises(ValueError, match=r"--min-size 64 --max-size 154, only 0% of the pedestrian boxes "
                                         r"\(median 3\.2x16\.0 px"):
        plan_anchors(rows, "tiny", 64, 154, derive=True)
    plan = plan_anchors(rows, "tiny", None, None, derive=True)
    assert (plan["min_size"], plan["max_size"]) == (160, 384)  # 128x256 would lose the pedestrians
    assert plan["matchable"] == {"vehicle": 1.0, "pedestrian": 1.0}
    assert plan["aspect_ratios"][0] == 0.6 and plan["aspect_ratios"][-1] == 5.0
    model = build_maskrcnn("tiny", 5, anchor_sizes=plan["anchor_sizes"], aspect_ratios=plan["aspect_ratios"])
    assert model.rpn.head.cls_logits.out_channels == 6  # two sizes x three ratios per location


def test_fraction_of_the_real_rows_is_whole_segments_drawn_per_seed():
    rows = [{"segment": f"s{k // 3}", "i": k} for k in range(30)]  # ten segments of three frames
    picks = {}
    for seed in range(4):
        chosen = select_segments(rows, 0.2, seed)
        segs = {r["segment"] for r in chosen}
        assert len(segs) == 2 and len(chosen) == 6
        assert sorted(r["i"] for r in chosen) == sorted(r["i"] for r in rows if r["segment"] in segs)
        picks[seed] = tuple(sorted(segs))
        assert select_segments(rows, 0.2, seed) == chosen  # derived, not global, randomness
    assert len(set(picks.values())) > 1
    assert select_segments(rows, 1.0, 0) is rows


def test_frozen_backbone_norm_round_trips_through_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_maskrcnn("tiny", num_classes=5, min_size=64, max_size=128, frozen_norm=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.body.modules())
    assert freeze_backbone_norm(model) == 0
    save_checkpoint_dir(model, {"arch": "tiny", "num_classes": 5, "min_size": 64, "max_size": 128,
                                "frozen_norm": True}, tmp_path / "ckpt")
    loaded, _, _ = load_detector(str(tmp_path / "ckpt"))
    image = torch.from_numpy(np.asarray(scene_row(3)["image"])).permute(2, 0, 1).float() / 255
    model.eval()
    with torch.no_grad():
        assert torch.equal(model([image])[0]["scores"], loaded([image])[0]["scores"])
