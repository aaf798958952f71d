"""Continuity cues across one known edge: what a seam breaks, measured where texture cannot testify.

Four narrow column windows of width ``k`` sit around the edge at column ``e`` (invented side on the
right): ``A`` and ``B`` in the known part (``B`` ends at the edge), ``C`` and ``D`` in the invented
part (``C`` starts after the ``gap``, the generator's feather ramp), each ``k + gap`` columns after
the previous one. Per row, each window's mean colour, smoothed a little along the rows, is a
profile: averaging drops grain and compression, the structures (horizon, kerbs, facades, lane
marks, cars) stay. The cues (:data:`CUES`):

- ``level`` / ``log_level``: the step ``C - B`` shared by most rows (:func:`_shorth`) of every third
  of the height, per channel, in levels and in log levels: a brightness step or a colour cast
  moves every third; content at the edge (a pole, a car, a facade's window column) only some.
- ``gray_level``: the same step in gray (the channels' mean), the median over each third's rows, the
  weakest third, and none unless all three step the same way (:func:`_gray_level`): the median of
  the pooled channels keeps more of the rows' evidence than the shorth of one channel, so an 8-level
  step stands out of a blotchy facade's own texture.
- ``local_level`` / ``local_log_level``: the same step over wider windows, divided by what it
  reaches at nearby columns of the same image where no edge is (:func:`_local_levels`): a facade of
  coarse, contrasty texture steps by several levels between any two columns, a smooth one by
  none, so a step of 8 levels is told from the image's own texture instead of every image's.
- ``chroma``: the same shared step in log chromaticity (red over green, blue over green, red over
  blue): a colour cast moves the channels apart, while texture, shading and exposure move them
  together, so chromaticity barely steps across a true continuation even on a contrasty facade.
- ``lag``: how much better ``C`` continues ``B`` when moved up or down than in place, beyond the same
  gain between ``A`` and ``B`` and between ``C`` and ``D`` (slanted lines gain alike on both).
- ``lag_far``: the same gain over a search nearly three times as far (:func:`.seam_crossing.far_rows`): another scene's
  horizon, kerb or road edge can lie 35-45 rows off at 512 rows, beyond ``lag``'s reach; a search that far
  also finds more chance alignments, so it is a cue of its own, with its own scale.
- ``content``: the spread over rows of the residual step ``(C - B) - ((B - A) + (D - C)) / 2``
  against the spread of ``(B - A) - (D - C)``: another scene's rows do not continue the known ones.
- ``blur`` / ``streak`` / ``rough``: gradient energy, gradient direction (across rows against along
  them) and unsmoothed Laplacian energy of the first invented columns against the last known ones,
  per third (:func:`_gradients`): a strong blur, inpainting streaks, a flat or a noise fill stop or
  replace the structures that run through the known part; a slight softness or grain does not count.
- ``vertical``: the vertical edges (poles, building sides, car sides) of a wide band of the known side
  against as wide a band of the invented side (:func:`_gradients`): inpainting and smears draw every row
  on along the edge and leave no vertical edge in the fill, while a true continuation has its own.
- ``sharpness``: how much wider the sharpest edge of the first invented columns is than the sharpest
  edge of the last known ones (:func:`_sharpness`): an edge's width is the contrast of a row block
  over its steepest step between rows, so it depends on the blur alone, not on what the edge is;
  a fill blurred or smeared everywhere (a strong blur, OpenCV's inpainting) has no sharp edge left,
  while a fill whose content merely differs (a building ending at the edge) keeps its own.
- ``crossing``: structures that cross the edge (a facade's foot, a box top, a window row, a lane
  mark) continue in position and angle (:func:`crossing_blocks`): per row block, the vertical-gradient
  profile of the last known columns is matched to that of the first invented ones, in gray and in
  two colour-opponent channels (the boundary between a facade and the road is a colour edge that
  texture barely touches), and the best offset is compared with what the structure's own slope
  (structure tensor on each side, the invented side's on the rows the match landed on) predicts.
  Blocks that land off their line count for a seam, blocks that land on it against; a vertical
  shift moves every crossing structure.
- ``displaced``: the same matches over taller blocks and a longer search, counted only for a seam: a
  block whose structure matches clearly better away from its line than anywhere near it
  (:func:`.seam_crossing.displaced_cue`). It needs no coherent slope on both sides, and a structure that
  repeats (rows of windows) is no evidence, since it matches as well near its line as a period away.

The matching for ``crossing`` and ``displaced`` lives in :mod:`.seam_crossing`.
"""

from __future__ import annotations

import cv2
import numpy as np

from .seam_crossing import crossing_cue, displaced_cue, edge_strip, far_rows, search_rows, strip_crossing_blocks

