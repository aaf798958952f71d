"""Factories for the generator tests: a small REAL repo of stitched street scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streetsynth import repo
from streetsynth.instances import Instances
from streetsynth.schema import STITCHED, stitched_features


def street_image(rng: np.random.Generator, height: int = 64, width: int = 128) -> np.ndarray:
    """A rendered street scene: sky, road, a few buildings with windows, light noise."""
    img = np.zeros((height, width, 3), np.float32)
    img[:] = rng.uniform(140, 230)
    horizon = int(height * rng.uniform(0.35, 0.55))
    img[horizon:] = rng.uniform(60, 110)
    for _ in range(int(rng.integers(3, 9))):
        x0 = int(rng.integers(0, width - 10))
        bw, top = int(rng.integers(width // 16, width // 4)), int(rng.integers(3, max(4, horizon)))
        img[top:horizon, x0:x0 + bw] = rng.uniform(40, 200, 3)
        img[top + 3:horizon - 3:8, x0 + 2:x0 + bw - 2:5] *= 0.6
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def stitched_row(i: int, rng: np.random.Generator, height: int = 64, width: int = 128,
                 front_x1: int = 88) -> dict:
    """One stitched row with a vehicle straddling the known edge and a pedestrian right of it."""
    masks = np.zeros((2, height, width), bool)
    masks[0, height // 2:height // 2 + 10, front_x1 - 20:front_x1 + 10] = True  # vehicle across the edge
    masks[1, height // 3:height // 3 + 16, front_x1 + 12:front_x1 + 18] = True  # pedestrian, invented side
    inst = Instances.from_masks(masks, classes=[0, 1], sources=["FRONT", "FRONT_RIGHT"])
    return {
        "id": f"seg0_{i:03d}", "segment": "seg0", "timestamp_micros": 1000 + i,
        "metadata": {"time_of_day": "Day", "location": "location_sf", "weather": "sunny"},
        "image": {"bytes": _png(street_image(rng, height, width)), "path": None},
        "width": width, "height": height, **inst.to_row(),
        "caption": f"a street scene number {i}", "caption_source": "template",
        "stitch": {"method": "cylindrical", "yaw_deg": 45.0, "front_x1": front_x1, "right_x0": front_x1 - 16},
    }


def make_real_repo(path: str | Path, rows: int = 4, height: int = 64, width: int = 128, seed: int = 0,
                   split: str = "train") -> Path:
    """Write a REAL repo (config ``stitched``) of ``rows`` rows; returns its folder."""
    rng = np.random.default_rng(seed)
    data = [stitched_row(i, rng, height, width, front_x1=int(width * 0.7)) for i in range(rows)]
    repo.write_shard(path, STITCHED, split, 0, data, stitched_features())
    repo.write_info(path, {"kind": "real", "fingerprint": f"real-fixture-{seed}-{rows}-{height}x{width}"})
    repo.write_readme(path, default=STITCHED)
    return Path(path)


def _png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()
