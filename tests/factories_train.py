"""Small real/synthetic dataset repos with known answers, for the training tests.

Each scene is a flat background with rectangles (vehicles) and ellipses (pedestrians) of fixed
colours; objects, instance ids and the id mask are exact.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from streetsynth import repo, schema
from streetsynth.instances import Instances

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
        "stitch": {"method": "test", "yaw_deg": 25.0, "front_x1": width * 5 // 8, "right_x0": width * 3 // 8},
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
    """A real repo with ``stitched`` train/validation splits; ``unmasked_rows`` maps a train row to
    the objects that lose their masks."""
    path = Path(path)
    unmasked_rows = unmasked_rows or {}
    train = [scene_row(i, height, width, seed=seed, with_masks=with_masks, unmasked=unmasked_rows.get(i, ()))
             for i in range(n_train)]
    val = [scene_row(1000 + i, height, width, seed=seed, with_masks=with_masks) for i in range(n_val)]
    repo.write_shard(path, schema.STITCHED, "train", 0, train, schema.stitched_features())
    repo.write_shard(path, schema.STITCHED, "validation", 0, val, schema.stitched_features())
    repo.write_info(path, {"kind": "real", "version": "0.1.0", "fingerprint": f"real{seed}"})
    repo.write_readme(path)
    return path


def make_synthetic_repo(path: Path, n: int = 4, height: int = 64, width: int = 128, seed: int = 7,
                        labeler: str = "test") -> Path:
    """A synthetic version folder with the ``synthetic`` split, labelled by ``labeler``."""
    path = Path(path)
    rows = [scene_row(i, height, width, seed=seed, synthetic=True, labeler=labeler) for i in range(n)]
    repo.write_shard(path, schema.SYNTHETIC, schema.SYNTHETIC_SPLIT, 0, rows, schema.synthetic_features())
    repo.write_info(path, {"kind": "synthetic", "version": "0.1.0", "fingerprint": f"syn{seed}", "labeler": labeler})
    repo.write_readme(path)
    return path