CUES = ("level", "log_level", "local_level", "local_log_level", "chroma", "lag", "lag_far", "content", "blur", "streak",
        "rough", "vertical", "sharpness", "crossing", "displaced", "gray_level")
#: Smallest scale of each cue (its unit: levels, log levels x 100, ratios to the nearby steps, log
#: chromaticity x 100, share, ratio, log ratios, log width ratio, row blocks): below these a cue is no
#: evidence, whatever the calibration set's good continuations reach.
CUE_FLOORS = (3.0, 3.0, 0.75, 0.75, 1.0, 0.1, 0.1, 1.5, 0.3, 0.5, 0.7, 0.3, 0.5, 1.0, 1.0, 3.0)
#: ``vertical``: windows (of the image's window width) either side of the edge whose vertical edges are compared.
VERTICAL_BAND = 8
#: ``sharpness``: least contrast (gray levels) of a row block whose edge width counts.
SHARP_CONTRAST = 16.0
#: ``local_level``: nearby positions on each side of the edge, and the floor (levels or log levels x
#: 100) added to their typical step so that a textureless image does not turn any step into a seam.
LOCAL_POSITIONS, LOCAL_FLOOR = 6, 2.0


def window_width(w: int) -> int:
    """Columns per window at image width ``w``."""
    return max(4, w // 128)


def _row_sigma(h: int) -> float:
    """Smoothing (rows) of the row profiles at image height ``h``: grain and compression blocks averaged away."""
    return max(1.5, h / 128)


def profiles(img: np.ndarray, e: int, gap: int, k: int) -> np.ndarray | None:
    """(4, H, 3) float32 row profiles of windows A, B, C, D (module docstring); None if they do not fit."""
    s = k + gap
    x0 = e - k - s
    if x0 < 0 or e + gap + s + k > img.shape[1]:
        return None
    starts = (x0, e - k, e + gap, e + gap + s)
    rgb = img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
    prof = np.stack([rgb[:, a:a + k].mean(axis=1, dtype=np.float32) for a in starts])
    sigma = _row_sigma(img.shape[0])
    flat = prof.transpose(1, 0, 2).reshape(img.shape[0], 12)
    smooth = cv2.GaussianBlur(flat, (1, 0), sigmaX=0.1, sigmaY=sigma)
    return smooth.reshape(img.shape[0], 4, 3).transpose(1, 0, 2)


def _residual(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row residual step across the edge and the reference residual between the two sides' own steps."""
    a, b, c, d = p
    return (c - b) - 0.5 * ((b - a) + (d - c)), (b - a) - (d - c)


def _shorth(x: np.ndarray) -> np.ndarray:
    """Per column, the midpoint of the shortest interval holding half of the values: the level most
    rows share, which content in the other rows (a facade's windows, a car) cannot drag."""
    v = np.sort(x, axis=0)
    h = max(1, len(v) // 2)
    width = v[h:] - v[:-h]
    i = np.argmin(width, axis=0)
    cols = np.arange(v.shape[1])
    return 0.5 * (v[i, cols] + v[i + h, cols])


def _level(r: np.ndarray) -> float:
    """Per channel, the step that most rows of every third share (:func:`_shorth` of the residual in
    each third), the weakest third; the largest channel. Content at the edge steps some rows or some
    thirds, a seam steps all of them."""
    return float(_thirds_levels(r)[0])


def _gray_level(d: np.ndarray) -> float:
    """The weakest third's median over rows of the gray step ``d`` (rows, 3 channels), 0 unless every
    third steps the same way."""
    m = np.array([np.median(t) for t in np.array_split(d.mean(axis=1), 3)])
    return float(np.abs(m).min()) if (np.sign(m) == np.sign(m[0])).all() else 0.0


def _chromaticity(log_rgb: np.ndarray) -> np.ndarray:
    """(rows, 3) log red over green, blue over green, red over blue, from (rows, 3) log channels."""
    return log_rgb[:, [0, 2, 0]] - log_rgb[:, [1, 1, 2]]


def _thirds_levels(d: np.ndarray) -> np.ndarray:
    """:func:`_level` of each group of three channel columns of ``d`` (rows, groups x 3)."""
    thirds = np.stack([_shorth(t) for t in np.array_split(d, 3)])  # (3, positions x 3)
    return np.abs(thirds).min(axis=0).reshape(-1, 3).max(axis=1)


#: 100 log(v + 16) of every 8-bit level: the log levels of :func:`_local_levels` by lookup.
_LOG_LEVELS = (100.0 * np.log(np.arange(256, dtype=np.float32) + 16.0)).astype(np.float32)


def _local_levels(img: np.ndarray, e: int, gap: int, k: int) -> tuple[float, float]:
    """(level, log level) of the step across the edge between windows of ``2 k`` columns (the right
    one after the ``gap``), each over the 75th percentile of the same step at :data:`LOCAL_POSITIONS`
    positions either side (stride ``k``; the known side's wholly left of the edge, the invented
    side's wholly past the gap) plus :data:`LOCAL_FLOOR`. (0, 0) when fewer than 4 positions fit."""
    wd, width = 2 * k, img.shape[1]
    reach = [gap + wd + 4 + j * k for j in range(LOCAL_POSITIONS)]
    near = [o for o in [-r for r in reach] + reach if e + o - wd >= 0 and e + o + gap + wd <= width]
    if len(near) < 4:
        return 0.0, 0.0
    lo, hi = e + min(near + [0]) - wd, e + max(near + [0]) + gap + wd
    strip = np.asarray(img[:, lo:hi])
    strip = strip if strip.ndim == 3 else np.repeat(strip[..., None], 3, axis=2)
    at = np.array([e - lo] + [e + o - lo for o in near])
    sigma = _row_sigma(img.shape[0])
    out = []
    logs = cv2.LUT(strip, _LOG_LEVELS) if strip.dtype == np.uint8 else 100.0 * np.log(strip.astype(np.float32) + 16.0)
    for x in (strip.astype(np.float32), logs):
        # means[:, c] is the mean of columns c - wd/2 .. c + wd/2 - 1
        means = cv2.boxFilter(x, -1, (wd, 1), borderType=cv2.BORDER_REPLICATE)
        step = (means[:, at + gap + wd // 2] - means[:, at - wd // 2]).reshape(len(x), -1)
        lev = _thirds_levels(cv2.GaussianBlur(step, (1, 0), sigmaX=0.1, sigmaY=sigma))
        out.append(float(lev[0] / (np.quantile(lev[1:], 0.75) + LOCAL_FLOOR)))
    return out[0], out[1]


def _binned_gray(p: np.ndarray) -> tuple[np.ndarray, int]:
    """(4, rows / f) gray profiles of ``p`` with rows binned by f, to at most ~256 rows (the profiles are
    smoothed over f rows anyway), and f: what ``lag`` and ``lag_far`` both search."""
    f = max(1, p.shape[1] // 256)
    return p.mean(axis=2)[:, :p.shape[1] // f * f].reshape(4, -1, f).mean(axis=2), f


def _lag_gain(g: np.ndarray, f: int, lag: int) -> float:
    """How much better the rows right of the edge (C) continue those left of it (B) when moved by
    1..``lag`` rows than in place, beyond the same gain between A and B and between C and D: a fill
    moved up or down lines up only at its offset. The mismatch at an offset is the median over rows
    of the absolute difference (less its median, so a brightness step does not count). ``g``, ``f``:
    :func:`_binned_gray` of the profiles."""
    lag = max(2, lag // f)
    n = g.shape[1]
    if n <= 2 * lag + 8:
        return 0.0
    offs = np.arange(-lag, lag + 1)

    def gain(x, y):
        d = np.stack([y[lag + o:n - lag + o] for o in offs]) - x[lag:n - lag]
        err = np.median(np.abs(d - np.median(d, axis=1, keepdims=True)), axis=1)
        return float((err[lag] - err[offs != 0].min()) / (err[lag] + 1.0))

    return gain(g[1], g[2]) - max(gain(g[0], g[1]), gain(g[2], g[3]), 0.0)


def _gradients(img: np.ndarray, e: int, gap: int, k: int) -> tuple[float, float, float, float]:
    """(blur, streak, rough, vertical): per third of the height, log gradient energy of the known columns over that
    of the invented ones, and how much more the invented ones' gradients point across rows than along them
    (log gy^2 / gx^2, invented minus known); each the weakest third. Both on a copy smoothed with
    sigma 2, so grain, compression and a slight softness do not count; a strong blur, a flat fill or
    inpainting streaks (structure stopped at the edge) do. ``rough``: log Laplacian energy of the
    invented columns over the known ones, unsmoothed but with a floor (500 levels^2) that grain and
    compression stay under and a noise fill does not. ``vertical``: log energy of the gradient along
    rows (the vertical edges of poles, building sides, cars) over :data:`VERTICAL_BAND` windows of the
    known side against as many of the invented side, whole height, on the smoothed copy."""
    band = min(VERTICAL_BAND * k, e, img.shape[1] - e - gap)
    reach = max(band, 2 * k + 4)
    x0, x1 = max(0, e - reach), min(img.shape[1], e + gap + reach)
    strip = np.ascontiguousarray(img[:, x0:x1])
    gray = cv2.cvtColor(strip, cv2.COLOR_RGB2GRAY) if strip.ndim == 3 else strip
    smooth = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 2.0)
    gx, gy = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3) ** 2, cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) ** 2
    at = e - x0
    known, fill = slice(at - 2 * k, at), slice(at + gap, at + gap + 2 * k)
    vertical = float(np.log((gx[:, at - band:at].mean() + 1.0) / (gx[:, at + gap:at + gap + band].mean() + 1.0))) \
        if band >= k else 0.0
    raw = cv2.Laplacian(gray, cv2.CV_32F) ** 2
    h = img.shape[0]
    blur, streak, rough = [], [], []
    for rows in (slice(0, h // 3), slice(h // 3, 2 * h // 3), slice(2 * h // 3, h)):
        kx, ky = gx[rows, known].mean() + 1.0, gy[rows, known].mean() + 1.0
        fx, fy = gx[rows, fill].mean() + 1.0, gy[rows, fill].mean() + 1.0
        blur.append(np.log((kx + ky) / (fx + fy)))
        streak.append(np.log(fy / fx) - np.log(ky / kx))
        rough.append(np.log((raw[rows, fill].mean() + 500.0) / (raw[rows, known].mean() + 500.0)))
    return float(min(blur)), float(min(streak)), float(min(rough)), vertical


def _sharpness(img: np.ndarray, e: int, gap: int, k: int) -> float:
    """Log of the sharpest edge width in the first ``k`` invented columns over that in the last ``k``
    known ones; per row block (height / 8, half overlapping) of contrast at least
    :data:`SHARP_CONTRAST`, the width is the contrast over the largest step between rows. 0 if either
    side has no such block."""
    h = img.shape[0]
    strip = np.ascontiguousarray(img[:, e - k:e + gap + k])
    gray = (cv2.cvtColor(strip, cv2.COLOR_RGB2GRAY) if strip.ndim == 3 else strip).astype(np.float32)
    p = max(16, h // 8)
    rows = np.arange(0, h - p + 1, p // 2)[:, None] + np.arange(p)
    widths = []
    for v in (gray[:, :k].mean(axis=1), gray[:, k + gap:].mean(axis=1)):
        seg = v[rows]
        contrast = seg.max(axis=1) - seg.min(axis=1)
        ok = contrast >= SHARP_CONTRAST
        if not ok.any():
            return 0.0
        widths.append((contrast[ok] / np.abs(np.diff(seg[ok], axis=1)).max(axis=1)).min())
    return float(np.log(widths[1] / widths[0]))


def crossing_blocks(img: np.ndarray, e: int, gap: int = 8) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """(first rows, rows per block, how far off its line, whether it counts): per row block (height / 8, at
    least 24 rows, half overlapping) and channel (gray, two colour-opponent), where the structure that
    crosses the edge at column ``e`` lands against its own slope (module docstring), in rows scaled by
    the slope's uncertainty; the ``crossing`` cue and the benchmark's pictures read it."""
    k = window_width(img.shape[1])
    return strip_crossing_blocks(edge_strip(img, e, gap, k), img.shape[0], k, gap)


def edge_cues(img: np.ndarray, e: int, gap: int = 8) -> dict[str, float] | None:
    """The cues (module docstring) of the edge at column ``e``, invented side right; None if it is too near a border."""
    k = window_width(img.shape[1])
    p = profiles(img, e, gap, k)
    if p is None:
        return None
    r, ref = _residual(p)
    lp = 100.0 * np.log(p + 16.0)
    lag = search_rows(img.shape[0])
    spread = np.abs(r - np.median(r, axis=0)).mean()
    ref_spread = np.abs(ref - np.median(ref, axis=0)).mean()
    blur, streak, rough, vertical = _gradients(img, e, gap, k)
    st, h = edge_strip(img, e, gap, k), img.shape[0]
    local, local_log = _local_levels(img, e, gap, k)
    step, (gray, f) = p[2] - p[1], _binned_gray(p)
    return {"level": _level(step), "log_level": _level(lp[2] - lp[1]), "local_level": local,
            "local_log_level": local_log, "chroma": _level(_chromaticity(lp[2]) - _chromaticity(lp[1])),
            "lag": _lag_gain(gray, f, lag), "lag_far": _lag_gain(gray, f, far_rows(h)),
            "content": float(spread / (ref_spread + 2.0)), "blur": blur, "streak": streak, "rough": rough,
            "vertical": vertical, "sharpness": _sharpness(img, e, gap, k), "crossing": crossing_cue(st, h, k, gap),
            "displaced": displaced_cue(st, h, k, gap),
            "gray_level": _gray_level(step)}
