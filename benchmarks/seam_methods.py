"""The seam scores the production gate replaced, kept here only to compare against it in ``seam_gate.py``.

``column_sum_score`` (the seed's classic heuristic: the step of the per-column mean gray level of a
few horizontal strips), ``row_band_score`` (an experimental per-band score) and ``profile_score``
(the previous default: colour and texture steps per smooth row band and a vertical-lag cue; it scores
texture differences too, so smoothed or recompressed true continuations look like seams). Each comes
with the threshold it was calibrated at (``THRESHOLDS``).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from streetsynth.generators.seam import mask_edges

THRESHOLDS = {"profile": 0.8, "column-sum": 5.0, "row-band": 2.4}
PROFILE_BANDS = 32
QUANTILE = 50.0
STRIPS = 4


def _features(image: np.ndarray) -> np.ndarray:
    """(H, W, 5) float32: R, G, B and the gray level's |d/dx| and |d/dy| (texture and orientation)."""
    img = np.asarray(image)
    rgb = img.astype(np.float32) if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2).astype(np.float32)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    gx = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)) / 4
    gy = np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)) / 4
    return np.concatenate([rgb, gx[..., None], gy[..., None]], axis=2)


def row_band_score(image: np.ndarray, mask: np.ndarray, band: int = 8, gap: int = 8, window: int = 48,
                   rows: int = 16, coverage: float = 0.75, floor: float = 2.0, grad_floor: float = 1.0) -> float:
    """Seam score of ``image`` at its mask edges, row band by row band; 0.0 when the mask has no edge.

    Rows are cut into ``rows`` bands; in each, a *level* is the median over the band's rows and
    ``band`` columns. The step across an edge compares the ``band`` known columns just before it
    with the ``band`` invented columns after a ``gap`` (the generator's feather ramp). It is
    divided by the band's typical step between such windows inside the known and inside the
    invented side (median within ``window`` columns), plus a floor, separately for colour (RGB)
    and for gradient energy along x and y (texture and orientation continuity); the band's score
    is the larger. A seam runs the full height, so the edge's score is the band score that
    ``coverage`` of the bands reach: a pole or a building corner, local in rows, does not carry it.
    """
    img = np.asarray(image)
    m = np.asarray(mask)
    edges = mask_edges(m)
    if not len(edges):
        return 0.0
    feats = _features(img)
    h, w = feats.shape[:2]
    inside = (m > 127).mean(axis=0) > 0.5
    chunks = np.array_split(np.arange(h), max(1, min(rows, h)))
    colmed = np.stack([np.median(feats[r], axis=0) for r in chunks])  # (B, W, 5)
    best = 0.0
    for e in edges:
        flip = bool(inside[e - 1]) and not inside[e]  # invented side on the left: mirror it to the right
        cm, x = (colmed[:, ::-1], w - e) if flip else (colmed, e)
        best = max(best, _band_score_at(cm, x, band, gap, window, coverage, floor, grad_floor))
    return float(best)


def _band_score_at(colmed: np.ndarray, e: int, band: int, gap: int, window: int, coverage: float,
                    floor: float, grad_floor: float) -> float:
    w = colmed.shape[1]
    if w < 2 * band + gap + 1 or e - band < 0 or e + gap + band > w:
        return 0.0
    level = np.median(sliding_window_view(colmed, band, axis=1), axis=-1)  # level[:, i] = median(cols i..i+band)
    xs = np.arange(band, w - gap - band + 1)  # step at x: right window [x+gap, x+gap+band) - left [x-band, x)
    steps = level[:, xs + gap] - level[:, xs - band]  # (B, X, 5)
    reach = band + gap
    ref = (np.abs(xs - e) >= reach) & (np.abs(xs - e) <= window + reach)
    at = int(np.flatnonzero(xs == e)[0])
    score = np.zeros(colmed.shape[0])
    for sl, fl in ((slice(0, 3), floor), (slice(3, 5), grad_floor)):
        mag = np.linalg.norm(steps[:, :, sl], axis=2)  # (B, X)
        scale = np.median(mag[:, ref], axis=1) if ref.any() else np.zeros(len(mag))
        score = np.maximum(score, mag[:, at] / (scale + fl))
    return float(np.quantile(score, 1.0 - coverage))


