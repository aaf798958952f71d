"""The labeler's rules on constructed mask stacks with known answers, and its wiring on tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from streetsynth.generators.label import (SOURCE, LabelSettings, assign_to_detections, boxes_and_areas,
                                          build_labeler, clip_to_boxes, combine, intersections, nest_parents, sam_masks_for_boxes,
                                          sam_predict_boxes, union_groups)
from streetsynth.instances import Instances
from streetsynth.models.sam import build_constant_sam
from streetsynth.schema import CLASS_NAMES

H, W = 64, 128
VEH, PED = CLASS_NAMES.index("vehicle"), CLASS_NAMES.index("pedestrian")


def rect(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_intersections_match_pairwise_counts_and_chunking():
    rng = np.random.default_rng(0)
    a, b = rng.random((5, H, W)) > 0.5, rng.random((3, H, W)) > 0.7
    expected = np.array([[(x & y).sum() for y in b] for x in a])
    assert (intersections(a, b) == expected).all()
    assert (intersections(a, b, chunk=1000) == expected).all()  # chunks that do not divide H*W
    assert intersections(a[:0], b).shape == (0, 3)


def test_person_split_into_parts_comes_out_as_one_pedestrian_mask():
    person = rect(10, 60, 40, 56)
    head, torso, legs = rect(10, 20, 44, 52), rect(20, 40, 40, 56), rect(40, 60, 42, 54)
    masks, classes, scores = combine(np.stack([head, torso, legs]), person[None], [PED], [0.9])
    assert masks.shape == (1, H, W)
    assert classes.tolist() == [PED]
    assert (masks[0] == (head | torso | legs)).all()
    assert scores.tolist() == pytest.approx([0.9])


def test_road_mask_touching_a_car_is_not_kept():
    car = rect(30, 50, 20, 60)
    road = rect(45, 64, 0, 128)  # overlaps the car's bottom rows but mostly lies outside it
    car_sam = rect(31, 50, 21, 59)
    owner = assign_to_detections(np.stack([road, car_sam]), car[None], keep_overlap=0.9)
    assert owner.tolist() == [-1, 0]
    masks, classes, _ = combine(np.stack([road, car_sam]), car[None], [VEH], [0.8])
    assert classes.tolist() == [VEH] and (masks[0] == car_sam).all()


def test_mask_95_percent_inside_another_stays_separate_at_99():
    big = rect(0, 40, 0, 100)
    small = rect(0, 20, 0, 19) | rect(40, 41, 0, 20)  # 380 of 400 pixels inside big: 95 %
    stack = np.stack([big, small])
    assert nest_parents(stack, 0.99).tolist() == [0, 1]
    assert nest_parents(stack, 0.9).tolist() == [0, 0]
    dets = np.stack([big, small])
    masks, classes, _ = combine(stack, dets, [VEH, PED], [0.9, 0.8], keep_overlap=0.9, merge_inside=0.99)
    assert classes.tolist() == [VEH, PED] and len(masks) == 2


def test_nested_part_of_another_detection_joins_the_bigger_object():
    car = rect(10, 50, 10, 90)
    wheel = rect(40, 50, 20, 30)  # a duplicate detection that is only a wheel
    masks, classes, scores = combine(np.stack([car, wheel]), np.stack([car, wheel]), [VEH, PED], [0.9, 0.95])
    assert classes.tolist() == [VEH] and (masks[0] == car).all() and scores.tolist() == pytest.approx([0.9])


def test_chains_of_parts_resolve_to_the_outermost_mask():
    a, b, c = rect(0, 60, 0, 100), rect(0, 30, 0, 50), rect(0, 10, 0, 10)
    assert nest_parents(np.stack([c, b, a]), 0.99).tolist() == [2, 2, 2]
    assert nest_parents(np.stack([a, a]), 0.99).tolist() == [0, 0]  # two copies become one


def test_two_kept_masks_over_one_detection_are_unioned():
    car = rect(20, 50, 10, 70)
    left, right = rect(20, 50, 10, 40), rect(20, 50, 38, 70)  # overlap a little, neither inside the other
    masks, classes, _ = combine(np.stack([left, right]), car[None], [VEH], [0.7])
    assert len(masks) == 1 and (masks[0] == car).all() and classes.tolist() == [VEH]


def test_union_groups_by_label():
    a, b, c = rect(0, 5, 0, 5), rect(10, 15, 0, 5), rect(20, 25, 0, 5)
    labels, merged = union_groups(np.stack([a, b, c]), np.array([3, 1, 3]))
    assert labels.tolist() == [1, 3] and (merged[0] == b).all() and (merged[1] == (a | c)).all()


def _dense_combine(sam, det, classes, scores, keep_overlap, merge_inside):
    """The merge as it was before box-first: every pair counted over the full image (the reference)."""
    def frac(a, b):
        return intersections(a, b) / np.maximum(a.reshape(len(a), -1).sum(axis=1), 1)[:, None]

    empty = (sam[:0], np.zeros(0, np.int64), np.zeros(0, np.float32))
    if len(sam) == 0 or len(det) == 0:
        return empty
    f = frac(sam, det)
    best = f.argmax(axis=1)
    owner = np.where(f[np.arange(len(best)), best] >= keep_overlap, best, -1)
    kept = owner >= 0
    if not kept.any():
        return empty
    masks, owner = sam[kept], owner[kept]
    n, area, idx = len(masks), masks.reshape(len(masks), -1).sum(axis=1), np.arange(len(masks))
    bigger = (area[None, :] > area[:, None]) | ((area[None, :] == area[:, None]) & (idx[None, :] < idx[:, None]))
    holds = (frac(masks, masks) >= merge_inside) & bigger & (area[:, None] > 0)
    parent = np.where(holds.any(axis=1), np.where(holds, area[None, :], -1).argmax(axis=1), idx)
    for _ in range(n):
        parent = parent[parent]
    groups = owner[parent]
    dets = np.unique(groups)
    merged = np.stack([np.logical_or.reduce(masks[groups == d], axis=0) for d in dets])
    return merged, np.asarray(classes)[dets], np.asarray(scores, np.float32)[dets]


def _random_stack(rng, n, objects=()):
    """Rectangles, ellipses, parts of ``objects`` or of earlier masks (cropped or speckled), with empty
    masks, exact copies and full-frame masks mixed in."""
    yy, xx = np.mgrid[:H, :W]
    out = []
    for _ in range(n):
        kind = rng.integers(0, 7)
        pool = list(objects) + out
        y0, x0 = rng.integers(0, H - 2), rng.integers(0, W - 2)
        y1, x1 = rng.integers(y0 + 1, H + 1), rng.integers(x0 + 1, W + 1)
        if kind == 0 and out:
            m = out[rng.integers(0, len(out))].copy()
        elif kind == 1:
            m = np.zeros((H, W), bool) if rng.random() < 0.5 else np.ones((H, W), bool)
        elif kind == 2:
            cy, cx, ry, rx = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2 + 0.5, (x1 - x0) / 2 + 0.5
            m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        elif kind == 3 and pool:
            m = pool[rng.integers(0, len(pool))] & (rng.random((H, W)) < 0.995)  # speckled copy of a parent
        elif kind in (4, 5) and pool:
            m = pool[rng.integers(0, len(pool))] & rect(y0, y1, x0, x1)  # a part, sometimes with a rim outside
            if kind == 5:
                m = m | rect(y0, min(y0 + 2, y1), x0, x1)
        else:
            m = rect(y0, y1, x0, x1)
        out.append(m)
    return np.stack(out)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("keep_overlap,merge_inside", [(0.9, 0.99), (0.5, 0.9), (0.0, 0.0), (1.0, 1.0)])
def test_box_first_merge_agrees_with_dense_merge_on_random_stacks(seed, keep_overlap, merge_inside):
    rng = np.random.default_rng(seed)
    det = _random_stack(rng, int(rng.integers(1, 8)))
    sam = _random_stack(rng, int(rng.integers(1, 40)), objects=det)
    classes, scores = rng.integers(0, 3, len(det)), rng.random(len(det)).astype(np.float32)
    got = combine(sam, det, classes, scores, keep_overlap, merge_inside)
    want = _dense_combine(sam, det, classes, scores, keep_overlap, merge_inside)
    assert got[0].shape == want[0].shape and (got[0] == want[0]).all()
    assert got[1].tolist() == want[1].tolist() and got[2].tolist() == want[2].tolist()


def test_boxes_and_areas_of_masks():
    masks = np.stack([rect(3, 9, 5, 20), np.zeros((H, W), bool), rect(0, H, 0, W), rect(10, 11, 7, 8) | rect(30, 31, 2, 3)])
    boxes, areas = boxes_and_areas(masks)
    assert boxes.tolist() == [[3, 5, 9, 20], [0, 0, 0, 0], [0, 0, H, W], [10, 2, 31, 8]]
    assert areas.tolist() == [90, 0, H * W, 2]


@pytest.mark.parametrize("n_sam,n_det", [(0, 0), (0, 2), (3, 0)])
def test_empty_inputs(n_sam, n_det):
    sam = np.zeros((n_sam, H, W), bool)
    sam[:, :10, :10] = True
    det = np.zeros((n_det, H, W), bool)
    masks, classes, scores = combine(sam, det, np.zeros(n_det, int), np.ones(n_det))
    assert masks.shape == (0, H, W) and classes.shape == (0,) and scores.shape == (0,)
    assert assign_to_detections(sam, det).tolist() == [-1] * n_sam
    assert nest_parents(np.zeros((0, H, W), bool)).shape == (0,)


def test_settings_refuse_bad_values():
    with pytest.raises(ValueError, match="unknown SAM mode"):
        LabelSettings(mode="points")
    with pytest.raises(ValueError, match="keep_overlap"):
        LabelSettings(keep_overlap=1.5)
    with pytest.raises(ValueError, match="points_per_batch"):
        LabelSettings(points_per_batch=0)


@pytest.fixture(scope="module")
def tiny_labeler():
    # keep_overlap=0: random SAM masks scatter over the image, so only this keeps them for the wiring.
    return build_labeler("tiny", "tiny", mode="box", score_threshold=0.1, keep_overlap=0.0)


class FixedDetector(torch.nn.Module):
    """A detector that always finds the same objects: known inputs for the labeler's wiring."""

    def __init__(self, boxes, labels, scores, grow: int = 0) -> None:
        super().__init__()
        self.boxes = torch.tensor(boxes, dtype=torch.float32)
        self.labels, self.scores, self.grow = torch.tensor(labels), torch.tensor(scores), grow

    def forward(self, images):
        h, w = images[0].shape[1:]
        masks = torch.stack([torch.from_numpy(box_rect(b, h, w, self.grow)) for b in self.boxes.numpy()])
        return [{"boxes": self.boxes, "labels": self.labels, "scores": self.scores, "masks": masks[:, None].float()}]


