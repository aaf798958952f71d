"""Occluders inside boxes: exact pixels outside the region, the occluder cut out of the labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import factories_producers as producers
from factories_generate import make_real_repo

from streetsynth.generators.occlude import (OccludeConfig, apply_occluder, choose_region, occluder_mask,
                                            parse_occluder, plan_samples, run_occlude)
from streetsynth.instances import Instances
from streetsynth.models.inpaint import build_tiny
from streetsynth.models.load import declare
from streetsynth.models.tiny_gligen import build_tiny_gligen_pipeline
from streetsynth.models.tiny_inpaint import build_tiny_inpaint_pipeline
from streetsynth.repo import load_split
from streetsynth.schema import CLASS_NAMES

PEDESTRIAN = CLASS_NAMES.index("pedestrian")


@pytest.fixture(scope="module")
def pipe():
    return producers.tiny_pipeline()  # built once per session, declaring its id and revision


@pytest.fixture(scope="module")
def gligen():
    return declare(build_tiny_gligen_pipeline(seed=0), "streetsynth/tiny-random-gligen", "seed-0")


@pytest.fixture(scope="module")
def sdxl():
    return build_tiny("sdxl-inpaint")  # the SDXL backend, through the family registry


def _cfg(tmp_path, pipe, **kw):
    base = dict(real=str(tmp_path / "real"), out=str(tmp_path / "store"), classes=("pedestrian",), min_size=4,
                placement="bottom", share=1 / 3, occluders=("a green trash bin",), size=64, steps=2, seed=5,
                rows_per_shard=2, pipeline=pipe)
    return OccludeConfig(**{**base, **kw})


def _pedestrians(inst: Instances) -> list[int]:
    """Pedestrians of 4+ pixels a side whose mask covers at least 30 % of their box (choosable ones)."""
    out = []
    for k, (box, cls) in enumerate(zip(inst.boxes, inst.classes)):
        x0, y0, x1, y1 = (int(v) for v in np.round(box))
        side = min(box[2] - box[0], box[3] - box[1])
        if cls == PEDESTRIAN and side >= 4 and inst.masks[k][y0:y1, x0:x1].sum() >= 0.3 * (x1 - x0) * (y1 - y0):
            out.append(k)
    return out


@pytest.mark.parametrize("backend, fixture", [("sd-inpaint", "pipe"), ("gligen", "gligen"), ("sdxl-inpaint", "sdxl")])
def test_occluder_over_lower_third_of_a_pedestrian(tmp_path, backend, fixture, request):
    real = make_real_repo(tmp_path / "real", rows=2)
    res = run_occlude(_cfg(tmp_path, request.getfixturevalue(fixture)))
    rows = {r["id"]: r for r in load_split(res["folder"], "synthetic", "synthetic")}
    src = {r["id"]: r for r in load_split(real, "stitched", "train")}
    # one sample per source frame with masks and a choosable pedestrian, named after it
    assert sorted(rows) == sorted(f"{g['source_id']}#o{json.loads(g['method_details'])['object_id']}"
                                  for g in (r["generation"] for r in rows.values()))
    eligible = [i for i, r in src.items() if r["instance_mask"] is not None and _pedestrians(Instances.from_row(r))]
    assert len(rows) == len(eligible) >= 1
    for sid, row in rows.items():
        g = row["generation"]
        d = json.loads(g["method_details"])
        s = src[g["source_id"]]
        before, after = np.asarray(s["image"]), np.asarray(row["image"])
        old, new = Instances.from_row(s), Instances.from_row(row)
        k = int(np.flatnonzero(old.ids == d["object_id"])[0])
        ped = old.masks[k]
        assert k in _pedestrians(old)
        # the lower third of the pedestrian's box: its bottom round(h / 3) rows, full width
        x0, y0, x1, y1 = (int(v) for v in np.round(old.boxes[k]))
        h = max(1, round((y1 - y0) / 3))
        assert d["region"] == [x0, y1 - h, x1, y1]
        region = np.zeros(ped.shape, bool)
        region[y1 - h:y1, x0:x1] = True
        assert np.array_equal(after[~region], before[~region])  # the real pixels, bit for bit
        occ = np.abs(after.astype(int) - before.astype(int)).max(axis=2) > 24
        assert occ.any() and not (occ & ~region).any()
        assert d["occluder_pixels"] == occ.sum()
        new_ped = new.masks[new.ids == d["object_id"]][0]
        assert np.array_equal(new_ped, ped & ~occ)  # the pedestrian without the occluder's pixels
        for i, m in zip(old.ids, old.masks):  # every other object loses the occluder's pixels only
            if i in new.ids and i != d["object_id"]:
                assert np.array_equal(new.masks[new.ids == i][0], m & ~occ)
        assert g["method"] == "occlude" and d["backend"] == backend and d["prompt"] == g["prompt"]
        assert d["variant"] == "plain" and "agreement" not in d  # no detector: agreement not measured
        area = (x1 - x0) * (y1 - y0)
        assert d["visible_before"] == ped[y0:y1, x0:x1].sum() / area
        assert d["visible_after"] == pytest.approx(new_ped[y0:y1, x0:x1].sum() / area)
    assert (res["folder"] / "meta" / "contact_sheet.png").exists()


def test_occluder_of_our_class_becomes_an_instance_and_hidden_objects_drop():
    masks = np.zeros((2, 20, 20), bool)
    masks[0, 2:12, 2:6] = True
    masks[1, 10:18, 10:18] = True
    inst = Instances.from_masks(masks, [PEDESTRIAN, 0], ids=[3, 7])
    occ = np.zeros((20, 20), bool)
    occ[4:12, 2:6] = True  # hides 80 % of the pedestrian
    new, shares = apply_occluder(inst, occ, drop_below=0.25, occluder_class=3, occluder_source="occ")
    assert shares == {3: pytest.approx(0.2), 7: 1.0}
    assert list(new.ids) == [7, 8] and list(new.classes) == [0, 3]
    assert np.array_equal(new.masks[1], occ) and new.sources[1] == "occ"


def test_regions_lie_inside_the_box_with_the_asked_share():
    rng = np.random.default_rng(0)
    box = np.array([10, 20, 40, 80], np.float32)
    assert choose_region(box, "bottom", 0.25, rng) == (10, 65, 40, 80)
    for placement in ("side", "random"):
        for _ in range(20):
            x0, y0, x1, y1 = choose_region(box, placement, 0.3, rng)
            assert 10 <= x0 < x1 <= 40 and 20 <= y0 < y1 <= 80
            assert abs((x1 - x0) * (y1 - y0) / 1800 - 0.3) < 0.05
    assert parse_occluder("a road sign=sign") == ("a road sign", CLASS_NAMES.index("sign"))
    with pytest.raises(ValueError, match="unknown class"):
        parse_occluder("a dog=dog")


def test_sam_mask_stays_inside_the_region():
    from segment_anything import SamPredictor

    from streetsynth.models.sam import build_tiny_sam

    rng = np.random.default_rng(0)
    before = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    after = before.copy()
    after[10:20, 5:15] = 0
    occ = occluder_mask(before, after, (5, 10, 15, 20), "sam", predictor=SamPredictor(build_tiny_sam()))
    assert not occ[:10].any() and not occ[20:].any() and not occ[:, :5].any() and not occ[:, 15:].any()


class _SecondLook:
    """A detector with known answers: nothing on every odd call, one pedestrian covering the whole image on every
    even one. The occluded object's agreement is then 0, then its mask area over the image area."""

    description = "second-look (test)"

    def __init__(self):
        self.calls = 0

    def __call__(self, image):
        self.calls += 1
        if self.calls % 2:
            return np.zeros((0,) + image.shape[:2], bool), np.zeros(0, np.int64)
        return np.ones((1,) + image.shape[:2], bool), np.array([PEDESTRIAN])


