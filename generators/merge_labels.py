"""Ground truth where we have it: merge the source's objects with the labeler's on an outpainted image.

An outpainted canvas has a *known* region (the source's real pixels) and an *invented* one. In the
known region the source's ground truth is exact, so it is kept as it is; the labeler's
pseudo-labels are used only in the invented region. An object that crosses the boundary is seen by
both: the carried part (ground truth) and the labeler's mask of the same object become one instance.

Every merged object records where it came from in ``Instances.sources``: ``ground-truth``, the
labeler's own source string, or ``ground-truth+<labeler source>`` for a joined object. Labeler
instances keep their scores (detector score, SAM's); a joined object keeps the labeler's SAM scores
and gets ``gt_iou``: the IoU, inside the known region, of the labeler's mask and the ground truth's.
"""

from __future__ import annotations

import numpy as np

from streetsynth.instances import Instances, boxes_from_masks

GROUND_TRUTH = "ground-truth"
#: A labeler instance's known-region pixels must lie this much inside one ground-truth object
#: (or, for a box-only object, its box) to be joined with it.
JOIN_OVERLAP = 0.5
#: Invented-region parts smaller than this (pixels) are dropped as slivers of known-region detections.
MIN_INVENTED_PIXELS = 16


def _box_mask(box: np.ndarray, height: int, width: int) -> np.ndarray:
    m = np.zeros((height, width), bool)
    x0, y0, x1, y1 = np.round(box).astype(int)
    m[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    return m


def _match(part: np.ndarray, cls: int, truth: Instances, known: np.ndarray) -> int | None:
    """The ground-truth object of class ``cls`` holding most of ``part`` (known-region pixels), if enough."""
    area = int(part.sum())
    if area == 0:
        return None
    best, best_share = None, JOIN_OVERLAP
    for j in np.flatnonzero(truth.classes == cls):
        region = truth.masks[j] if truth.masks is not None and truth.masks[j].any() else \
            _box_mask(truth.boxes[j], truth.height, truth.width) & known
        share = int((part & region).sum()) / area
        if share >= best_share:
            best, best_share = int(j), share
    return best


def merge_labels(truth: Instances, labelled: Instances, known: np.ndarray, labeler: str = "maskrcnn+sam"
                 ) -> Instances:
    """Merge the source's ``truth`` (carried onto the canvas) with the labeler's ``labelled`` instances.

    ``known`` is the (H, W) bool mask of the source's real pixels. Ground-truth objects are kept as
    they are inside ``known`` (box-only ones stay box-only unless a labeler mask joins them);
    labeler instances contribute only their pixels outside ``known``; a labeler instance whose
    known-region part lies inside a ground-truth object of its class extends that object instead.
    Returns Instances with masks, ids 1..N, ground truth first, scores and ``extra`` as the module says.
    """
    known = np.asarray(known, bool)
    h, w = known.shape
    if (truth.height, truth.width) != (h, w) or (labelled.height, labelled.width) != (h, w):
        raise ValueError(f"merge_labels: sizes differ: known {h}x{w}, truth {truth.height}x{truth.width}, "
                         f"labelled {labelled.height}x{labelled.width}")
    n = len(truth)
    gt_masks = np.zeros((n, h, w), bool) if truth.masks is None else truth.masks & known
    masks = list(gt_masks)
    classes = list(truth.classes)
    scores = [1.0] * n
    sources = [GROUND_TRUTH] * n
    extra = {k: list(v) for k, v in truth.extra.items()}
    joined: set[int] = set()
    lab_masks = labelled.masks if labelled.masks is not None else np.zeros((len(labelled), h, w), bool)
    for k in range(len(labelled)):
        invented = lab_masks[k] & ~known
        if invented.sum() < MIN_INVENTED_PIXELS:
            continue
        src = labelled.sources[k] or labeler
        j = _match(lab_masks[k] & known, int(labelled.classes[k]), truth, known)
        if j is not None and j not in joined:
            carried = gt_masks[j] if gt_masks[j].any() else lab_masks[k] & known & _box_mask(truth.boxes[j], h, w)
            masks[j] = carried | invented
            sources[j] = f"{GROUND_TRUTH}+{src}"
            joined.add(j)
            for name in ("sam_iou", "sam_stability"):
                extra[name][j] = labelled.extra[name][k]
            extra["gt_iou"][j] = _iou(lab_masks[k] & known, carried) if gt_masks[j].any() else np.nan
            continue
        masks.append(invented)
        classes.append(int(labelled.classes[k]))
        scores.append(float(labelled.scores[k]))
        sources.append(src)
        for name, values in extra.items():
            values.append(labelled.extra[name][k])
    stack = np.stack(masks) if masks else np.zeros((0, h, w), bool)
    has = stack.reshape(len(stack), -1).any(axis=1)
    boxes = np.zeros((len(stack), 4), np.float32)
    boxes[has] = boxes_from_masks(stack[has])
    if n:
        # A box-only ground-truth object keeps its (known-region) box and stays without mask pixels.
        box_only = ~has[:n]
        boxes[:n][box_only] = truth.boxes[box_only]
    return Instances(boxes, classes, h, w, masks=stack, scores=scores, sources=sources, extra=extra)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else np.nan