def box_rect(box, h: int = H, w: int = W, margin: int = 4) -> np.ndarray:
    """The pixels a box covers, grown by ``margin``: floor/ceil of the box's xyxy corners, cut to the image."""
    x0, y0, x1, y1 = box
    m = np.zeros((h, w), bool)
    m[max(int(np.floor(y0)) - margin, 0):int(np.ceil(y1)) + margin,
      max(int(np.floor(x0)) - margin, 0):int(np.ceil(x1)) + margin] = True
    return m


def coco_label(labeler, ours: int) -> int:
    return int(np.flatnonzero(labeler._lut == ours)[0])


def test_tiny_labeler_end_to_end_gives_each_kept_detection_its_box_shaped_mask():
    """A SAM that answers the whole image for every box: each kept detection's mask is its box plus the margin."""
    lab = build_labeler("tiny", "tiny", score_threshold=0.5)
    unknown = int(np.flatnonzero(lab._lut < 0)[0])
    boxes = [[10, 8, 50, 38], [100, 10, 116, 58.5], [60, 20, 90, 50], [70, 5, 80, 15]]
    labels = [coco_label(lab, VEH), coco_label(lab, PED), coco_label(lab, VEH), unknown]
    lab.detector = FixedDetector(boxes, labels, [0.9, 0.8, 0.3, 0.95], grow=4)
    lab.predictor = SamPredictor(build_constant_sam(True))
    inst = lab(np.zeros((H, W, 3), np.uint8))
    assert inst.classes.tolist() == [VEH, PED]  # the low-score car and the unknown class are dropped
    assert inst.scores.tolist() == pytest.approx([0.9, 0.8])
    assert np.array_equal(inst.masks, np.stack([box_rect(boxes[0]), box_rect(boxes[1])]))
    assert inst.boxes.tolist() == [[6, 4, 54, 42], [96, 6, 120, 63]]
    assert inst.sources == [SOURCE, SOURCE]
    desc = json.loads(lab.description)
    assert desc["detector"] == "maskrcnn:tiny(seed=0)" and desc["sam"] == "sam:tiny(seed=0)"
    assert desc["mode"] == "box" and desc["score_threshold"] == 0.5 and desc["box_margin"] == 4
    lab.predictor = SamPredictor(build_constant_sam(False))
    assert len(lab(np.zeros((H, W, 3), np.uint8))) == 0  # SAM found nothing in any box: no object


