"""Small real and synthetic repos with known contents, for the card and push tests.

Row ``i`` holds ``i % 3`` vehicles (rectangles) and ``(i + 1) % 2`` pedestrians (squares), in
separate columns so masks never overlap; ``expected_counts`` says what a split must contain.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from streetsynth import repo, schema
from streetsynth.instances import Instances

H, W = 32, 64


def layout(i: int) -> list[int]:
    """The class of each object of row ``i``."""
    return [0] * (i % 3) + [1] * ((i + 1) % 2)


def scene_row(i: int, prefix: str = "seg", synthetic: bool = False, seam_score: float = 0.1) -> dict:
    classes = layout(i)
    img = np.full((H, W, 3), 100 + i, np.uint8)
    masks = np.zeros((len(classes), H, W), bool)
    for k, _ in enumerate(classes):
        masks[k, 4:20, 4 + 14 * k:14 + 14 * k] = True
        img[masks[k]] = (200, 40 + 60 * classes[k], 40)
    inst = Instances.from_masks(masks, classes, sources=["test"] * len(classes)) if classes else Instances.empty(H, W)
    fields = inst.to_row()
    row = {
        "id": f"{prefix}_{i:04d}", "segment": prefix, "timestamp_micros": 1000 * i,
        "metadata": {"time_of_day": "Day", "location": "test", "weather": "sunny"},
        "image": Image.fromarray(img), "width": W, "height": H,
        "objects": fields["objects"], "instance_mask": fields["instance_mask"],
        "caption": "a street", "caption_source": "test",
        "stitch": {"method": "test", "yaw_deg": 25.0, "front_x1": 40, "right_x0": 24},
    }
    if synthetic:
        row["generation"] = {
            "source_id": row["id"], "model_id": "org/tiny-inpaint", "model_revision": "abc123",
            "prompt": "a city street", "negative_prompt": "blurry", "seed": i, "steps": 2,
            "guidance_scale": 7.5, "strength": 1.0, "known_width": W // 2, "seam_score": seam_score * (i + 1),
            "seam_threshold": 0.5, "attempts": 1 + i % 2, "labeler": "maskrcnn+sam", "package_version": "0.1.0",
        }
    return row


def expected_counts(indices) -> dict[str, int]:
    counts = {name: 0 for name in schema.CLASS_NAMES}
    for i in indices:
        for c in layout(i):
            counts[schema.CLASS_NAMES[c]] += 1
    return counts


def make_real_repo(path: Path, n_train: int = 5, n_val: int = 3) -> Path:
    """A real repo: ``stitched`` train (rows 0..n_train-1, two shards) and validation."""
    path = Path(path)
    train = [scene_row(i) for i in range(n_train)]
    half = (n_train + 1) // 2
    repo.write_shard(path, schema.STITCHED, "train", 0, train[:half], schema.stitched_features())
    if train[half:]:
        repo.write_shard(path, schema.STITCHED, "train", 1, train[half:], schema.stitched_features())
    repo.write_shard(path, schema.STITCHED, "validation", 0, [scene_row(100 + i, "val") for i in range(n_val)],
                     schema.stitched_features())
    repo.write_info(path, {"kind": "real", "version": "0.1.0", "fingerprint": "realfp0001",
                           "source": {"segments": 1, "format": "waymo-v1"}})
    repo.write_readme(path)
    return path


def make_synthetic_repo(path: Path, n: int = 4, version: str = "0.1.0", fingerprint: str = "synfp0001") -> Path:
    """A synthetic version folder with the ``synthetic`` split and full provenance in info.json."""
    path = Path(path)
    rows = [scene_row(i, "syn", synthetic=True) for i in range(n)]
    repo.write_shard(path, schema.SYNTHETIC, schema.SYNTHETIC_SPLIT, 0, rows, schema.synthetic_features())
    repo.write_info(path, {
        "kind": "synthetic", "version": version, "fingerprint": fingerprint,
        "source": {"path": "/somewhere/private/real-v0.1.0", "fingerprint": "realfp0001", "version": "0.1.0"},
        "settings": {"model_id": "org/tiny-inpaint", "model_revision": "abc123", "prompt": "a city street",
                     "negative_prompt": "blurry", "steps": 2, "guidance_scale": 7.5, "seam_threshold": 0.5,
                     "max_attempts": 3, "labeler": "maskrcnn+sam"},
        "counts": {"accepted": n, "attempts": n + 2, "rejected_attempts": 2, "failed_samples": 0,
                   "acceptance_rate": n / (n + 2)},
    })
    repo.write_readme(path)
    return path
