"""Anchors and resize that fit the objects a dataset holds.

Mask R-CNN's RPN can only propose an object that some anchor overlaps with IoU >= 0.5 (a box the
RPN never proposes is never detected). torchvision's default anchors (16-512 px, height/width
0.5, 1, 2) miss thin or tiny objects: rendered pedestrians at a 128x256 resize are 3-5 px wide
and 4-5x taller than wide. Here the training boxes, scaled by the detector's own resize, give
the anchors (:func:`fit_anchors`: two sizes per feature map in proportion to its stride, three
aspect ratios from percentiles of height/width); :func:`matchable_share` then says, per class,
what share of the boxes some anchor reaches with IoU >= 0.5 when the box centre sits a quarter
stride off the anchor centre (the mean offset of a box placed at random in a stride cell).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from streetsynth.schema import CLASS_NAMES

#: A class can be matched when at least this share of its training boxes can (see matchable_share).
MIN_MATCHABLE = 0.25
MATCH_IOU = 0.5


def resize_scale(height: int, width: int, min_size: int, max_size: int) -> float:
    """The factor torchvision's GeneralizedRCNNTransform scales an image by."""
    return min(min_size / min(height, width), max_size / max(height, width))


def training_boxes(rows: Sequence) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """``(N, 2)`` widths/heights, ``(N,)`` class indices of every object, and the first image's HxW."""
    cols = rows.select_columns(["objects", "height", "width"]) if hasattr(rows, "select_columns") else rows
    wh, cls, size = [], [], None
    for r in cols:
        size = size or (int(r["height"]), int(r["width"]))
        for o in r["objects"] or []:
            b = o["bbox"]
            wh.append((b[2] - b[0], b[3] - b[1]))
            cls.append(o["category"])
    return np.asarray(wh, np.float64).reshape(-1, 2), np.asarray(cls, np.int64), size or (0, 0)


def fit_ratios(wh: np.ndarray, classes: np.ndarray) -> list[float]:
    """Three aspect ratios (height / width): the median of each of the three most frequent classes;
    with fewer classes, geometric midpoints of the widest gap (or x/÷ sqrt 2 around one median)."""
    counts = np.bincount(classes)
    top = np.argsort(-counts)[: min(3, int((counts > 0).sum()))]
    r = sorted(float(np.median(wh[classes == c, 1] / wh[classes == c, 0])) for c in top)
    if len(r) == 1:
        r = [r[0] / np.sqrt(2), r[0], r[0] * np.sqrt(2)]
    while len(r) < 3:
        gap = int(np.argmax(np.diff(np.log(r))))
        r.insert(gap + 1, float(np.sqrt(r[gap] * r[gap + 1])))
    return [round(float(x), 3) for x in r]


def fit_anchors(wh: np.ndarray, classes: np.ndarray, strides: Sequence[int]) -> tuple[list[list[float]], list[float]]:
    """Two sizes per feature map, ``c * stride`` and ``c * stride * sqrt(2)``, and :func:`fit_ratios`.

    ``c`` is at least 1.5 (below about 1.4 strides no anchor reaches IoU 0.5 a quarter stride off)
    and grows so the finest map starts at the 2nd percentile of the boxes' sqrt(w*h).
    """
    ok = (wh > 0).all(axis=1)
    wh, classes = wh[ok], classes[ok]
    if not len(wh):
        raise ValueError("no training boxes to fit anchors to")
    lo = float(np.percentile(np.sqrt(wh.prod(axis=1)), 2))
    c = max(1.5, lo / strides[0])
    sizes = [[round(float(c * st), 2), round(float(c * st * np.sqrt(2)), 2)] for st in strides]
    return sizes, fit_ratios(wh, classes)