def test_box_prompted_masks_are_cut_to_their_box_with_the_margin():
    img = np.zeros((H, W, 3), np.uint8)
    boxes = np.array([[10.2, 5, 40, 30.5], [120, 50, 128, 64], [0, 0, 3, 2]], np.float32)
    full = SamPredictor(build_constant_sam(True))
    raw = sam_masks_for_boxes(full, img, boxes, margin=None)
    assert raw.all()  # this SAM answers every box with the whole image
    cut = sam_masks_for_boxes(full, img, boxes)
    assert np.array_equal(cut[0], rect(1, 35, 6, 44))  # rows 5-4 .. ceil(30.5)+4, columns floor(10.2)-4 .. 40+4
    assert np.array_equal(cut[1], rect(46, 64, 116, 128))  # cut at the image's edge
    assert np.array_equal(cut[2], rect(0, 6, 0, 7))
    assert np.array_equal(sam_masks_for_boxes(full, img, boxes, margin=0)[0], rect(5, 31, 10, 40))
    assert not sam_masks_for_boxes(SamPredictor(build_constant_sam(False)), img, boxes).any()


def test_tiny_random_sam_masks_keep_no_pixel_outside_their_box(tiny_labeler):
    img = (np.random.default_rng(3).random((H, W, 3)) * 255).astype(np.uint8)
    boxes = np.array([[4, 4, 30, 40], [50, 10, 80, 30], [90, 30, 120, 60]], np.float32)
    raw = sam_masks_for_boxes(tiny_labeler.predictor, img, boxes, margin=None)
    cut = sam_masks_for_boxes(tiny_labeler.predictor, img, boxes)
    inside = np.stack([box_rect(b) for b in boxes])
    assert np.count_nonzero(cut & ~inside) == 0
    assert np.array_equal(cut, raw & inside)  # inside its box a mask is SAM's, pixel for pixel
    assert np.array_equal(clip_to_boxes(raw, boxes, 0), raw & np.stack([box_rect(b, margin=0) for b in boxes]))


