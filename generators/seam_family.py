"""Composites with known answers for calibrating the seam gate: many kinds of fill, good and bad.

Every composite is made as the generator makes an outpaint: a full-canvas *fill* whose right part
(from the mask edge on) is kept, with the true scene's left part pasted back and feathered
(:func:`streetsynth.generators.outpaint.paste_known`). The kinds:

- :data:`SEAM_KINDS`, fills that break continuity at the edge: the scene moved vertically by 2-16
  px, another scene's right part (another horizon), grey steps of 8/16/32 levels, colour casts of a
  few % per channel, a strong blur, a flat fill, OpenCV inpainting (Telea, Navier-Stokes), noise.
- :data:`GOOD_KINDS`, the true continuation as a model could render it: exact, JPEG q75
  recompressed, Gaussian-smoothed (sigma 1), with sensor-like grain, rendered at half resolution.
- :data:`IMPLAUSIBLE_KINDS`, continuous at the edge but wrong: the known part mirrored or repeated.
  They belong to the plausibility score (:mod:`.seam_plausibility`), not to the seam gate.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

Fill = Callable[[np.ndarray, np.ndarray, int, np.random.Generator], np.ndarray]


def _shift(dy: int) -> Fill:
    def fill(img, other, edge, rng):
        return np.roll(img, dy * int(rng.choice([-1, 1])), axis=0)
    return fill


def _step(levels: float) -> Fill:
    def fill(img, other, edge, rng):
        return np.clip(img.astype(np.float32) + levels * float(rng.choice([-1, 1])), 0, 255).astype(np.uint8)
    return fill


def _cast(img, other, edge, rng):
    """Per-channel gains of 3-8 %, each up or down."""
    gain = 1.0 + rng.uniform(0.03, 0.08, 3) * rng.choice([-1, 1], 3)
    return np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def _other(img, other, edge, rng):
    return other


def _blur(img, other, edge, rng):
    return cv2.GaussianBlur(img, (0, 0), float(rng.uniform(4.0, 8.0)))


def _flat(img, other, edge, rng):
    return np.broadcast_to(img[:, edge:].reshape(-1, 3).mean(axis=0).astype(np.uint8), img.shape).copy()


def _inpaint(flag: int) -> Fill:
    def fill(img, other, edge, rng):
        mask = np.zeros(img.shape[:2], np.uint8)
        mask[:, edge:] = 255
        return cv2.inpaint(img, mask, 3, flag)
    return fill


def _noise(img, other, edge, rng):
    return rng.integers(0, 256, img.shape, dtype=np.uint8)


def _jpeg(img, other, edge, rng):
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 75])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def _smooth(img, other, edge, rng):
    return cv2.GaussianBlur(img, (0, 0), 1.0)


def _grain(img, other, edge, rng):
    return np.clip(img.astype(np.float32) + rng.normal(0, 3.0, img.shape), 0, 255).astype(np.uint8)


def _half_res(img, other, edge, rng):
    h, w = img.shape[:2]
    small = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _mirror(img, other, edge, rng):
    out = img.copy()
    n = min(edge, img.shape[1] - edge)
    out[:, edge:edge + n] = img[:, edge - n:edge][:, ::-1]
    return out


def _repeat(img, other, edge, rng):
    out = img.copy()
    n = img.shape[1] - edge
    out[:, edge:] = img[:, edge - n:edge] if n <= edge else np.resize(img[:, :edge], out[:, edge:].shape)
    return out


SEAM_KINDS: dict[str, Fill] = {
    "shift-2": _shift(2), "shift-4": _shift(4), "shift-8": _shift(8), "shift-16": _shift(16),
    "other-scene": _other, "step-8": _step(8), "step-16": _step(16), "step-32": _step(32),
    "colour-cast": _cast, "blur": _blur, "flat": _flat, "inpaint-telea": _inpaint(cv2.INPAINT_TELEA),
    "inpaint-ns": _inpaint(cv2.INPAINT_NS), "noise": _noise,
}
GOOD_KINDS: dict[str, Fill] = {"true": lambda img, other, edge, rng: img, "jpeg-75": _jpeg, "smooth-1": _smooth,
                               "grain": _grain, "half-res": _half_res}
IMPLAUSIBLE_KINDS: dict[str, Fill] = {"mirror": _mirror, "repeat": _repeat}
ALL_KINDS = SEAM_KINDS | GOOD_KINDS | IMPLAUSIBLE_KINDS


def edge_mask(shape: tuple[int, ...], edge: int) -> np.ndarray:
    """The generator's mask for a canvas of ``shape``: 255 (invented) from column ``edge`` on."""
    mask = np.zeros(shape[:2], np.uint8)
    mask[:, edge:] = 255
    return mask


def composite(known: np.ndarray, fill: np.ndarray, edge: int, feather: int = 8) -> np.ndarray:
    """What the generator writes: ``fill`` with ``known``'s left part pasted back and feathered."""
    from .outpaint import Canvas, paste_known

    return paste_known(np.ascontiguousarray(fill), Canvas(known, edge_mask(known.shape, edge), edge, 1.0), feather)


def composites(scenes: list[np.ndarray], edge: int, kinds: dict[str, Fill] = ALL_KINDS, seed: int = 0,
               others: list[np.ndarray] | None = None) -> dict[str, list[np.ndarray]]:
    """Every kind's composite of every scene; scene k's "other" scene is ``others[k]`` (default the next one)."""
    rng = np.random.default_rng(seed)
    others = others if others is not None else [scenes[(k + 1) % len(scenes)] for k in range(len(scenes))]
    out: dict[str, list[np.ndarray]] = {name: [] for name in kinds}
    for img, other in zip(scenes, others):
        for name, fill in kinds.items():
            out[name].append(composite(img, fill(img, other, edge, rng), edge))
    return out
