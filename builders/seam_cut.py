"""A seam through the overlap of two warped views, where they agree, around every labelled object.

The overlap is cut by one vertical-ish path: left of it the output is FRONT, right of it
FRONT_RIGHT, with a narrow feather of ``FEATHER_PX`` output pixels across it. The path is found by
dynamic programming over row bands (``rows_per_band`` output rows each, its column constant within
a band and moving at most ``rows_per_band`` columns between bands: at most 45 degrees). A column's
cost in a band is the grey disagreement |A - B| (clipped at ``CLIP``) summed over the feather it
would span, so the feather lands where the views agree and no misaligned pair is mixed.

Hard constraints (a large penalty per column of violation, so an impossible set still yields the
least-bad path): every :class:`Keep` (a labelled object with the view that sees it best) lies
wholly on its view's side, feather included, and each side stays where its view is valid. Where
they cannot all hold (an object wider than the overlap reaches past a view's edge), the feather is
still kept off the object: its columns in the overlap take its view alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

#: Width of the feather across the seam (output pixels).
FEATHER_PX = 6
#: Disagreement is clipped here: beyond it two pixels are simply different.
CLIP = 48.0
#: Penalty per column by which a band's seam violates a constraint.
PENALTY = 1e7
#: Bands the seam is recorded in, at most.
MAX_BANDS = 32


@dataclass
class Overlap:
    """The overlap columns ``[x0, x0 + width)`` of a canvas and where each view sees there; made once
    per geometry, so the per-frame seam only reads what does not change between frames."""

    x0: int
    valid_a: np.ndarray  # (H, width) bool: FRONT sees
    valid_b: np.ndarray  # (H, width) bool: FRONT_RIGHT sees

    @property
    def width(self) -> int:
        return self.valid_a.shape[1]

    @cached_property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) per row, overlap-local: FRONT sees all of [0, c) and FRONT_RIGHT all of [c, width)
        for seams c in [lo, hi]."""
        w = self.width
        hi = np.where(self.valid_a.all(axis=1), w, np.argmin(self.valid_a, axis=1)).astype(np.int64)
        lo = np.where(~self.valid_b, np.arange(w) + 1, 0).max(axis=1).astype(np.int64)
        return lo, hi

    @cached_property
    def blind(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Where FRONT, and where FRONT_RIGHT, does not see (None where it sees everywhere)."""
        return (None if self.valid_a.all() else ~self.valid_a), (None if self.valid_b.all() else ~self.valid_b)


@dataclass(frozen=True)
class Keep:
    """A labelled object the seam must not cut: the view it comes from and a canvas box (x0, y0, x1,
    y1) covering it in both views (its copy in the other view must stay hidden too)."""

    view: str  # "FRONT" (left of the seam) or "FRONT_RIGHT" (right of it)
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Seam:
    """The cut: per band of rows, the first canvas column taken from FRONT_RIGHT."""

    columns: np.ndarray  # (bands,) int32, canvas columns
    height: int  # output rows; band i covers rows [edges[i], edges[i + 1])
    front_until: np.ndarray | None = None  # (H,) per row, columns before it show FRONT alone (its keeps)
    right_from: np.ndarray | None = None  # (H,) per row, columns from it show FRONT_RIGHT alone

    @property
    def edges(self) -> np.ndarray:
        return band_edges(self.height, len(self.columns))

    def per_row(self) -> np.ndarray:
        """(H,) first FRONT_RIGHT column of every output row."""
        return np.repeat(self.columns, np.diff(self.edges))

    def front_at(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Whether canvas points (integer columns ``xs``, rows ``ys``) come from FRONT: left of the
        seam or on a FRONT keep, and not on a FRONT_RIGHT keep."""
        front = xs < self.per_row()[ys]
        if self.front_until is not None:
            front = (front | (xs < self.front_until[ys])) & ~(xs >= self.right_from[ys])
        return front


def band_edges(height: int, bands: int) -> np.ndarray:
    return np.linspace(0, height, bands + 1).round().astype(int)


def _keep_bounds(keeps: list[Keep], h: int) -> tuple[np.ndarray, np.ndarray]:
    """(front_until, right_from) per row, canvas columns: FRONT's keeps end before the first,
    FRONT_RIGHT's begin at the second."""
    front_until, right_from = np.full(h, -(10**9), np.int64), np.full(h, 10**9, np.int64)
    for k in keeps:
        bx0, by0, bx1, by1 = k.box
        r0, r1 = max(0, int(np.floor(by0))), min(h, int(np.ceil(by1)))
        if k.view == "FRONT":
            front_until[r0:r1] = np.maximum(front_until[r0:r1], int(np.ceil(bx1)))
        else:
            right_from[r0:r1] = np.minimum(right_from[r0:r1], int(np.floor(bx0)))
    return front_until, right_from


def find_seam(ga: np.ndarray, gb: np.ndarray, overlap: Overlap, keeps: list[Keep] = (), feather: int = FEATHER_PX) -> Seam:
    """The seam through overlap strips ``ga``/``gb`` (float32 grey, (H, width) of ``overlap``)."""
    h, w = ga.shape
    x0 = overlap.x0
    bands = min(MAX_BANDS, h)
    edges = band_edges(h, bands)
    step = max(1, int(np.ceil(h / bands)))
    half = feather // 2
    d = np.minimum(cv2.absdiff(ga, gb), CLIP)  # where one view is blind (0) the cost is high: the seam keeps off
    # Seam at c (c = 0 .. w): the feather spans columns [c - half, c + half); summed per band first.
    cs = np.zeros((bands, w + 1))
    np.cumsum(np.add.reduceat(d, edges[:-1], axis=0), axis=1, out=cs[:, 1:])
    c = np.arange(w + 1)
    cost = cs[:, np.minimum(c + half, w)] - cs[:, np.maximum(c - half, 0)]
    front_until, right_from = _keep_bounds(keeps, h)
    lo, hi = overlap.bounds
    if keeps:
        lo, hi = np.maximum(lo, front_until - x0 + half), np.minimum(hi, right_from - x0 - half)
    blo, bhi = np.maximum.reduceat(lo, edges[:-1]), np.minimum.reduceat(hi, edges[:-1])
    cost += PENALTY * (np.maximum(blo[:, None] - c, 0) + np.maximum(c - bhi[:, None], 0))
    total, back = cost[0].copy(), np.zeros((bands, w + 1), np.int64)
    shifts = np.arange(-step, step + 1)
    idx = np.clip(c[None, :] + shifts[:, None], 0, w)  # (shifts, w + 1): predecessor columns
    for b in range(1, bands):
        cand = total[idx]
        back[b] = np.argmin(cand, axis=0)
        total = cand[back[b], c] + cost[b]
    path = np.zeros(bands, np.int64)
    path[-1] = int(np.argmin(total))
    for b in range(bands - 1, 0, -1):
        path[b - 1] = idx[back[b, path[b]], path[b]]
    return Seam((path + x0).astype(np.int32), h, front_until, right_from)


def seam_weights(seam: Seam, overlap: Overlap, feather: int = FEATHER_PX) -> np.ndarray:
    """(H, Wo) float32 weight of FRONT_RIGHT over the overlap: 0 left of the seam, 1 right of it,
    a linear ramp of ``feather`` columns across it, none on a kept object; a view's weight is 0
    where it does not see."""
    x0, w = overlap.x0, overlap.width
    cols = np.arange(x0, x0 + w, dtype=np.float32)[None, :]
    start = (seam.per_row() - 0.5 * max(feather, 1) - 0.5).astype(np.float32)[:, None]
    wb = np.clip((cols - start) * np.float32(1.0 / max(feather, 1)), 0.0, 1.0)
    if seam.front_until is not None and (seam.front_until > x0).any():
        wb *= cols >= seam.front_until[:, None]
    if seam.right_from is not None and (seam.right_from < x0 + w).any():
        np.maximum(wb, cols >= seam.right_from[:, None], out=wb)
    blind_a, blind_b = overlap.blind
    if blind_b is not None:
        wb[blind_b] = 0.0
    if blind_a is not None:
        wb[blind_a] = 1.0
    return wb