def profile_score(image: np.ndarray, mask: np.ndarray, bands: int = PROFILE_BANDS, gap: int = 8,
                  smooth_colour: float = 4.0, smooth_texture: float = 0.5, coverage: float = 0.9,
                  texture_weight: float = 2.0, align_weight: float = 8.0) -> float:
    """Seam score of ``image`` at its mask edges (the ``profile`` method); 0.0 when the mask has no edge
    or an edge lies too close to the border to compare windows (``2 * band + gap`` known columns).

    Two cues, the larger wins (see :func:`_profile_at`): a colour or texture break across the edge
    in every smooth row band of the top, middle and bottom thirds of the height, and a vertical
    misregistration of the rows right of the edge against those left of it.
    """
    img = np.asarray(image)
    m = np.asarray(mask)
    edges = mask_edges(m)
    if not len(edges):
        return 0.0
    w = img.shape[1]
    inside = (m > 127).mean(axis=0) > 0.5
    best = 0.0
    for e in edges:
        flip = bool(inside[e - 1]) and not inside[e]  # invented side on the left: mirror it to the right
        view, x = (img[:, ::-1], w - e) if flip else (img, int(e))
        best = max(best, _profile_at(view, x, bands, gap, smooth_colour, smooth_texture, coverage,
                                     texture_weight, align_weight))
    return float(best)


