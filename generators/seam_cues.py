"""Continuity cues across one known edge: what a seam breaks, measured where texture cannot testify.

Four column windows of width ``k`` sit around the edge at column ``e`` (invented side on the
right): ``A`` and ``B`` in the known part (``B`` ends at the edge), ``C`` and ``D`` in the invented
part (``C`` starts after the ``gap``, the generator's feather ramp), each ``k + gap`` columns after
the previous one. Per row, each window's mean colour is a profile; averaging over ``k`` columns and
smoothing a little along the rows leaves the structures (horizon, kerbs, facades, lane marks, cars)
and drops texture, grain and compression. A true continuation changes from ``B`` to ``C`` as it does
from ``A`` to ``B`` and from ``C`` to ``D``; every cue compares the step across the edge with that
prediction, so a scene's own gradients, slants and perspective cancel:

- ``level``: the per-row residual step, its median in each third of the height; a brightness step
  or a colour cast shifts every third the same way (linear levels and log levels, per channel).
- ``lag``: the vertical offset at which ``C``'s profile lines up with ``B``'s, against the offsets
  between ``A`` and ``B`` and between ``C`` and ``D``: a fill moved up or down.
- ``content``: the spread of the per-row residual against the spread of the two references: another
  scene's rows, a flat or noise fill do not continue the known rows.
- ``flatness``: horizontal structure in ``C``-``D`` against ``A``-``B`` (log ratio): inpainting streaks,
  a flat fill or a strong blur stop the structures that run through the known part.
"""

from __future__ import annotations

import cv2
import numpy as np

CUES = ("level", "log_level", "lag", "content", "flatness")


def window_width(w: int) -> int:
    """Columns per window at image width ``w``."""
    return max(8, w // 32)


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


def _level(r: np.ndarray, q: float = 0.4) -> float:
    """Per channel, the step that nearly every row of every third shows: the ``q`` quantile of the
    signed residual in each third, the weakest third; the largest channel. Content at the edge (a
    facade's window column, a car) steps only some rows of a third, a seam steps all of them."""
    sign = np.sign(np.median(r, axis=0))
    thirds = np.stack([np.quantile(t * sign, q, axis=0) for t in np.array_split(r, 3)])  # (3, 3)
    return float(np.max(np.clip(thirds.min(axis=0), 0, None)))


def _lag_gain(p: np.ndarray, lag: int) -> float:
    """How much better the invented windows continue the known ones when moved by 1..``lag`` rows
    than in place: spread of the per-row residual at offset 0 minus its smallest spread at another
    offset, over the spread at 0 (+ 1 level). A fill moved up or down lines up only at its offset."""
    a, b, c, d = p.mean(axis=2)
    n = len(a)
    if n <= 2 * lag + 8:
        return 0.0
    rows = slice(lag, n - lag)
    offs = np.arange(-lag, lag + 1)
    cs = np.stack([c[lag + o:n - lag + o] for o in offs])
    ds = np.stack([d[lag + o:n - lag + o] for o in offs])
    r = (cs - b[rows]) - 0.5 * ((b[rows] - a[rows]) + (ds - cs))
    spread = np.abs(r - np.median(r, axis=1, keepdims=True)).mean(axis=1)
    s0 = spread[lag]
    return float((s0 - spread[offs != 0].min()) / (s0 + 1.0))


def edge_cues(img: np.ndarray, e: int, gap: int = 8) -> dict[str, float] | None:
    """The cues (module docstring) of the edge at column ``e``, invented side right; None if it is too near a border."""
    k = window_width(img.shape[1])
    p = profiles(img, e, gap, k)
    if p is None:
        return None
    r, ref = _residual(p)
    lp = 100.0 * np.log(p + 16.0)
    lr, _ = _residual(lp)
    lag = max(4, min(24, img.shape[0] // 8))
    spread = np.abs(r - np.median(r, axis=0)).mean()
    ref_spread = np.abs(ref - np.median(ref, axis=0)).mean()
    known, fill = np.abs(p[1] - p[0]).mean(), np.abs(p[3] - p[2]).mean()
    return {"level": _level(r), "log_level": _level(lr), "lag": _lag_gain(p, lag),
            "content": float(spread / (ref_spread + 2.0)),
            "flatness": float(np.log((known + 0.5) / (fill + 0.5)))}
