"""The seam gate: does an outpainted image show a vertical step where the mask ends?

The image is cut into a few horizontal strips, each turned to grayscale and averaged per column
(the column-sum profile divided by the strip height). At each mask edge the *level step* of the profile is the median of the ``band``
columns right of the edge minus the median of the ``band`` columns left of it; medians ignore
thin content such as a pole standing on the edge. The same step is computed at every column of
the neighbourhood (``window`` columns each side, away from the edge), and the score is

    step at the edge / (median |step| in the neighbourhood + floor)

per strip. A seam runs through the whole height, so the edge's score is the absolute median of
its strips' signed scores: content at the edge in only some strips (a building corner, a car)
does not carry it. The image's score is the largest over its mask edges.

Measured on 100 rendered street scenes (tests/test_seam.py) at the default threshold: seams of
16 / 24 / 32 gray levels pass 9% / 2% / 0% of the time; clean scenes are rejected 11%, with a
pole on the edge 12%, with a building edge exactly on the mask edge 36% (a real step through a
building's height looks like a seam). Calibrate on your data with ``streetsynth seam-calibrate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: Default rejection threshold (see ``streetsynth seam-calibrate`` for choosing one on your data).
DEFAULT_THRESHOLD = 5.0
#: Percentile of the neighbourhood steps used as their scale.
QUANTILE = 50.0
#: Horizontal strips whose profiles are scored separately.
STRIPS = 4


@dataclass(frozen=True)
class SeamGate:
    """Scores images for seams at their mask edges; ``score > threshold`` rejects."""

    threshold: float = DEFAULT_THRESHOLD  # scores above this reject the sample
    band: int = 8  # columns each side whose median gives a level
    window: int = 32  # neighbourhood half-width (columns) the edge step is compared against
    floor: float = 1.0  # gray levels added to the neighbourhood scale, so flat images are not over-read
    strips: int = STRIPS  # horizontal strips scored separately

    def score(self, image: np.ndarray, mask: np.ndarray) -> float:
        return seam_score(image, mask, self.band, self.window, self.floor, self.strips)

    def accepts(self, score: float) -> bool:
        return bool(score <= self.threshold)


def column_profile(image: np.ndarray) -> np.ndarray:
    """Mean gray level per column of an RGB (H, W, 3) or gray (H, W) uint8 image."""
    img = np.asarray(image)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    return gray.astype(np.float64).sum(axis=0) / gray.shape[0]


def mask_edges(mask: np.ndarray) -> np.ndarray:
    """Columns ``x`` where the mask's majority value changes between ``x - 1`` and ``x``."""
    cols = (np.asarray(mask) > 127).mean(axis=0) > 0.5
    return np.flatnonzero(np.diff(cols.astype(np.int8))) + 1


def level_steps(profile: np.ndarray, band: int) -> np.ndarray:
    """``steps[x]`` = median(profile[x:x+band]) - median(profile[x-band:x]); NaN where undefined."""
    w = len(profile)
    steps = np.full(w, np.nan)
    if w < 2 * band + 1:
        return steps
    medians = np.median(sliding_window_view(profile, band), axis=1)  # medians[i] = median(p[i:i+band])
    x = np.arange(band, w - band + 1)
    steps[x] = medians[x] - medians[x - band]
    return steps


def seam_score(image: np.ndarray, mask: np.ndarray, band: int = 8, window: int = 32, floor: float = 1.0,
               strips: int = STRIPS) -> float:
    """Largest seam score over the mask edges of ``image``; 0.0 when the mask has no edge.

    The profile is taken per horizontal strip; a seam runs the full height, so at each edge the
    score is the median of the strips' signed scores: content at the edge in only some strips
    (a building corner, a car) does not reach it, a step through the whole height does.
    """
    img = np.asarray(image)
    edges = mask_edges(mask)
    if not len(edges):
        return 0.0
    rows = np.array_split(np.arange(img.shape[0]), max(1, min(strips, img.shape[0])))
    per_strip = np.stack([_edge_scores(column_profile(img[r]), edges, band, window, floor) for r in rows])
    scores = np.abs(np.median(per_strip, axis=0))
    return float(scores.max())


def _edge_scores(profile: np.ndarray, edges: np.ndarray, band: int, window: int, floor: float) -> np.ndarray:
    """Signed step at each edge divided by the neighbourhood's step scale (+ floor)."""
    steps = level_steps(profile, band)
    mag = np.abs(steps)
    out = np.zeros(len(edges))
    for i, e in enumerate(edges):
        if np.isnan(steps[e]):
            continue
        near = np.arange(max(0, e - window), min(len(steps), e + window + 1))
        neigh = mag[near[np.abs(near - e) > band]]
        neigh = neigh[~np.isnan(neigh)]
        scale = float(np.percentile(neigh, QUANTILE)) if neigh.size else 0.0
        out[i] = steps[e] / (scale + floor)
    return out


def roc_table(seam_scores: np.ndarray, clean_scores: np.ndarray) -> list[tuple[float, float, float]]:
    """(threshold, false-accept rate, false-reject rate) at every distinct score.

    False accept: a seamed image scoring <= threshold. False reject: a clean one scoring above.
    """
    seam_scores, clean_scores = np.asarray(seam_scores, float), np.asarray(clean_scores, float)
    ts = np.unique(np.concatenate([seam_scores, clean_scores, [0.0]]))
    far = (seam_scores[None, :] <= ts[:, None]).mean(axis=1) if seam_scores.size else np.zeros(len(ts))
    frr = (clean_scores[None, :] > ts[:, None]).mean(axis=1) if clean_scores.size else np.zeros(len(ts))
    return [(float(t), float(a), float(r)) for t, a, r in zip(ts, far, frr)]


def threshold_for_far(seam_scores: np.ndarray, clean_scores: np.ndarray, target_far: float) -> tuple[float, float, float]:
    """The largest threshold whose false-accept rate is <= ``target_far``: (threshold, far, frr)."""
    if not len(seam_scores):
        raise ValueError("calibration needs at least one seamed image")
    table = [row for row in roc_table(seam_scores, clean_scores) if row[1] <= target_far]
    if not table:
        raise ValueError(f"no threshold reaches a false-accept rate of {target_far}")
    return max(table, key=lambda r: r[0])
