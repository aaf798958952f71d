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
- ``lag``: how much better ``C`` continues ``B`` when moved up or down than in place, beyond the same
  gain between ``A`` and ``B`` and between ``C`` and ``D`` (slanted lines gain alike on both).
- ``content``: the spread over rows of the residual step ``(C - B) - ((B - A) + (D - C)) / 2``
  against the spread of ``(B - A) - (D - C)``: another scene's rows do not continue the known ones.
- ``blur`` / ``streak`` / ``rough``: gradient energy, gradient direction (across rows against along
  them) and unsmoothed Laplacian energy of the first invented columns against the last known ones,
  per third (:func:`_gradients`): a strong blur, inpainting streaks, a flat or a noise fill stop or
  replace the structures that run through the known part; a slight softness or grain does not count.
"""

from __future__ import annotations

import cv2
import numpy as np

CUES = ("level", "log_level", "lag", "content", "blur", "streak", "rough")
#: Smallest scale of each cue (its unit: levels, log-levels x 100, share, ratio, log ratios): below
#: these a cue is no evidence, whatever the calibration set's good continuations happen to reach.
CUE_FLOORS = (3.0, 3.0, 0.1, 1.5, 0.3, 0.5, 0.7)


def window_width(w: int) -> int:
    """Columns per window at image width ``w``."""
    return max(4, w // 128)


def profiles(img: np.ndarray, e: int, gap: int, k: int) -> np.ndarray | None:
    """(4, H, 3) float32 row profiles of windows A, B, C, D (module docstring); None if they do not fit."""
    s = k + gap
    x0 = e - k - s
    if x0 < 0 or e + gap + s + k > img.shape[1]:
        return None
    starts = (x0, e - k, e + gap, e + gap + s)
    rgb = img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
    prof = np.stack([rgb[:, a:a + k].mean(axis=1, dtype=np.float32) for a in starts])
    sigma = max(1.5, img.shape[0] / 128)
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
    each third, agreeing in sign), the weakest third; the largest channel. Content at the edge steps
    some rows or some thirds, a seam steps all of them."""
    thirds = np.stack([_shorth(t) for t in np.array_split(r, 3)])  # (3, 3)
    return float(np.abs(thirds).min(axis=0).max())


def _lag_gain(p: np.ndarray, lag: int) -> float:
    """How much better the rows right of the edge (C) continue those left of it (B) when moved by
    1..``lag`` rows than in place, beyond the same gain between A and B and between C and D: a fill
    moved up or down lines up only at its offset. The mismatch at an offset is the median over rows
    of the absolute difference (less its median, so a brightness step does not count)."""
    f = max(1, p.shape[1] // 256)  # rows binned to at most ~256 (the profiles are smoothed over f rows anyway)
    g = p.mean(axis=2)[:, :p.shape[1] // f * f].reshape(4, -1, f).mean(axis=2)
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


def _gradients(img: np.ndarray, e: int, gap: int, k: int) -> tuple[float, float, float]:
    """(blur, streak, rough): per third of the height, log gradient energy of the known columns over that of the
    invented ones, and how much more the invented ones' gradients point across rows than along them
    (log gy^2 / gx^2, invented minus known); each the weakest third. Both on a copy smoothed with
    sigma 2, so grain, compression and a slight softness do not count; a strong blur, a flat fill or
    inpainting streaks (structure stopped at the edge) do. ``rough``: log Laplacian energy of the
    invented columns over the known ones, unsmoothed but with a floor (500 levels^2) that grain and
    compression stay under and a noise fill does not."""
    x0, x1 = max(0, e - 2 * k - 4), min(img.shape[1], e + gap + 2 * k + 4)
    strip = np.ascontiguousarray(img[:, x0:x1])
    gray = cv2.cvtColor(strip, cv2.COLOR_RGB2GRAY) if strip.ndim == 3 else strip
    smooth = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 2.0)
    gx, gy = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3) ** 2, cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) ** 2
    known, fill = slice(e - x0 - 2 * k, e - x0), slice(e - x0 + gap, e - x0 + gap + 2 * k)
    raw = cv2.Laplacian(gray, cv2.CV_32F) ** 2
    h = img.shape[0]
    blur, streak, rough = [], [], []
    for rows in (slice(0, h // 3), slice(h // 3, 2 * h // 3), slice(2 * h // 3, h)):
        kx, ky = gx[rows, known].mean() + 1.0, gy[rows, known].mean() + 1.0
        fx, fy = gx[rows, fill].mean() + 1.0, gy[rows, fill].mean() + 1.0
        blur.append(np.log((kx + ky) / (fx + fy)))
        streak.append(np.log(fy / fx) - np.log(ky / kx))
        rough.append(np.log((raw[rows, fill].mean() + 500.0) / (raw[rows, known].mean() + 500.0)))
    return float(min(blur)), float(min(streak)), float(min(rough))


def edge_cues(img: np.ndarray, e: int, gap: int = 8) -> dict[str, float] | None:
    """The cues (module docstring) of the edge at column ``e``, invented side right; None if it is too near a border."""
    k = window_width(img.shape[1])
    p = profiles(img, e, gap, k)
    if p is None:
        return None
    r, ref = _residual(p)
    lp = 100.0 * np.log(p + 16.0)
    lag = max(4, min(24, img.shape[0] // 8))
    spread = np.abs(r - np.median(r, axis=0)).mean()
    ref_spread = np.abs(ref - np.median(ref, axis=0)).mean()
    blur, streak, rough = _gradients(img, e, gap, k)
    return {"level": _level(p[2] - p[1]), "log_level": _level(lp[2] - lp[1]), "lag": _lag_gain(p, lag),
            "content": float(spread / (ref_spread + 2.0)), "blur": blur, "streak": streak,
            "rough": rough}
