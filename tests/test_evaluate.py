"""COCO box/mask AP on known answers: ground truth as predictions scores 1.0, wrong ones lower."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from factories_train import make_real_repo, make_scene
from streetsynth.instances import Instances
from streetsynth.repo import load_split
from streetsynth.training.evaluate import evaluate_model, evaluate_predictions, format_table, write_metrics


def _scenes(n=4):
    return [make_scene(i, n_objects=3)[1] for i in range(n)]


def test_ground_truth_as_predictions_scores_one():
    gts = _scenes()
    m = evaluate_predictions(gts, gts)
    for name in ("box", "mask"):
        assert m[name]["AP"] == pytest.approx(1.0)
        assert m[name]["AP50"] == pytest.approx(1.0)
        present = {int(c) for g in gts for c in g.classes}
        for k, cls in enumerate(["vehicle", "pedestrian", "cyclist", "sign"]):
            assert (m[name]["per_class"][cls] == pytest.approx(1.0)) if k in present else m[name]["per_class"][cls] is None


def test_shuffled_predictions_score_lower():
    gts = _scenes()
    shuffled = gts[1:] + gts[:1]  # each image gets another image's objects
    m = evaluate_predictions(gts, shuffled)
    assert m["box"]["AP"] < 0.5 and m["mask"]["AP"] < 0.5


def test_rows_and_torchvision_outputs(tmp_path):
    real = make_real_repo(tmp_path / "real", n_train=1, n_val=3)
    rows = list(load_split(real, "stitched", "validation"))
    outs = []
    for r in rows:
        inst = Instances.from_row(r)
        outs.append({"boxes": torch.from_numpy(inst.boxes), "labels": torch.from_numpy(inst.classes + 1),
                     "scores": torch.ones(len(inst)),
                     "masks": torch.from_numpy(inst.masks).float()[:, None]})
    m = evaluate_predictions(rows, outs)
    assert m["box"]["AP"] == pytest.approx(1.0) and m["mask"]["AP"] == pytest.approx(1.0)
    # Shifted boxes (IoU about 0.6 for these sizes) keep AP50 but lose AP75.
    shifted = [dict(o, boxes=o["boxes"] + torch.tensor([8.0, 0, 8.0, 0])) for o in outs]
    m2 = evaluate_predictions(rows, shifted)
    assert m2["box"]["AP75"] < m["box"]["AP75"]
    path = write_metrics(m, tmp_path / "m.json")
    assert path.exists() and "box" in format_table(m) and "mask" in format_table(m)


def test_empty_cases():
    gts = _scenes(2)
    none = [Instances.empty(g.height, g.width) for g in gts]
    m = evaluate_predictions(gts, none)
    assert m["box"]["AP"] == 0.0 and m["mask"]["AP"] == 0.0
    m = evaluate_predictions(none, none)
    assert m["box"]["AP"] is None
    with pytest.raises(ValueError, match="predictions for"):
        evaluate_predictions(gts, none[:1])


def test_box_only_predictions_give_no_mask_ap():
    gts = _scenes(2)
    boxes_only = [Instances(g.boxes, g.classes, g.height, g.width) for g in gts]
    m = evaluate_predictions(gts, boxes_only)
    assert m["box"]["AP"] == pytest.approx(1.0) and m["mask"] is None


class _AlwaysRight(torch.nn.Module):
    """A detector that answers each image, in order, with its row's ground truth as soft masks.

    Its outputs live in NumPy-allocated buffers, so tracemalloc sees them if evaluation keeps them.
    """

    def __init__(self, rows):
        super().__init__()
        self.rows = rows
        self.next = 0

    def forward(self, images):
        outs = []
        for _ in images:
            inst = Instances.from_row(self.rows[self.next])
            self.next += 1
            outs.append({"boxes": torch.from_numpy(inst.boxes), "labels": torch.from_numpy(inst.classes + 1),
                         "scores": torch.from_numpy(np.linspace(1.0, 0.9, len(inst), dtype=np.float32)),
                         "masks": torch.from_numpy(inst.masks.astype(np.float32)[:, None])})
        return outs


def _peak_eval_memory(rows):
    tracemalloc.start()
    try:
        metrics = evaluate_model(_AlwaysRight(rows), rows, batch_size=4, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, metrics


def test_evaluation_memory_is_flat_in_the_number_of_images(tmp_path):
    # 128x256 scenes from the builder, 5-10 objects each: one float32 mask is 128 KiB, so keeping the
    # masks would add 128 KiB per object between 10 and 60 rows. Evaluation keeps RLEs only: with
    # COCOeval's per-image records that measured about 3.4 KiB per object; the bound is 12 KiB.
    real = make_real_repo(tmp_path / "real", n_train=1, n_val=60, height=128, width=256)
    rows = load_split(real, "stitched", "validation")
    small_peak, small = _peak_eval_memory(rows.select(range(10)))
    large_peak, large = _peak_eval_memory(rows)
    assert large["images"] == 60 and large["objects"] == sum(len(o) for o in rows["objects"])
    for m in (small, large):
        assert m["box"]["AP"] == pytest.approx(1.0) and m["mask"]["AP"] == pytest.approx(1.0)
    more = large["objects"] - small["objects"]
    assert large_peak - small_peak < 12 * 2**10 * more, (small_peak, large_peak, more)
