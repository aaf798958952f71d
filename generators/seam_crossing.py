"""Structures that cross the known edge (a facade's foot, a box top, a window row, a lane mark, the horizon):
where each lands on the invented side against its own slope, for the ``crossing`` and ``displaced`` cues of
:mod:`.seam_cues`.

Per row block, the vertical-gradient profile of the last known window is matched to that of the first
invented one (normalised cross-correlation over row offsets), in gray and in two colour-opponent channels,
and the offset is compared with the line that each side's structure tensor puts the structure on.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: ``crossing``: least normalised cross-correlation of a block's match, least coherence of its
#: structure tensor, least vertical gradient in it (Sobel units), and the offset (rows) off its line
#: beyond which a block counts as displaced.
CROSS_MATCH, CROSS_COHERENCE, CROSS_GRADIENT, CROSS_TOL = 0.75, 0.5, 8.0, 1.0
#: ``crossing``: a matched block counts only if its rows' colours either side differ by at most this
#: share of the block's own contrast (summed over channels): the same structure, not another object
#: that happens to begin at the edge at another height.
CROSS_SAME = 0.3
#: ``displaced`` and ``lag_far``: how far up or down (rows at a 512-row image, in proportion at others, at most a
#: fifth of the height) the far searches reach (:func:`far_rows`).
FAR_REACH = 64
#: ``displaced``: row blocks per height (at least 24 rows, half overlapping), least correlation of a block's best
#: match, how near its line (rows, scaled by the slope's uncertainty) counts as on it, and the correlation by
#: which the best match must beat every match near its line to count fully.
DISPLACED_BLOCKS, DISPLACED_MATCH, DISPLACED_TOL, DISPLACED_MARGIN = 6, 0.9, 1.5, 0.2


def search_rows(h: int) -> int:
    """How far (rows) up or down a fill is searched for the known side's structure at image height ``h``."""
    return max(4, min(24, h // 8))


def far_rows(h: int) -> int:
    """How far (rows) the far searches (``displaced``, ``lag_far``) reach at image height ``h`` (:data:`FAR_REACH`)."""
    return max(4, min(FAR_REACH * h // 512, h // 5))


#: Rows: gray, red minus blue, green minus the mean of red and blue (colour-opponent channels).
OPPONENT = np.array([[0.299, 0.587, 0.114], [1.0, 0.0, -1.0], [-0.5, 1.0, -0.5]], np.float32)


def _correlations(b: np.ndarray, c: np.ndarray, starts: np.ndarray, p: int, lag: int) -> np.ndarray:
    """(blocks, channels, 2 ``lag`` + 1): normalised cross-correlation of rows ``start..start+p`` of profile
    ``b`` with ``c`` moved by -``lag``..``lag`` rows."""
    t = b[starts[:, None] + np.arange(p)]  # (n, p, ch)
    t = t - t.mean(axis=1, keepdims=True)
    seg = c[starts[:, None] + np.arange(-lag, p + lag)]  # (n, p + 2 lag, ch)
    num = np.einsum("npc,nlcp->ncl", t, sliding_window_view(seg, p, axis=1))
    cs = np.concatenate([np.zeros_like(seg[:, :1]), np.cumsum(seg, axis=1)], axis=1)
    cs2 = np.concatenate([np.zeros_like(seg[:, :1]), np.cumsum(seg * seg, axis=1)], axis=1)
    win, win2 = cs[:, p:] - cs[:, :-p], cs2[:, p:] - cs2[:, :-p]  # (n, 2 lag + 1, ch)
    var = np.maximum(win2 - win * win / p, 0.0).transpose(0, 2, 1)
    energy = (t * t).sum(axis=1)[..., None]
    # a window with almost no variation (a flat fill) matches nothing; float32 sums leave it a little noise
    return np.where(var > 1e-4 * energy, num / np.sqrt(energy * var + 1e-6), 0.0)


def _block_offsets(b: np.ndarray, c: np.ndarray, starts: np.ndarray, p: int, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """(offset, correlation), each (blocks, channels): where rows ``start..start+p`` of profile ``b``
    match ``c`` best within +-``lag`` rows (:func:`_correlations`, parabolic sub-row peak)."""
    ncc = _correlations(b, c, starts, p, lag)
    i = ncc.argmax(-1)[..., None]
    top = np.take_along_axis(ncc, i, -1)[..., 0]
    lo = np.take_along_axis(ncc, np.clip(i - 1, 0, 2 * lag), -1)[..., 0]
    hi = np.take_along_axis(ncc, np.clip(i + 1, 0, 2 * lag), -1)[..., 0]
    curv = lo - 2 * top + hi
    inner = (curv < 0) & (i[..., 0] > 0) & (i[..., 0] < 2 * lag)
    sub = np.where(inner, 0.5 * (lo - hi) / np.where(inner, curv, -1.0), 0.0)
    return i[..., 0] + sub - lag, top


def _block_slopes(tensor: np.ndarray, starts: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """(slope in rows per column, whether the structure is a coherent line more horizontal than
    vertical), each (blocks, channels), from ``tensor`` (rows, 3 components, channels: the structure
    tensor's gx^2, gy^2, gx gy summed over a side's columns) summed over each block's rows; ``starts``
    per block, or per block and channel."""
    cs = np.concatenate([np.zeros((1,) + tensor.shape[1:], np.float32), np.cumsum(tensor, axis=0)])
    ch = np.arange(tensor.shape[2])
    st = np.broadcast_to(starts.reshape(len(starts), -1), (len(starts), len(ch)))
    jxx, jyy, jxy = (cs[st + p, :, ch] - cs[st, :, ch]).transpose(2, 0, 1)
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / (jxx + jyy + 1e-6)
    return -jxy / (jyy + 1e-6), (coherence >= CROSS_COHERENCE) & (jyy > jxx)


def _same_structure(vb: np.ndarray, vc: np.ndarray, starts: np.ndarray, p: int, offset: np.ndarray,
                    lag: int) -> np.ndarray:
    """(blocks, channels): whether the colour profile ``vc`` (rows, channels) moved by the block's offset
    matches ``vb`` within :data:`CROSS_SAME` of the block's contrast."""
    rows = starts[:, None] + np.arange(p)
    moved = np.clip(rows[:, None, :] + np.clip(np.rint(offset), -lag, lag).astype(int)[..., None], 0, len(vc) - 1)
    known = vb[rows]  # (blocks, p, channels)
    dist = np.abs(known[:, None] - vc[moved]).sum(axis=-1).mean(axis=-1)
    return dist <= CROSS_SAME * (known.max(axis=1) - known.min(axis=1)).sum(axis=-1)[:, None]


def _strong(b: np.ndarray, starts: np.ndarray, p: int) -> np.ndarray:
    """(blocks, channels): whether the known side's gradient profile ``b`` reaches :data:`CROSS_GRADIENT` in a block."""
    return np.abs(b[starts[:, None] + np.arange(p)]).max(axis=1) >= CROSS_GRADIENT


def _slope_spread(slope: np.ndarray, dist: int) -> np.ndarray:
    """How much a slope's uncertainty widens where it puts a structure ``dist`` columns on (1 for a level line)."""
    return 1.0 + 0.25 * np.abs(slope) * dist


class Strip(NamedTuple):
    """What ``crossing`` and ``displaced`` read of the columns around the edge (colour-opponent, smoothed):
    per row, the vertical gradient and the colour of the last known window and of the first invented one,
    and each side's structure tensor (gx^2, gy^2, gx gy summed over its two windows)."""

    grad_known: np.ndarray
    grad_invented: np.ndarray
    colour_known: np.ndarray
    colour_invented: np.ndarray
    tensor_known: np.ndarray
    tensor_invented: np.ndarray


def edge_strip(img: np.ndarray, e: int, gap: int, k: int) -> Strip:
    """The :class:`Strip` of the edge at column ``e`` (windows of ``k`` columns, the invented ones after ``gap``)."""
    strip = np.ascontiguousarray(img[:, e - 2 * k:e + gap + 2 * k]).astype(np.float32)
    strip = strip if strip.ndim == 3 else np.repeat(strip[..., None], 3, axis=2)
    sm = cv2.GaussianBlur(cv2.transform(strip, OPPONENT), (0, 0), 1.0)
    gx, gy = cv2.Sobel(sm, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(sm, cv2.CV_32F, 0, 1, ksize=3)
    known, invented = slice(k, 2 * k), slice(2 * k + gap, 3 * k + gap)
    tensors = [np.stack([np.einsum("hwc,hwc->hc", u[:, cols], v[:, cols]) for u, v in ((gx, gx), (gy, gy), (gx, gy))],
                        axis=1) for cols in (slice(0, 2 * k), slice(2 * k + gap, None))]
    return Strip(np.ascontiguousarray(gy[:, known].mean(axis=1)), np.ascontiguousarray(gy[:, invented].mean(axis=1)),
                  sm[:, known].mean(axis=1), sm[:, invented].mean(axis=1), *tensors)


def strip_crossing_blocks(st: Strip, h: int, k: int, gap: int) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """:func:`.seam_cues.crossing_blocks` of a :class:`Strip` of an image ``h`` rows high."""
    lag, p = search_rows(h), max(24, h // 8)
    starts = np.arange(lag, h - lag - p + 1, p // 2)
    if not len(starts):
        return starts, p, np.zeros((0, 3), np.float32), np.zeros((0, 3), bool)
    b, c = st.grad_known, st.grad_invented
    offset, match = _block_offsets(b, c, starts, p, lag)
    moved = np.clip(starts[:, None] + np.rint(offset).astype(int), 0, h - p)  # the invented side's rows that matched
    s_known, ok_known = _block_slopes(st.tensor_known, starts, p)
    s_inv, ok_inv = _block_slopes(st.tensor_invented, moved, p)
    ok = _strong(b, starts, p) & (match >= CROSS_MATCH) & ok_known & ok_inv & (np.abs(s_known - s_inv) <= 0.15)
    ok &= _same_structure(st.colour_known, st.colour_invented, starts, p, offset, lag)
    slope, dist = 0.5 * (s_known + s_inv), k + gap
    off = np.abs(offset - slope * dist) / _slope_spread(slope, dist)
    return starts, p, off, ok


def crossing_cue(st: Strip, h: int, k: int, gap: int) -> float:
    """Blocks whose crossing structure lands off its line (:func:`strip_crossing_blocks`), less those that land
    on it, each counted -1..1 by how far off."""
    _, _, off, ok = strip_crossing_blocks(st, h, k, gap)
    return float(np.clip((off[ok] - CROSS_TOL) / CROSS_TOL, -1.0, 1.0).sum())


def displaced_cue(st: Strip, h: int, k: int, gap: int) -> float:
    """Taller row blocks (:data:`DISPLACED_BLOCKS`) whose crossing structure matches far better off its line
    than anywhere near it, searched :func:`far_rows` up and down: each counts 0..1 by how much
    better, the best of its channels. Near its line means within :data:`DISPLACED_TOL` rows (scaled as in
    ``crossing``) of where either side's slope puts it, so a slope that a window's or a box's vertical
    edge spoils still gives a line; and a structure that repeats (a facade's rows of windows) matches as
    well near its line as a period away, so it is no evidence."""
    lag, p = far_rows(h), max(24, h // DISPLACED_BLOCKS)
    starts = np.arange(lag, h - lag - p + 1, p // 2)
    if not len(starts):
        return 0.0
    b, c = st.grad_known, st.grad_invented
    ncc = _correlations(b, c, starts, p, lag)
    offset, match = ncc.argmax(-1) - lag, ncc.max(-1)
    s_known, _ = _block_slopes(st.tensor_known, starts, p)
    s_inv, _ = _block_slopes(st.tensor_invented, np.clip(starts[:, None] + offset, 0, h - p), p)
    dist = k + gap
    tol = DISPLACED_TOL * _slope_spread(np.maximum(np.abs(s_known), np.abs(s_inv)), dist)
    shifts = np.arange(-lag, lag + 1)
    near = (shifts >= (np.minimum(s_known, s_inv) * dist - tol)[..., None]) \
        & (shifts <= (np.maximum(s_known, s_inv) * dist + tol)[..., None])
    better = match - np.where(near, ncc, -1.0).max(axis=-1)
    counted = _strong(b, starts, p) & (match >= DISPLACED_MATCH) & _same_structure(
        st.colour_known, st.colour_invented, starts, p, offset, lag)
    return float(np.where(counted, np.clip(better / DISPLACED_MARGIN, 0.0, 1.0), 0.0).max(axis=1).sum())
