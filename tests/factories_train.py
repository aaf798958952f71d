"""Data for the training tests: repos made by the producers, and single rows with known colours.

Repos come from :mod:`factories_producers` (sample maker -> ``build_real`` -> tiny generate ->
label). The single rows of :func:`scene_row` (a flat background with rectangles for vehicles and
ellipses for pedestrians of fixed colours) test the row -> sample conversion pixel for pixel.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

import factories_producers as producers
import pyarrow as pa
import pyarrow.parquet as pq
from streetsynth import repo, schema
from streetsynth.instances import Instances, decode_id_mask, encode_id_mask

COLOURS = {0: (220, 40, 40), 1: (40, 220, 40), 2: (40, 40, 220), 3: (220, 220, 40)}


def make_scene(index: int, height: int = 64, width: int = 128, n_objects: int = 2, seed: int = 0
               ) -> tuple[np.ndarray, Instances]:
    """An RGB scene and its instances: shapes placed from (seed, index), none overlapping."""
    rng = np.random.default_rng([seed, index])
    img = np.full((height, width, 3), 90 + 10 * (index % 5), np.uint8)
    masks, classes = [], []
    slot = width // max(n_objects, 1)
    for k in range(n_objects):
        cls = int(rng.integers(0, 2))
        w = int(rng.integers(slot // 3, slot - 4))
        h = int(rng.integers(height // 4, height // 2))
        x0 = k * slot + int(rng.integers(0, slot - w))
        y0 = int(rng.integers(0, height - h))
        m = np.zeros((height, width), np.uint8)
        if cls == 0:
            m[y0:y0 + h, x0:x0 + w] = 1
        else:
            cv2.ellipse(m, (x0 + w // 2, y0 + h // 2), (max(w // 2, 1), max(h // 2, 1)), 0, 0, 360, 1, -1)
        img[m.astype(bool)] = COLOURS[cls]
        masks.append(m.astype(bool))
        classes.append(cls)
    if not masks:
        return img, Instances.empty(height, width)
    return img, Instances.from_masks(np.stack(masks), classes, sources=["test"] * len(classes))


def scene_row(index: int, height: int = 64, width: int = 128, n_objects: int = 2, seed: int = 0,
              with_masks: bool = True, synthetic: bool = False, unmasked: tuple[int, ...] = (),
              labeler: str = "test") -> dict:
    """One row of the stitched (or synthetic) schema; objects listed in ``unmasked`` keep their box
    but lose their mask pixels (as box-only Waymo labels do)."""
    img, inst = make_scene(index, height, width, n_objects, seed)
    if not with_masks:
        inst.masks = None
    elif unmasked:
        inst.masks[list(unmasked)] = False
    fields = inst.to_row()
    row = {
        "id": f"seg-{seed}_{index:04d}",
        "segment": f"seg-{seed}",
        "timestamp_micros": 1000 * index,
        "metadata": {"time_of_day": "Day", "location": "test", "weather": "sunny"},
        "image": Image.fromarray(img),
        "width": width,
        "height": height,
        "objects": fields["objects"],
        "instance_mask": fields["instance_mask"],
        "caption": "a test street",
        "caption_source": "test",
        "stitch": {"method": "calibration", "yaw_deg": 25.0, "front_x1": width * 5 // 8, "right_x0": width * 3 // 8},
    }
    if synthetic:
        row["generation"] = {
            "source_id": row["id"], "model_id": "tiny", "model_revision": "", "prompt": "", "negative_prompt": "",
            "seed": index, "steps": 2, "guidance_scale": 1.0, "strength": 1.0, "known_width": width // 2,
            "seam_score": 0.0, "seam_threshold": 1.0, "attempts": 1, "labeler": labeler, "package_version": "0",
        }
    return row


def make_real_repo(path: Path, n_train: int = 4, n_val: int = 2, height: int = 64, width: int = 128,
                   seed: int = 0, with_masks: bool = True, unmasked_rows: dict[int, tuple[int, ...]] | None = None
                   ) -> Path:
    """A real repo built by ``build_real`` with ``stitched`` train/validation splits; every frame
    carries panoptic masks unless ``with_masks`` is False (then boxes only). ``unmasked_rows`` maps
    a train row to the objects whose mask pixels are taken away, as Waymo's box-only objects on a
    panoptic frame are."""
    path = producers.copy_repo(producers.real(n_train, n_val, height, width, seed, int(with_masks)), path)
    if unmasked_rows:
        _unmask(path, unmasked_rows)
    return path


def _unmask(path: Path, unmasked_rows: dict[int, tuple[int, ...]]) -> None:
    """Rewrite the train split with the listed objects' pixels removed from the id mask."""
    (shard,) = repo.shard_files(path, schema.STITCHED, "train")
    table = pq.read_table(shard)
    rows = table.to_pylist()
    for i, objects in unmasked_rows.items():
        ids = decode_id_mask(rows[i]["instance_mask"])
        for k in objects:
            ids[ids == rows[i]["objects"][k]["instance_id"]] = 0
            rows[i]["objects"][k]["mask_source"] = None
        rows[i]["instance_mask"] = {"bytes": encode_id_mask(ids), "path": None}
    tmp = shard.with_name(".unmasked.parquet")
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), tmp)
    shard.unlink()
    repo.place_shard(tmp, path, schema.STITCHED, "train", 0)
    repo.write_readme(path, default=schema.STITCHED)  # the configs block names the new shard


def make_synthetic_repo(path: Path, n: int = 3, labeler: str = "maskrcnn+sam") -> Path:
    """A synthetic version of ``n`` rows from ``run_generation``, labelled again by the tiny detector +
    SAM (``label_repo``); ``labeler=CARRIED_LABELER`` gives the generator's own version (labels
    carried from the source only)."""
    from streetsynth.generators.generate import CARRIED_LABELER

    made = producers.synthetic(n) if labeler == CARRIED_LABELER else producers.labelled(n)
    return producers.copy_repo(made, path)
