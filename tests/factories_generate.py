"""Factories for the generator tests: a small REAL repo from the producers, and street images for the seam gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import factories_producers as producers


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


def stitched_row(i: int, rng: np.random.Generator | None = None, height: int = 64, width: int = 128,
                 front_x1: int | None = None) -> dict:
    """Row ``i`` of a produced REAL repo (image as ``{"bytes", "path"}``); ``front_x1`` moves the
    known edge its stitch record states (``rng`` is not used: the producers derive their own)."""
    row = producers.rows(producers.real(i + 1, 1, height, width), "stitched", "train")[i]
    if front_x1 is not None:
        row["stitch"] = {**row["stitch"], "front_x1": int(front_x1)}
    return row


def make_real_repo(path: str | Path, rows: int = 4, height: int = 64, width: int = 128, seed: int = 0,
                   split: str = "train") -> Path:
    """A REAL repo (config ``stitched``) at ``path`` with ``rows`` rows in ``split``, made by the sample
    maker and ``build_real`` (see :mod:`factories_producers`); returns its folder."""
    n_train, n_val = (rows, 1) if split == "train" else (1, rows)
    return producers.copy_repo(producers.real(n_train, n_val, height, width, seed), path)