def _profile_at(img: np.ndarray, e: int, bands: int, gap: int, smooth_colour: float, smooth_texture: float,
                coverage: float, texture_weight: float, align_weight: float) -> float:
    """Score one edge at column ``e`` with the invented side on the right.

    *Span*: rows are cut into ``bands`` bands; a level is the median, over 8 columns sampled from
    ``band`` columns, of the band's per-column means. The step compares the ``band`` known columns
    before the edge with the ``band`` invented ones after a ``gap`` (the feather ramp), for colour
    (RGB distance, + 2 levels), texture contrast (log gradient energy over brightness) and sharpness
    (log Laplacian over gradient energy; + 0.2 each), each divided by the band's median step between
    such windows inside the known and inside the invented side. Only *smooth* bands (that median
    below ``smooth_colour`` levels / ``smooth_texture``) can show a break; a building's windows or a
    tree cannot. A seam changes every smooth band, a pole, a building corner, lane marks or a
    shadow on the road only some, so each third of the height scores the break that ``coverage``
    of its smooth bands reach (colour: that band's own z, so with up to 10 bands the weakest one;
    the noisier texture cues interpolate), and the span is the weakest third (texture cues weighted
    ``texture_weight``).

    *Alignment*: per-row profiles (column medians, rows binned to about 128) just left and just
    right of the edge are compared at vertical lags up to a sixth of the height (:func:`_lag_gain`),
    minus the same gain between two windows inside the known side. A fill that is the scene moved
    up or down lines up only at a lag.
    """
    h, w = img.shape[:2]
    band = max(8, w // 32)
    window = max(48, w // 16)
    if e - 2 * band - gap < 0 or e + gap + band > w or h < 6:
        return 0.0
    x0, x1 = max(0, e - window - band - gap), min(w, e + window + band + gap)
    sub = img[:, x0:x1].astype(np.float32)
    sub = sub if sub.ndim == 3 else np.repeat(sub[..., None], 3, axis=2)
    ee = e - x0
    gray = cv2.cvtColor(sub, cv2.COLOR_RGB2GRAY)
    gx, gy = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    energy = (np.abs(gx) + np.abs(gy)) / 4
    fine = np.abs(cv2.Laplacian(gray, cv2.CV_32F, ksize=1))
    feats = np.concatenate([sub, energy[..., None], gray[..., None], fine[..., None]], axis=2)  # (h, ws, 6)
    nb = min(bands, h)
    k = h // nb
    colmean = feats[:nb * k].reshape(nb, k, *feats.shape[1:]).mean(axis=1)  # (B, ws, 6): band means per column
    stride = max(1, band // 4)  # reference steps on a grid through the edge: 4 per window width
    xs = ee + stride * np.arange(-((ee - band) // stride), (colmean.shape[1] - gap - band - ee) // stride + 1)
    at = int(np.flatnonzero(xs == ee)[0])
    ref = (xs + gap + band <= ee) | (xs - band >= ee + gap)  # both windows inside one side
    starts = np.concatenate([xs - band, xs + gap])
    level = np.median(sliding_window_view(colmean, band, axis=1)[:, starts, :, ::band // 8], axis=-1)  # (B, 2X, 6)
    before, after = level[:, :len(xs)], level[:, len(xs):]
    colour = np.linalg.norm(after[..., :3] - before[..., :3], axis=2)
    contrast = np.log((level[..., 3] + 0.5) / (level[..., 4] + 4.0))  # gradient energy over brightness
    sharpness = np.log((level[..., 5] + 0.5) / (level[..., 3] + 1.0))  # Laplacian over gradient energy
    texture = np.abs(contrast[:, len(xs):] - contrast[:, :len(xs)])
    sharp = np.abs(sharpness[:, len(xs):] - sharpness[:, :len(xs)])
    span = 0.0
    cues = ((colour, 2.0, smooth_colour, 1.0, "lower"), (texture, 0.2, smooth_texture, texture_weight, "linear"),
            (sharp, 0.2, smooth_texture, texture_weight, "linear"))
    for steps, floor, smooth, weight, pick in cues:  # colour: an observed band's z; texture (noisier): interpolated
        scale = np.median(steps[:, ref], axis=1)
        z, ok = steps[:, at] / (scale + floor), scale < smooth
        thirds = [np.quantile(z[s][ok[s]], 1.0 - coverage, method=pick) if ok[s].any() else 0.0
                  for s in (slice(0, nb // 3), slice(nb // 3, 2 * nb // 3), slice(2 * nb // 3, nb))]
        span = max(span, weight * min(thirds))
    f = max(1, h // 128)  # rows binned to at most ~128 for the alignment
    rows = sub[:h // f * f, ee - 2 * band - gap:ee + gap + band].reshape(h // f, f, -1, 3).mean(axis=1)
    left, right = np.median(rows[:, band + gap:2 * band + gap], axis=1), np.median(rows[:, -band:], axis=1)
    inner = np.median(rows[:, :band], axis=1)
    lag = max(2, h // f // 6)
    align = _lag_gain(left, right, lag) - max(_lag_gain(inner, left, lag), 0.0)
    return float(max(span, align_weight * align))


def _lag_gain(a: np.ndarray, b: np.ndarray, lag: int, clip: float = 30.0) -> float:
    """How much the best vertical lag of 2..``lag`` rows lowers the mean row difference |a(y) - b(y + d)|
    (summed over channels, capped at ``clip`` levels) against d = 0, as a share of the lag-0 one (+1).

    The cap keeps one object that differs on the two sides (a car, a building) from being "explained"
    by moving it onto other rows: a lag wins only by lining up many rows.
    """
    h = len(a)
    padded = np.full((h + 2 * lag, a.shape[1]), np.nan, np.float32)
    padded[lag:lag + h] = b
    shifted = sliding_window_view(padded, h, axis=0)  # (2 lag + 1, C, h): shifted[d + lag][:, y] = b[y + d]
    err = np.nanmean(np.minimum(np.abs(shifted - a.T[None]).sum(axis=1), clip), axis=1)  # (2 lag + 1,)
    d = np.arange(-lag, lag + 1)
    return float((err[lag] - err[np.abs(d) >= 2].min()) / (err[lag] + 1.0))


def column_profile(image: np.ndarray) -> np.ndarray:
    """Mean gray level per column of an RGB (H, W, 3) or gray (H, W) uint8 image."""
    img = np.asarray(image)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    return gray.astype(np.float64).sum(axis=0) / gray.shape[0]


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


def column_sum_score(image: np.ndarray, mask: np.ndarray, band: int = 8, window: int = 32, floor: float = 1.0,
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


SCORES = {"profile": profile_score, "column-sum": column_sum_score, "row-band": row_band_score}
