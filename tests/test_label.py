"""The labeler's rules on constructed mask stacks with known answers, and its wiring on tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streetsynth.generators.label import (SOURCE, LabelSettings, assign_to_detections, build_labeler, combine,
                                          intersections, nest_parents, union_groups)
from streetsynth.instances import Instances
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


@pytest.fixture(scope="module")
def tiny_labeler():
    # keep_overlap=0: random SAM masks scatter over the image, so only this keeps them for the wiring.
    return build_labeler("tiny", "tiny", mode="box", score_threshold=0.1, keep_overlap=0.0)


def test_tiny_labeler_end_to_end_shape_type_provenance(tiny_labeler):
    img = (np.random.default_rng(1).random((H, W, 3)) * 255).astype(np.uint8)
    inst = tiny_labeler(img)
    assert isinstance(inst, Instances)
    assert len(inst) >= 1 and inst.masks.shape == (len(inst), H, W)
    assert set(inst.classes.tolist()) <= {VEH, PED}
    assert inst.sources == [SOURCE] * len(inst)
    assert (inst.boxes[:, 2:] > inst.boxes[:, :2]).all()
    desc = json.loads(tiny_labeler.description)
    assert desc["detector"] == "maskrcnn:tiny(seed=0)" and desc["sam"] == "sam:tiny(seed=0)"
    assert desc["mode"] == "box" and desc["score_threshold"] == 0.1
    again = tiny_labeler(img)
    assert (again.masks == inst.masks).all()  # deterministic


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
                        points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0)
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