def test_batched_box_prompts_give_the_masks_of_one_box_at_a_time(tiny_labeler):
    img = (np.random.default_rng(3).random((H, W, 3)) * 255).astype(np.uint8)
    boxes = np.array([[4, 4, 60, 40], [50, 10, 120, 60], [0, 0, W, H]], np.float32)
    batched = sam_masks_for_boxes(tiny_labeler.predictor, img, boxes)
    assert batched.shape == (3, H, W) and batched.dtype == bool
    one_by_one = np.concatenate([sam_masks_for_boxes(tiny_labeler.predictor, img, b[None]) for b in boxes])
    assert (batched == one_by_one).all() and batched.any()
    assert sam_masks_for_boxes(tiny_labeler.predictor, img, np.zeros((0, 4))).shape == (0, H, W)


def test_labelled_instances_carry_the_scores_sam_and_the_detector_returned(tiny_labeler):
    """Each instance's detector score and SAM's predicted IoU and stability score are the ones the models
    gave for its box, finite and in range, and they survive the row round trip."""
    from segment_anything.utils.amg import calculate_stability_score

    lab = build_labeler("tiny", "tiny", score_threshold=0.5, keep_overlap=0.0)
    boxes = [[10, 8, 50, 38], [70, 10, 116, 58]]
    lab.detector = FixedDetector(boxes, [coco_label(lab, VEH), coco_label(lab, PED)], [0.9, 0.7], grow=4)
    lab.sam, lab.predictor = tiny_labeler.sam, tiny_labeler.predictor
    img = (np.random.default_rng(5).random((H, W, 3)) * 255).astype(np.uint8)
    inst = lab(img)
    assert inst.classes.tolist() == [VEH, PED] and inst.scores.tolist() == pytest.approx([0.9, 0.7])
    # the same boxes through SamPredictor's own predict, one at a time
    iou, stab = [], []
    for b in boxes:
        logits, pred, _ = lab.predictor.set_image(img) or lab.predictor.predict(box=np.array(b), multimask_output=False,
                                                                              return_logits=True)
        iou.append(pred[0])
        stab.append(float(calculate_stability_score(torch.from_numpy(logits), 0.0, 1.0)[0]))
    np.testing.assert_allclose(inst.extra["sam_iou"], iou, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(inst.extra["sam_stability"], stab, rtol=1e-4, atol=1e-5)
    assert ((inst.extra["sam_stability"] >= 0) & (inst.extra["sam_stability"] <= 1)).all()
    assert np.isnan(inst.extra["gt_iou"]).all()  # nothing to compare with
    back = Instances.from_row({**inst.to_row(), "height": H, "width": W})
    for name in ("sam_iou", "sam_stability"):
        np.testing.assert_allclose(back.extra[name], inst.extra[name], rtol=1e-6)
    assert [o["gt_iou"] for o in inst.to_row()["objects"]] == [None, None]


def test_merged_instance_keeps_the_lowest_sam_score_of_its_parts():
    person = rect(10, 60, 40, 56)
    parts = np.stack([rect(10, 20, 44, 52), rect(20, 40, 40, 56), rect(40, 60, 42, 54)])
    scores = np.array([[0.9, 0.8], [0.6, 0.95], [0.7, 0.5]], np.float32)
    masks, classes, det, sam = combine(parts, person[None], [PED], [0.9], sam_scores=scores)
    assert classes.tolist() == [PED] and sam.tolist() == [pytest.approx([0.6, 0.5])]
    assert combine(parts[:0], person[None], [PED], [0.9], sam_scores=scores[:0])[3].shape == (0, 2)


def test_sam_scores_of_an_empty_prompt_list(tiny_labeler):
    masks, iou, stab = sam_predict_boxes(tiny_labeler.predictor, np.zeros((H, W, 3), np.uint8), np.zeros((0, 4)))
    assert masks.shape == (0, H, W) and iou.shape == stab.shape == (0,)


def test_no_detections_gives_empty_instances(tiny_labeler):
    strict = build_labeler("tiny", "tiny", score_threshold=0.99)
    strict.detector, strict.sam = tiny_labeler.detector, tiny_labeler.sam
    inst = strict(np.zeros((H, W, 3), np.uint8))
    assert len(inst) == 0 and inst.masks.shape == (0, H, W)


def test_bad_image_is_refused(tiny_labeler):
    with pytest.raises(ValueError, match="RGB uint8"):
        tiny_labeler(np.zeros((H, W), np.float32))


@pytest.mark.slow
def test_tiny_labeler_auto_mode():
    lab = build_labeler("tiny", "tiny", mode="auto", score_threshold=0.1, keep_overlap=0.0,
                        points_per_side=2, points_per_batch=3, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    assert lab._generator().points_per_batch == 3
    inst = lab((np.random.default_rng(2).random((H, W, 3)) * 255).astype(np.uint8))
    assert isinstance(inst, Instances) and inst.masks.shape[1:] == (H, W)


def _row(index: int, synthetic: bool) -> dict:
    from PIL import Image

    rng = np.random.default_rng(index)
    img = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    gt = Instances.from_masks(rect(10, 40, 10, 40)[None], [VEH], sources=["gt"]).to_row()
    row = {
        "id": f"seg_{index:03d}", "segment": "seg", "timestamp_micros": index,
        "metadata": {"time_of_day": "Day", "location": "test", "weather": "sunny"},
        "image": Image.fromarray(img), "width": W, "height": H,
        "objects": gt["objects"] if index % 2 == 0 else [],  # odd rows: a real frame without labels
        "instance_mask": gt["instance_mask"] if index % 2 == 0 else None,
        "caption": "a street", "caption_source": "test",
        "stitch": {"method": "test", "yaw_deg": 25.0, "front_x1": 80, "right_x0": 48},
    }
    if synthetic:
        row["generation"] = {"source_id": row["id"], "model_id": "tiny", "model_revision": "", "prompt": "p",
                             "negative_prompt": "", "seed": index, "steps": 2, "guidance_scale": 1.0,
                             "strength": 1.0, "known_width": 64, "seam_score": 0.0, "seam_threshold": 1.0,
                             "attempts": 1, "labeler": "none", "package_version": "0"}
    return row


def make_repo(path, config: str, split: str, n: int = 3):
    from streetsynth import repo, schema

    rows = [_row(i, config == schema.SYNTHETIC) for i in range(n)]
    repo.write_shard(path, config, split, 0, rows, schema.features_for(config))
    repo.write_info(path, {"kind": config, "version": "v0.1.0", "fingerprint": "src123"})
    repo.write_readme(path, body="test repo\n")
    return path


@pytest.mark.parametrize("config,split,n", [("synthetic", "synthetic", 3), ("stitched", "train", 1)])
def test_label_command_writes_a_new_version_readable_like_the_source(tmp_path, config, split, n):
    from streetsynth import repo, schema
    from streetsynth.cli import main

    src = make_repo(tmp_path / "src", config, split, n)
    before = sorted(p.read_bytes() for p in (src / "data").rglob("*.parquet"))
    argv = ["label", "--data", str(src), "--out", str(tmp_path / "store"), "--score-threshold", "0.1",
            "--keep-overlap", "0", "--shard-size", "2"]
    assert main(argv) == 0
    out = tmp_path / "store" / "v0.1.0"
    ds = repo.load_split(out, config, split)
    assert ds.features == schema.features_for(config)
    assert ds["id"] == [f"seg_{i:03d}" for i in range(n)]
    assert len(list((out / "data" / config).glob("*.parquet"))) == (n + 1) // 2
    src_ds = repo.load_split(src, config, split)
    for new, old in zip(ds, src_ds):
        assert np.array_equal(np.asarray(new["image"]), np.asarray(old["image"]))  # images carried unchanged
        inst = Instances.from_row(new)
        assert len(inst) >= 1 and all(o["source"] == SOURCE for o in new["objects"])
        assert inst.masks.any(axis=(1, 2)).all()
    info = repo.read_info(out)
    assert info["source"]["fingerprint"] == "src123" and info["label"]["detector"] == "maskrcnn:tiny(seed=0)"
    if config == "synthetic":
        assert json.loads(ds[0]["generation"]["labeler"])["keep_overlap"] == 0.0
    assert sorted(p.read_bytes() for p in (src / "data").rglob("*.parquet")) == before  # source untouched
    assert main(argv) == 0 and not (tmp_path / "store" / "v0.1.1").exists()  # same run: found done
    if n > 1:
        assert main(argv + ["--limit", "1"]) == 0 and (tmp_path / "store" / "v0.1.1").exists()


def test_label_command_errors_name_the_problem(tmp_path, capsys):
    from streetsynth.cli import main

    src = make_repo(tmp_path / "src", "stitched", "train", n=1)
    assert main(["label", "--data", str(src), "--out", str(tmp_path / "s"), "--config", "synthetic"]) == 2
    assert "no config 'synthetic'" in capsys.readouterr().err
    assert main(["label", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "s")]) == 2
    assert "no such dataset repo" in capsys.readouterr().err
