"""The seam gate: does an outpainted image break continuity where its mask ends?

The score measures continuity across the known edge, not texture (:mod:`.seam_cues`): per-row
profiles of column windows either side of the edge (texture, grain and compression averaged away)
are compared with what the two sides' own steps predict, for a brightness step through the whole
height (also against the steps the same image takes at nearby columns), a step in chromaticity (a
colour cast), a vertical offset (near, or tens of rows for another scene's horizon), rows that do
not continue, structure that stops at the edge, a fill without a vertical edge or without a sharp
edge left; and the structures that cross the edge (in gray and two colour-opponent channels) must
land where their own slope on each side puts them, and must not match clearly better away from that
line than near it (a structure that repeats, rows of windows, matches as well near it): a vertically
shifted fill breaks both.
Each cue is divided by its scale (:data:`CUE_SCALES`: the 99th percentile of that cue on good
continuations -- true, JPEG-recompressed, smoothed, grainy and half-resolution ones from the sample
maker and the independent ray-caster, 256x512 and 512x1024 -- or the cue's floor,
:data:`~.seam_cues.CUE_FLOORS`), and the score is the largest quotient; :data:`DEFAULT_THRESHOLD`
rejects 3 % of those good continuations. Fitted on scenes 100-199 of both renderers
(``tests/seam_scenes.py``), which the benchmark and the tests do not use; no seam kind entered this fit.
``benchmarks/seam_fit.py`` rebuilds both constants from those scenes.
Rates per kind of fill on other scenes: ``benchmarks/seam_gate.py`` and benchmarks/RESULTS.md;
calibrate on your own data with ``streetsynth seam-calibrate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .seam_cues import CUES, edge_cues

#: Per-cue scales (fitted on good continuations only, see the module docstring), in :data:`CUES` order.
CUE_SCALES = (6.07, 4.38, 1.24, 1.2, 1.23, 0.293, 0.32, 2.96, 0.762, 1.28, 0.7, 1.87, 1.08, 1.3, 1.06, 3.0)
#: Default rejection threshold: a score above it rejects.
DEFAULT_THRESHOLD = 1.36


def _columns(mask: np.ndarray) -> np.ndarray:
    """Per column, whether most of it is invented (mask > 127); rows subsampled to at most 64."""
    m = np.asarray(mask)
    return (m[::max(1, m.shape[0] // 64)] > 127).mean(axis=0) > 0.5


def mask_edges(mask: np.ndarray) -> np.ndarray:
    """Columns ``x`` where the mask's majority value changes between ``x - 1`` and ``x``."""
    return np.flatnonzero(np.diff(_columns(mask).astype(np.int8))) + 1


def oriented_edges(image: np.ndarray, mask: np.ndarray):
    """Yield (view, edge column) per mask edge, the view mirrored so that the invented side is on the right."""
    img = np.asarray(image)
    inside = _columns(mask)
    for e in np.flatnonzero(np.diff(inside.astype(np.int8))) + 1:
        flip = bool(inside[e - 1]) and not inside[e]
        yield (img[:, ::-1], img.shape[1] - int(e)) if flip else (img, int(e))


def combine(cues: dict[str, float] | None, scales=CUE_SCALES) -> float:
    """The largest cue over its scale (0.0 for an edge too near the border to score)."""
    if cues is None:
        return 0.0
    return float(max(max(cues[c], 0.0) / s for c, s in zip(CUES, scales)))


def seam_score(image: np.ndarray, mask: np.ndarray, gap: int = 8, scales=CUE_SCALES) -> float:
    """Largest continuity score over the mask edges of ``image``; 0.0 when the mask has no edge.

    ``gap``: columns right of the edge skipped as the generator's feather ramp.
    """
    return max((combine(edge_cues(v, e, gap), scales) for v, e in oriented_edges(image, mask)), default=0.0)


@dataclass(frozen=True)
class SeamGate:
    """Scores images for seams at their mask edges; ``score > threshold`` rejects."""

    threshold: float | None = None  # scores above this reject the sample (default: DEFAULT_THRESHOLD)
    gap: int = 8  # the generator's feather width: columns skipped right of the edge

    def __post_init__(self) -> None:
        if self.threshold is None:
            object.__setattr__(self, "threshold", DEFAULT_THRESHOLD)

    def score(self, image: np.ndarray, mask: np.ndarray) -> float:
        return seam_score(image, mask, self.gap)

    def accepts(self, score: float) -> bool:
        return bool(score <= self.threshold)