def _anchor_boxes(sizes: Sequence[Sequence[float]], ratios: Sequence[float], strides: Sequence[int]) -> np.ndarray:
    """(A, 3): width, height and stride of every anchor shape (torchvision: h = s*sqrt(r), w = s/sqrt(r))."""
    out = [(s / np.sqrt(r), s * np.sqrt(r), st) for level, st in zip(sizes, strides) for s in level for r in ratios]
    return np.asarray(out, np.float64)


def matchable(wh: np.ndarray, sizes: Sequence[float], ratios: Sequence[float], strides: Sequence[int]) -> np.ndarray:
    """Per box: does some anchor reach IoU >= 0.5 with it, centres a quarter stride apart in x and y?"""
    a = _anchor_boxes(sizes, ratios, strides)
    off = a[None, :, 2] / 4
    w, h = wh[:, None, 0], wh[:, None, 1]
    aw, ah = a[None, :, 0], a[None, :, 1]
    iw = np.clip(np.minimum(w / 2, off + aw / 2) - np.maximum(-w / 2, off - aw / 2), 0, None)
    ih = np.clip(np.minimum(h / 2, off + ah / 2) - np.maximum(-h / 2, off - ah / 2), 0, None)
    inter = iw * ih
    iou = inter / (w * h + aw * ah - inter)
    return (iou >= MATCH_IOU).any(axis=1)


def matchable_share(wh: np.ndarray, classes: np.ndarray, sizes, ratios, strides) -> dict[str, float]:
    """Share of each present class's boxes that some anchor can match (see :func:`matchable`)."""
    hit = matchable(wh, sizes, ratios, strides) if len(wh) else np.zeros(0, bool)
    return {CLASS_NAMES[c]: float(hit[classes == c].mean()) for c in np.unique(classes)}


def plan_anchors(rows: Sequence, arch: str, min_size: int | None, max_size: int | None, derive: bool
                 ) -> dict[str, Any]:
    """The resize and anchors a run trains with, checked against the training boxes.

    ``derive`` fits the anchors to the boxes (a model trained from scratch); otherwise the
    architecture's own are checked. With no resize given, the architecture's default is used
    unless it makes a class unmatchable, then the images' own size. Raises ValueError naming the
    class, its share and its median size when a class stays unmatchable.
    """
    from streetsynth.models.detector import DEFAULT_SIZES, FEATURE_STRIDES, anchor_shapes, build_maskrcnn

    wh, classes, (h, w) = training_boxes(rows)
    if not len(wh):
        return {"min_size": min_size, "max_size": max_size, "anchor_sizes": None, "aspect_ratios": None}
    strides = FEATURE_STRIDES[arch]
    default_sizes, default_ratios = anchor_shapes(build_maskrcnn(arch, num_classes=2, min_size=64, max_size=64))
    dmin, dmax = DEFAULT_SIZES[arch]
    candidates = [(min_size or dmin, max_size or dmax)]
    if min_size is None and max_size is None:
        candidates.append((min(h, w), max(h, w)))
    for cmin, cmax in candidates:
        scaled = wh * resize_scale(h, w, cmin, cmax)
        sizes, ratios = fit_anchors(scaled, classes, strides) if derive else (default_sizes, default_ratios)
        share = matchable_share(scaled, classes, sizes, ratios, strides)
        worst = min(share, key=share.get)
        if share[worst] >= MIN_MATCHABLE:
            return {"min_size": cmin, "max_size": cmax, "anchor_sizes": sizes if derive else None,
                    "aspect_ratios": ratios if derive else None, "matchable": share}
    med = np.median(scaled[classes == CLASS_NAMES.index(worst)], axis=0)
    raise ValueError(f"at resize --min-size {cmin} --max-size {cmax}, only {100 * share[worst]:.0f}% of the "
                     f"{worst} boxes (median {med[0]:.1f}x{med[1]:.1f} px WxH) can be matched by any anchor "
                     f"(IoU >= {MATCH_IOU}); train at a larger --min-size/--max-size"
                     + ("" if derive else " or from scratch (no --weights) so the anchors fit the boxes"))
