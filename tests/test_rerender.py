"""Re-rendering keeps the real labels exactly and drops the instances the new image does not show."""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from factories_generate import make_real_repo

from streetsynth.generators.rerender import ADE20K_COLORS, RerenderConfig, run_rerender, seg_condition
from streetsynth.generators.writer import manifest_counts, read_manifest
from streetsynth.instances import Instances
from streetsynth.models.load import declare
from streetsynth.repo import load_split

PEDESTRIAN_COLOR = ADE20K_COLORS[1]


class ErasingPipeline:
    """Returns the conditioning layout itself with every pedestrian-coloured pixel erased."""

    def __call__(self, image, **kw):
        img = np.asarray(image).copy()
        img[(img == PEDESTRIAN_COLOR).all(axis=2)] = 0
        return SimpleNamespace(images=img[None].astype(np.float32) / 255.0)


def colour_detector(image):
    """A detector that follows the image: one mask per connected region of a class colour."""
    masks, classes = [], []
    for cls in (0, 1):
        n, labels = cv2.connectedComponents((image == ADE20K_COLORS[cls]).all(axis=2).astype(np.uint8))
        for k in range(1, n):
            masks.append(labels == k)
            classes.append(cls)
    h, w = image.shape[:2]
    return (np.stack(masks) if masks else np.zeros((0, h, w), bool)), np.asarray(classes, np.int64)


def _cfg(tmp_path, **kw):
    base = dict(real=str(tmp_path / "real"), out=str(tmp_path / "store"), steps=2, seed=1, rows_per_shard=2,
                pipeline=declare(ErasingPipeline(), "test/erasing", "seed-0"), verifier=colour_detector)
    return RerenderConfig(**{**base, **kw})


def test_erased_instance_is_dropped_and_kept_labels_are_the_real_ones(tmp_path):
    real = make_real_repo(tmp_path / "real", rows=2)
    res = run_rerender(_cfg(tmp_path))
    src = {r["id"]: r for r in load_split(real, "stitched", "train")}
    rows = list(load_split(res["folder"], "synthetic", "synthetic"))
    masked = [i for i, r in src.items() if r["instance_mask"] is not None]  # box-only frames are skipped
    assert [r["id"] for r in rows] == [f"{i}#rerender" for i in masked] and masked
    for row in rows:
        s = src[row["generation"]["source_id"]]
        d = json.loads(row["generation"]["method_details"])
        old, new = Instances.from_row(s), Instances.from_row(row)
        expected = _agreement_after_erasing_pedestrians(old)
        assert d["agreement"] == {str(int(i)): round(v, 6) for i, v in zip(old.ids, expected)}
        keep = np.asarray(expected) >= 0.5
        assert d["dropped_ids"] == [int(i) for i in old.ids[~keep]] and (old.classes[~keep] == 1).any()
        assert list(new.ids) == list(old.ids[keep]) and np.array_equal(new.masks, old.masks[keep])
        assert np.array_equal(new.boxes, old.boxes[keep]) and row["generation"]["method"] == "rerender"
        assert row["generation"]["prompt"].startswith(s["caption"] + ", ")


def _agreement_after_erasing_pedestrians(inst: Instances) -> list[float]:
    """Each instance's best IoU with a same-class region of the layout once pedestrians are erased:
    0 for pedestrians; for a vehicle, the connected region of vehicle pixels it lies in."""
    ids = inst.id_mask()
    vehicles = np.isin(ids, inst.ids[inst.classes == 0])
    _, regions = cv2.connectedComponents(vehicles.astype(np.uint8))
    out = []
    for i, cls in zip(inst.ids, inst.classes):
        mine = ids == i
        if cls != 0 or not mine.any():
            out.append(0.0)
            continue
        out.append(max(float((mine & (regions == k)).sum()) / float((mine | (regions == k)).sum())
                       for k in np.unique(regions[mine])))
    return out


def test_rows_with_too_few_surviving_instances_are_dropped_and_an_empty_version_is_refused(tmp_path):
    real = make_real_repo(tmp_path / "real", rows=2)
    rows = load_split(real, "stitched", "train")
    most = max(len(r["objects"]) for r in rows)
    with pytest.raises(ValueError, match=rf"0 rows accepted from \d+ attempts .*fewer than --min-kept {most + 1}") as err:
        run_rerender(_cfg(tmp_path, min_kept=most + 1))
    attempts = int(str(err.value).split("0 rows accepted from ")[1].split()[0])
    folder = tmp_path / "store" / "v0.1.0"
    counts = manifest_counts(read_manifest(folder / "meta" / "manifest.json"))
    assert 1 <= attempts <= len(rows) and counts["failed_samples"] == len(rows) and counts["accepted"] == 0
    assert not (folder / "meta" / "info.json").exists()


def test_condition_uses_the_ade20k_palette():
    masks = np.zeros((2, 8, 8), bool)
    masks[0, :4], masks[1, 5:, 5:] = True, True
    cond = seg_condition(Instances.from_masks(masks, [0, 1]))
    assert tuple(cond[0, 0]) == (0, 102, 200) and tuple(cond[7, 7]) == (150, 5, 61) and not cond[5, 0].any()
