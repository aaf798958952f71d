"""The seam gate: does an outpainted image show a break where the mask ends?

Three methods, each with its calibrated threshold (:data:`THRESHOLDS`):

``profile`` (default, :func:`profile_score`) scores the edge per row band: the colour step and two
texture steps (gradient energy over brightness; fine over gradient energy, i.e. sharpness) between
the known columns just left of the edge and the invented ones after the feather ramp, each against
the same step between windows inside each side. Only smooth bands can testify, and a seam must
break every smooth band in each third of the height: a pole, a building corner, lane marks or a
shadow on the road break only some. A second cue finds misregistered fills: the per-row profile
right of the edge matches the one left of it better at a vertical lag than at lag 0.

``column-sum`` (the classic heuristic, :func:`seam_score`) steps the per-column mean gray level of
a few horizontal strips; ``row-band`` (:func:`row_band_score`) is an earlier per-band score kept
for comparison.

Measured with ``benchmarks/seam_gate.py`` on sample-maker scenes: realistic mismatches composited
as the generator does (:func:`seamed_variants`: a 16-level step, a colour cast, a blur, a fill
moved by rows, a neighbouring scene's half) and hard clean content (:func:`hard_clean_variants`:
clean, pole, building edge, lane marks, shadow on the road), edge at 2/3 of the width.
``PROFILE_THRESHOLD`` was picked on seeds 0..29 (the largest threshold with the lowest false-accept
rate at <= 3 % false rejects: 0.133 / 0.007 at 96x192, 0.153 / 0.007 at 256x512); held-out seeds
100..159, the same images for both methods (FA: seams passed, FR: clean images rejected):

- 96x192: profile FA 0.143 / FR 0.027 (passed: step .05, cast .08, blur .02, shift 0, neighbour .57;
  rejected: shadow .08, clean, pole, lane marks .02); column-sum 0.853 / 0.110 (step .70, cast .98,
  blur 1, shift 1, neighbour .58; shadow .30, building edge .20).
- 256x512: profile 0.130 / 0.007 (step .02, cast .02, blur 0, shift .02, neighbour .60; shadow .03);
  column-sum 0.790 / 0.187 (step .43, cast .95, blur 1, shift .98; shadow .57, building edge .37).
- 512x1024 (seeds 100..139): profile 0.125 / 0.010 (step, cast, blur 0, shift .03, neighbour .60;
  shadow .05); column-sum 0.705 / 0.235 (step .20, cast .80; shadow .82, building edge .28).

The goal (<= 2 % false accept at <= 3 % false reject) is not met, and the ``neighbour`` kind
blocks it: a neighbouring scene's half from the same renderer at the same time of day has the same
sky, sidewalk and road rows, so its only break is a building boundary at the edge, the very content
the ``building-edge`` hard case requires to pass. Such fills pass 97-100 %; day/night pairs are all
rejected. Without that kind, ``profile`` lets through 3.8 % (96x192), 1.3 % (256x512) and 0.6 %
(512x1024) of the other mismatches. The false rejects left are mostly ``shadow`` (3-8 %): the
shadow breaks the middle and bottom thirds, and a real building boundary at the edge breaks every
smooth band of the top third too. ``profile`` costs about 4 ms per 512x1024 image (column-sum
1.7 ms). The module also holds the calibration (the variants above, ROC tables); calibrate on your
data with ``streetsynth seam-calibrate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: Threshold of the ``column-sum`` method (the classic heuristic).
COLUMN_SUM_THRESHOLD = 5.0
#: Threshold of the experimental ``row-band`` method at <= 3 % false rejects on the calibration set.
ROW_BAND_THRESHOLD = 2.4
#: Threshold of the ``profile`` method, picked on calibration seeds 0..29 at 96x192 and 256x512 (module docstring).
PROFILE_THRESHOLD = 0.8
METHODS = ("profile", "column-sum", "row-band")
DEFAULT_METHOD = "profile"
THRESHOLDS = {"profile": PROFILE_THRESHOLD, "column-sum": COLUMN_SUM_THRESHOLD, "row-band": ROW_BAND_THRESHOLD}
#: Default rejection threshold (of the default method; see ``streetsynth seam-calibrate``).
DEFAULT_THRESHOLD = THRESHOLDS[DEFAULT_METHOD]
#: Row bands the ``profile`` method scores separately.
PROFILE_BANDS = 32
#: Percentile of the neighbourhood steps used as their scale.
QUANTILE = 50.0
#: Horizontal strips whose profiles are scored separately.
STRIPS = 4


@dataclass(frozen=True)
class SeamGate:
    """Scores images for seams at their mask edges; ``score > threshold`` rejects.

    ``method``: ``"profile"`` (default, :func:`profile_score`), the classic ``"column-sum"``
    (:func:`seam_score`) or the experimental ``"row-band"`` (:func:`row_band_score`); each has its
    own calibrated threshold (:data:`THRESHOLDS`), used unless ``threshold`` is given.
    """

    threshold: float | None = None  # scores above this reject the sample (default: the method's calibrated one)
    method: str = DEFAULT_METHOD  # "profile", "column-sum" or "row-band"
    band: int = 8  # column-sum / row-band: columns each side whose median gives a level
    window: int = 32  # column-sum: neighbourhood half-width (columns) the edge step is compared against
    floor: float = 1.0  # column-sum: gray levels added to the neighbourhood scale
    strips: int = STRIPS  # column-sum: horizontal strips scored separately

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown seam method {self.method!r}; known: {', '.join(METHODS)}")
        if self.threshold is None:
            object.__setattr__(self, "threshold", THRESHOLDS[self.method])

    def score(self, image: np.ndarray, mask: np.ndarray) -> float:
        if self.method == "profile":
            return profile_score(image, mask)
        if self.method == "row-band":
            return row_band_score(image, mask, band=self.band)
        return seam_score(image, mask, self.band, self.window, self.floor, self.strips)

    def accepts(self, score: float) -> bool:
        return bool(score <= self.threshold)


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


def edge_mask(shape: tuple[int, ...], edge: int) -> np.ndarray:
    """The generator's mask for a canvas of ``shape``: 255 (invented) from column ``edge`` on."""
    mask = np.zeros(shape[:2], np.uint8)
    mask[:, edge:] = 255
    return mask


