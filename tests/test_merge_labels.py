"""Merging ground truth with the labeler's instances on an outpainted canvas (constructed scene).

Canvas 40x80, known region = columns 0..39. Ground truth: car A inside the known region, car B
crossing the boundary (only its carried part, columns 30..39), a box-only pedestrian. The labeler
sees car B whole (with a slightly different outline in the known region), a shifted copy of car A,
a car C in the invented region and a sliver of something at the boundary.
"""

from __future__ import annotations

import numpy as np
import pytest

from streetsynth.generators.merge_labels import merge_labels
from streetsynth.instances import Instances
from streetsynth.training.data import unmasked_objects

H, W, KW = 40, 80, 40
CAR, PED = 0, 1


def _rect(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.fixture
def scene():
    known = np.zeros((H, W), bool)
    known[:, :KW] = True
    car_a, car_b_carried = _rect(5, 20, 5, 15), _rect(10, 25, 30, KW)
    truth = Instances(np.array([[5, 5, 15, 20], [30, 10, KW, 25], [18, 28, 26, 38]], np.float32),
                      [CAR, CAR, PED], H, W,
                      masks=np.stack([car_a, car_b_carried, np.zeros((H, W), bool)]),
                      sources=["FRONT", "FRONT+FRONT_RIGHT", "FRONT"])
    car_b_whole = _rect(11, 25, 31, 55)
    car_a_shifted = _rect(6, 21, 6, 16)
    car_c = _rect(5, 30, 60, 75)
    sliver = _rect(30, 32, 20, KW + 1)
    labelled = Instances.from_masks(np.stack([car_b_whole, car_a_shifted, car_c, sliver]), [CAR, CAR, CAR, PED],
                                    scores=[0.9, 0.8, 0.7, 0.6], sources=["maskrcnn+sam"] * 4)
    return known, truth, labelled, car_a, car_b_carried, car_b_whole, car_c


def test_ground_truth_kept_invented_taken_boundary_object_joined(scene):
    known, truth, labelled, car_a, car_b_carried, car_b_whole, car_c = scene
    out = merge_labels(truth, labelled, known)
    assert out.sources == ["ground-truth", "ground-truth+maskrcnn+sam", "ground-truth", "maskrcnn+sam"]
    assert out.classes.tolist() == [CAR, CAR, PED, CAR]
    # A: ground truth exactly (the labeler's shifted copy is not used)
    assert np.array_equal(out.masks[0], car_a)
    # B: one instance, the carried part exactly plus the labeler's invented part
    assert np.array_equal(out.masks[1], car_b_carried | (car_b_whole & ~known))
    assert out.boxes[1].tolist() == [30, 10, 55, 25]
    # the box-only pedestrian keeps its box and stays unmasked (so drop-row will not train on the row)
    assert not out.masks[2].any() and out.boxes[2].tolist() == [18, 28, 26, 38]
    # C: the labeler's instance, all of it in the invented region, its score kept
    assert np.array_equal(out.masks[3], car_c) and out.scores[3] == pytest.approx(0.7)
    # nothing of the labeler inside the known region except the joined object's own carried part
    assert not (out.masks[3:] & known).any()
    assert unmasked_objects(out.to_row()) == 1


def test_nothing_to_merge(scene):
    known, truth, labelled, *_ = scene
    only_truth = merge_labels(truth, Instances.empty(H, W), known)
    assert only_truth.sources == ["ground-truth"] * 3 and np.array_equal(only_truth.masks[:2], truth.masks[:2])
    only_labels = merge_labels(Instances.empty(H, W), labelled, known)
    assert only_labels.sources == ["maskrcnn+sam"] * 2
    assert np.array_equal(only_labels.masks[0], labelled.masks[0] & ~known)
    with pytest.raises(ValueError, match="sizes differ"):
        merge_labels(truth, labelled, known[:, :60])


def test_joined_object_gets_its_mask_iou_with_ground_truth_and_keeps_sams_scores(scene):
    known, truth, labelled, car_a, car_b_carried, car_b_whole, car_c = scene
    labelled.extra["sam_iou"] = np.array([0.91, 0.81, 0.71, 0.61], np.float32)
    labelled.extra["sam_stability"] = np.array([0.92, 0.82, 0.72, 0.62], np.float32)
    out = merge_labels(truth, labelled, known)
    # car B: labeller's known part rows 11..24, cols 31..39 (14x9) against the carried rows 10..24, cols 30..39 (15x10)
    assert out.extra["gt_iou"][1] == pytest.approx(14 * 9 / (15 * 10))
    assert out.extra["sam_iou"].tolist()[1::2] == pytest.approx([0.91, 0.71])  # car B (joined), car C
    assert out.extra["sam_stability"][3] == pytest.approx(0.72)
    # ground truth no labeller mask joined, and the labeller's own car C: nothing to compare with
    assert np.isnan(out.extra["gt_iou"][[0, 2, 3]]).all() and np.isnan(out.extra["sam_iou"][[0, 2]]).all()