def test_refined_variant_repaints_the_object_in_its_mask_and_the_card_compares_the_variants(tmp_path, pipe):
    real = make_real_repo(tmp_path / "real", rows=2)
    res = run_occlude(_cfg(tmp_path, pipe, refine="both", verifier=_SecondLook(), iou_threshold=1e-6,
                           max_attempts=3))
    rows = {r["id"]: r for r in load_split(res["folder"], "synthetic", "synthetic")}
    src = {r["id"]: r for r in load_split(real, "stitched", "train")}
    plain = {i for i in rows if not i.endswith("+refined")}
    assert plain and {i + "+refined" for i in plain} == set(rows) - plain  # both variants of every object
    for sid, row in rows.items():
        g, d = row["generation"], json.loads(row["generation"]["method_details"])
        s = src[g["source_id"]]
        before, after = np.asarray(s["image"]), np.asarray(row["image"])
        old, new = Instances.from_row(s), Instances.from_row(row)
        ped = old.masks[int(np.flatnonzero(old.ids == d["object_id"])[0])]
        x0, y0, x1, y1 = d["region"]
        region = np.zeros(ped.shape, bool)
        region[y0:y1, x0:x1] = True
        changed = np.abs(after.astype(int) - before.astype(int)).max(axis=2) > 0
        assert d["variant"] == ("refined" if sid.endswith("+refined") else "plain")
        if d["variant"] == "refined":
            # the object repainted inside its own silhouette, the occluder over it; nothing else touched
            assert d["refine_prompt"] == "a pedestrian" and d["refined_pixels"] == ped.sum()
            assert not (changed & ~(ped | region)).any() and (changed & ped & ~region).any()
        else:
            assert not (changed & ~region).any()
        new_ped = new.masks[new.ids == d["object_id"]][0]
        assert not (new_ped & ~ped).any()  # the label keeps the silhouette, less the occluder
        # first attempt: the detector saw nothing; second: a whole-image pedestrian, IoU = mask area / image area
        assert g["attempts"] == 2 and d["attempt"] == 1
        assert d["target_agreement"] == round(new_ped.sum() / new_ped.size, 6)
    info = json.loads((res["folder"] / "meta" / "info.json").read_text())
    n = len(plain)
    for variant in ("plain", "refined"):
        v = info["variants"][variant]
        assert (v["samples"], v["accepted"], v["attempts"]) == (n, n, 2 * n)
        assert v["acceptance_rate"] == 1.0 and v["measured"] == n
        agree = [json.loads(r["generation"]["method_details"])["target_agreement"] for i, r in rows.items()
                 if i.endswith("+refined") == (variant == "refined")]
        assert v["mean_agreement"] == pytest.approx(np.mean(agree))
    assert info["counts"]["attempts"] == 4 * n and info["counts"]["rejected_attempts"] == 2 * n
    card = (res["folder"] / "README.md").read_text()
    assert "### Variants" in card and "second-look (test)" in card
    assert f"| refined | {n} | {n} | {2 * n} | 100" in card


def test_a_sample_the_detector_never_confirms_is_dropped_after_its_attempts(tmp_path, pipe):
    real = make_real_repo(tmp_path / "real", rows=2)
    blind = lambda image: (np.zeros((0,) + image.shape[:2], bool), np.zeros(0, np.int64))  # noqa: E731
    cfg = _cfg(tmp_path, pipe, verifier=blind, iou_threshold=0.5, max_attempts=2)
    n = len(plan_samples(load_split(real, "stitched", "train"), cfg))
    with pytest.raises(ValueError, match=f"0 rows accepted from {2 * n} attempts .*--iou-threshold 0.5 in 2 attempts"):
        run_occlude(cfg)
    with pytest.raises(ValueError, match="--iou-threshold needs --detector"):
        run_occlude(_cfg(tmp_path, pipe, iou_threshold=0.5))
    with pytest.raises(ValueError, match="unknown refine setting 'twice'"):
        run_occlude(_cfg(tmp_path, pipe, refine="twice"))