def _composite(known: np.ndarray, generated: np.ndarray, edge: int, feather: int = 8) -> np.ndarray:
    """What the generator writes: ``generated`` with ``known``'s left part pasted back and feathered."""
    from .outpaint import Canvas, paste_known

    return paste_known(generated, Canvas(known, edge_mask(known.shape, edge), edge, 1.0), feather)


def plant_step(image: np.ndarray, edge: int, strength: float) -> np.ndarray:
    """``image`` with ``strength`` gray levels added (or removed, if negative) right of ``edge``."""
    out = image.astype(np.float32)
    out[:, edge:] += strength
    return np.clip(out, 0, 255).astype(np.uint8)


def seamed_variants(image: np.ndarray, neighbour: np.ndarray, edge: int, rng: np.random.Generator,
                    strength: float = 16.0) -> dict[str, np.ndarray]:
    """Realistic outpaint mismatches of one scene at ``edge``, each composited as the generator does.

    ``step``: a planted gray step; ``colour-cast``: the model's output with a colour cast;
    ``blur``: a blurred output; ``shift``: the fill is the scene moved by several rows and
    columns; ``neighbour``: the fill is another scene's right part.
    """
    h, w = image.shape[:2]
    sign = float(rng.choice([-1.0, 1.0]))
    cast = image.astype(np.float32) * rng.uniform(0.85, 1.15, 3) + sign * rng.uniform(6, 14, 3)
    cast = np.clip(cast, 0, 255).astype(np.uint8)
    blur = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(1.5, 3.0)))
    dy, dx = int(rng.integers(6, max(7, h // 8))) * int(sign), int(rng.integers(4, 16))
    shifted = np.roll(image, (dy, dx), axis=(0, 1))
    shift_fill, nb_fill = image.copy(), image.copy()
    shift_fill[:, edge:] = shifted[:, edge:]
    nb_fill[:, edge:] = neighbour[:, edge:]
    return {"step": plant_step(image, edge, sign * strength), "colour-cast": _composite(image, cast, edge),
            "blur": _composite(image, blur, edge), "shift": _composite(image, shift_fill, edge),
            "neighbour": _composite(image, nb_fill, edge)}


def hard_clean_variants(image: np.ndarray, edge: int, rng: np.random.Generator,
                        horizon: float | None = None) -> dict[str, np.ndarray]:
    """Clean scenes with real content on the mask edge: ``pole``, ``building-edge``, ``lane-marks``,
    ``shadow`` (a shadow on the road starting at the edge), and the scene itself (``clean``)."""
    h, w = image.shape[:2]
    hz = int(horizon if horizon is not None else h * 0.45)
    pole = image.copy()
    x = edge + int(rng.integers(-1, 2))
    pole[int(rng.integers(0, hz // 2)):min(h, hz + h // 6), x:x + 3] = rng.integers(20, 80, 3)
    building = image.copy()
    building[int(rng.integers(2, max(3, hz // 2))):hz, edge:edge + w // 6] = rng.integers(40, 220, 3)
    lanes = image.copy()
    for y in rng.integers(hz + 4, h - 3, 2):
        x0 = edge - int(rng.integers(4, 20))
        lanes[y:y + 2, x0:x0 + int(rng.integers(16, 40))] = 235
    shadow = image.astype(np.float32)
    shadow[hz + int(rng.integers(2, 12)):, edge:] *= rng.uniform(0.55, 0.8)
    return {"clean": image.copy(), "pole": pole, "building-edge": building, "lane-marks": lanes,
            "shadow": np.clip(shadow, 0, 255).astype(np.uint8)}


def calibration_scores(images: list[np.ndarray], edge: int, method: str = "column-sum", seed: int = 0,
                       strength: float = 16.0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(seamed scores by kind, clean scores by kind)`` of one method over :func:`seamed_variants`
    and :func:`hard_clean_variants` of ``images`` (each image's neighbour is the next one)."""
    gate = SeamGate(method=method)
    rng = np.random.default_rng(seed)
    seamed: dict[str, list[float]] = {}
    clean: dict[str, list[float]] = {}
    mask = edge_mask(images[0].shape, edge)
    for k, img in enumerate(images):
        for name, v in seamed_variants(img, images[(k + 1) % len(images)], edge, rng, strength).items():
            seamed.setdefault(name, []).append(gate.score(v, mask))
        for name, v in hard_clean_variants(img, edge, rng).items():
            clean.setdefault(name, []).append(gate.score(v, mask))
    return ({k: np.array(v) for k, v in seamed.items()}, {k: np.array(v) for k, v in clean.items()})


def rates(seamed: dict[str, np.ndarray], clean: dict[str, np.ndarray], threshold: float) -> dict[str, float]:
    """False-accept rate per seamed kind and false-reject rate per clean kind at ``threshold``, plus totals."""
    out = {f"accept:{k}": float(np.mean(v <= threshold)) for k, v in seamed.items()}
    out |= {f"reject:{k}": float(np.mean(v > threshold)) for k, v in clean.items()}
    out["false_accept"] = float(np.mean(np.concatenate(list(seamed.values())) <= threshold))
    out["false_reject"] = float(np.mean(np.concatenate(list(clean.values())) > threshold))
    return out


def calibrate(seam_images: list[np.ndarray], clean_images: list[np.ndarray], edge_fraction: float,
              target_far: float) -> dict[str, dict]:
    """Per method: scores, ROC table and the threshold for ``target_far`` on the same images."""
    out = {}
    for method in METHODS:
        gate = SeamGate(method=method)
        seam = np.array([gate.score(i, edge_mask(i.shape, int(round(i.shape[1] * edge_fraction)))) for i in seam_images])
        clean = np.array([gate.score(i, edge_mask(i.shape, int(round(i.shape[1] * edge_fraction)))) for i in clean_images])
        out[method] = {"seam": seam, "clean": clean, "roc": roc_table(seam, clean),
                       "pick": threshold_for_far(seam, clean, target_far)}
    return out
