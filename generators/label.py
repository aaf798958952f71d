"""Instance labels for generated scenes: Mask R-CNN finds the objects, Segment Anything draws them.

Mask R-CNN gives classes and coarse masks; SAM gives sharp masks but no classes. We keep a SAM mask
when at least ``keep_overlap`` of it lies inside one detection's mask and give it that detection's
class; a kept mask lying at least ``merge_inside`` inside a bigger kept mask is merged into it, and
the kept masks of one detection are unioned, so each object ends with one mask.

SAM runs in one of two modes: ``"box"`` prompts SamPredictor with each detection's box (default);
``"auto"`` runs SamAutomaticMaskGenerator over a grid of points. A box-prompted mask is cut to its
box (a few pixels of margin): SAM's pixels far from the box are never the boxed object. The rules are pure functions over
mask stacks, box-first: each mask's box and area are found once, pairs whose box intersection
cannot reach a threshold are skipped, and pixels are counted only inside box intersections.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import torch

from streetsynth.instances import Instances

SOURCE = "maskrcnn+sam"
MODES = ("box", "auto")
#: Float32 entries per operand buffer in the overlap products (64 MiB), whatever the image size.
CHUNK_BUDGET = 1 << 24
#: Pixels a box-prompted SAM mask may reach beyond its box (boxes are drawn tight; SAM's edge is soft).
BOX_MARGIN = 4


def intersections(a: np.ndarray, b: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """``(Na, Nb)`` pixel counts of ``a[i] & b[j]`` for boolean stacks (N, H, W), as a matrix product.

    The dense reference for the box-first merge: flattened masks multiplied chunk of pixels by
    chunk of pixels (float32 is exact for counts below 2**24 per chunk), summed in int64.
    """
    na, nb = len(a), len(b)
    out = np.zeros((na, nb), np.int64)
    if na == 0 or nb == 0:
        return out
    chunk = chunk or min(max(CHUNK_BUDGET // max(na, nb), 1 << 12), 1 << 24)
    fa = torch.from_numpy(np.ascontiguousarray(a).reshape(na, -1))
    fb = torch.from_numpy(np.ascontiguousarray(b).reshape(nb, -1))
    for start in range(0, fa.shape[1], chunk):
        xa = fa[:, start:start + chunk].to(torch.float32)
        xb = fb[:, start:start + chunk].to(torch.float32)
        out += (xa @ xb.T).round().to(torch.int64).numpy()
    return out


def boxes_and_areas(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(boxes (N, 4) as y0, x0, y1, x1 half-open, areas (N,))`` of boolean masks; empty masks get an empty box.

    Row and column extents come from two OR reductions over the stack; each area is counted
    inside its mask's box only.
    """
    n = len(masks)
    if n == 0:
        return np.zeros((0, 4), np.int64), np.zeros(0, np.int64)
    rows, cols = masks.any(axis=2), np.logical_or.reduce(masks, axis=1)
    h, w = rows.shape[1], cols.shape[1]
    boxes = np.stack([rows.argmax(axis=1), cols.argmax(axis=1),
                      h - rows[:, ::-1].argmax(axis=1), w - cols[:, ::-1].argmax(axis=1)], axis=1).astype(np.int64)
    boxes[~rows.any(axis=1)] = 0
    areas = np.array([np.count_nonzero(m[y0:y1, x0:x1]) for m, (y0, x0, y1, x1) in zip(masks, boxes)], np.int64)
    return boxes, areas


def _box_overlap(ba: np.ndarray, bb: np.ndarray) -> np.ndarray:
    """``(Na, Nb, 4)`` intersection boxes and, via :func:`_box_area`, their pixel areas."""
    lo = np.maximum(ba[:, None, :2], bb[None, :, :2])
    hi = np.minimum(ba[:, None, 2:], bb[None, :, 2:])
    return np.concatenate([lo, np.maximum(hi, lo)], axis=2)


def _box_area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def inside_fraction_boxed(a: np.ndarray, b: np.ndarray, at_least: float, pairs: np.ndarray | None = None,
                          a_boxes=None, b_boxes=None, a_index=None, b_index=None) -> np.ndarray:
    """``(Na, Nb)`` share of ``a[i]``'s area inside ``b[j]``, exact wherever it can reach ``at_least``.

    A pair whose box intersection holds less than ``at_least`` of ``a[i]``'s area cannot reach
    it and is left at 0 without touching pixels (so is any pair outside ``pairs``, an optional
    (Na, Nb) bool filter); the others are counted inside their box intersection only.
    ``a_index`` / ``b_index`` pick the masks of a stack without copying it (boxes then given for them).
    """
    a_index = np.arange(len(a)) if a_index is None else a_index
    b_index = np.arange(len(b)) if b_index is None else b_index
    ba, area = a_boxes if a_boxes is not None else boxes_and_areas(a)
    bb, _ = b_boxes if b_boxes is not None else boxes_and_areas(b)
    denom = np.maximum(area, 1)[:, None]
    frac = np.zeros((len(ba), len(bb)))
    if len(ba) == 0 or len(bb) == 0:
        return frac
    inter_box = _box_overlap(ba, bb)
    box_area = _box_area(inter_box)
    todo = (box_area / denom >= at_least) & (box_area > 0)
    if pairs is not None:
        todo &= pairs
    for i, j in zip(*np.nonzero(todo)):
        y0, x0, y1, x1 = inter_box[i, j]
        frac[i, j] = np.count_nonzero(a[a_index[i], y0:y1, x0:x1] & b[b_index[j], y0:y1, x0:x1])
    return frac / denom


def inside_fraction(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(Na, Nb)``: the share of mask ``a[i]``'s own area lying inside ``b[j]`` (0 for empty ``a[i]``)."""
    return inside_fraction_boxed(a, b, 0.0)


def assign_to_detections(sam_masks: np.ndarray, det_masks: np.ndarray, keep_overlap: float = 0.9,
                         sam_boxes=None) -> np.ndarray:
    """Index of the detection each SAM mask belongs to, or -1 where none holds ``keep_overlap`` of it.

    A SAM mask of the road that touches a car has a tiny share of its area inside the car: dropped.
    Pairs whose boxes cannot hold ``keep_overlap`` of the SAM mask are never counted.
    """
    if len(sam_masks) == 0 or len(det_masks) == 0:
        return np.full(len(sam_masks), -1, np.int64)
    frac = inside_fraction_boxed(sam_masks, det_masks, keep_overlap, a_boxes=sam_boxes)
    best = frac.argmax(axis=1)
    ok = frac[np.arange(len(best)), best] >= keep_overlap
    return np.where(ok, best, -1)


def nest_parents(masks: np.ndarray, merge_inside: float = 0.99, boxes=None, index=None) -> np.ndarray:
    """For each mask, the index of the outermost bigger mask it lies ``merge_inside`` inside (itself if none).

    A mask's parent is the biggest mask that holds it; equal-area masks merge into the lower
    index, so two copies of one mask become one. Chains (part of a part) resolve to their root.
    Only pairs (smaller, bigger) whose boxes can hold ``merge_inside`` of the smaller are counted.
    ``index`` (with ``boxes`` for it) picks the masks of a larger stack without copying.
    """
    n = len(masks) if index is None else len(index)
    if n == 0:
        return np.zeros(0, np.int64)
    boxes = boxes if boxes is not None else boxes_and_areas(masks)
    area = boxes[1]
    idx = np.arange(n)
    bigger = (area[None, :] > area[:, None]) | ((area[None, :] == area[:, None]) & (idx[None, :] < idx[:, None]))
    frac = inside_fraction_boxed(masks, masks, merge_inside, bigger, boxes, boxes, index, index)
    holds = (frac >= merge_inside) & bigger & (area[:, None] > 0)
    size = np.where(holds, area[None, :], -1)
    parent = np.where(holds.any(axis=1), size.argmax(axis=1), idx)
    for _ in range(max(1, int(np.ceil(np.log2(n))) + 1)):  # pointer jumping: every chain reaches its root
        parent = parent[parent]
    return parent


def union_groups(masks: np.ndarray, groups: np.ndarray, boxes: np.ndarray | None = None,
                 index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(unique group labels, (G, H, W) union of the masks in each group)``; each member ORed inside its box.

    ``index`` (with ``boxes`` for it) picks the members from a larger stack without copying.
    """
    index = np.arange(len(masks)) if index is None else index
    if len(index) == 0:
        return np.zeros(0, groups.dtype), masks[:0]
    boxes = boxes if boxes is not None else boxes_and_areas(masks)[0]
    labels, slot = np.unique(groups, return_inverse=True)
    out = np.zeros((len(labels), *masks.shape[1:]), bool)
    for k, g, (y0, x0, y1, x1) in zip(index, slot.reshape(-1), boxes):
        out[g, y0:y1, x0:x1] |= masks[k, y0:y1, x0:x1]
    return labels, out


def combine(sam_masks: np.ndarray, det_masks: np.ndarray, det_classes: np.ndarray, det_scores: np.ndarray,
            keep_overlap: float = 0.9, merge_inside: float = 0.99, sam_scores: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SAM masks classified and merged against detections: ``(masks (K, H, W), classes, scores)``.

    With ``sam_scores`` ((M, S): S scores per SAM mask) a fourth array (K, S) is returned: per merged
    instance, the lowest score of the SAM masks unioned into it (a weak part makes a weak instance).

    1. keep SAM masks with ``keep_overlap`` of their area inside one detection's mask;
    2. a kept mask ``merge_inside`` inside a bigger kept one joins it (and its detection);
    3. the kept masks of one detection are unioned into one mask with its class and score.

    Each SAM mask's box and area are computed once; overlaps are counted only inside box
    intersections that can reach the thresholds.
    """
    sam_masks = np.asarray(sam_masks, bool)
    det_classes = np.asarray(det_classes, np.int64).reshape(-1)
    det_scores = np.asarray(det_scores, np.float32).reshape(-1)
    h, w = sam_masks.shape[1:] if sam_masks.ndim == 3 else np.asarray(det_masks).shape[1:]
    empty = (np.zeros((0, h, w), bool), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if sam_scores is not None:
        sam_scores = np.asarray(sam_scores, np.float32)
        sam_scores = sam_scores[:, None] if sam_scores.ndim == 1 else sam_scores
        empty += (np.zeros((0, sam_scores.shape[1]), np.float32),)
    boxes, areas = boxes_and_areas(sam_masks)
    owner = assign_to_detections(sam_masks, np.asarray(det_masks, bool), keep_overlap, (boxes, areas))
    kept = owner >= 0
    if not kept.any():
        return empty
    index = np.flatnonzero(kept)
    owner, boxes, areas = owner[kept], boxes[kept], areas[kept]
    owner = owner[nest_parents(sam_masks, merge_inside, (boxes, areas), index)]
    dets, merged = union_groups(sam_masks, owner, boxes, index)
    if sam_scores is None:
        return merged, det_classes[dets], det_scores[dets]
    slot = np.searchsorted(dets, owner)
    lowest = np.full((len(dets), sam_scores.shape[1]), np.inf, np.float32)
    np.minimum.at(lowest, slot, sam_scores[index])
    return merged, det_classes[dets], det_scores[dets], lowest


def clip_to_boxes(masks: np.ndarray, boxes_xyxy: np.ndarray, margin: int = BOX_MARGIN) -> np.ndarray:
    """``masks`` (N, H, W) cut to their boxes (x0, y0, x1, y1 pixels) grown by ``margin`` pixels.

    A mask SAM draws from a box prompt belongs inside that box: pixels far outside it are another
    object or speckle (a weak SAM scatters them over the whole image). Rows and columns are tested
    once per box and broadcast, so no pixel loop runs.
    """
    masks = np.asarray(masks, bool)
    n, h, w = masks.shape
    b = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    lo = np.floor(b[:, :2]).astype(np.int64) - margin
    hi = np.ceil(b[:, 2:]).astype(np.int64) + margin
    rows = (np.arange(h)[None, :] >= lo[:, 1:2]) & (np.arange(h)[None, :] < hi[:, 1:2])
    cols = (np.arange(w)[None, :] >= lo[:, 0:1]) & (np.arange(w)[None, :] < hi[:, 0:1])
    return masks & rows[:, :, None] & cols[:, None, :]


#: SAM's stability score: IoU of a mask's logits thresholded at ``mask_threshold`` -/+ this offset
#: (segment-anything's ``SamAutomaticMaskGenerator`` default).
STABILITY_OFFSET = 1.0


@torch.no_grad()
def sam_predict_boxes(predictor, image: np.ndarray, boxes_xyxy: np.ndarray, margin: int | None = BOX_MARGIN
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(masks (N, H, W) bool, predicted IoU (N,), stability score (N,))`` of SAM for ``N`` boxes
    (x0, y0, x1, y1 pixels) on one RGB uint8 image.

    The image is embedded once and every box is decoded in one batched ``predict_torch`` call
    (one mask per box, ``multimask_output=False``); ``predictor`` is a ``SamPredictor``. Each mask
    is cut to its box grown by ``margin`` pixels (:func:`clip_to_boxes`; ``None`` keeps SAM's raw
    masks), so it may come back empty: callers count that and never keep speckle. The scores are
    SAM's own, of the uncut mask: its IoU prediction head and its stability score (STABILITY_OFFSET).
    """
    from segment_anything.utils.amg import calculate_stability_score

    h, w = image.shape[:2]
    boxes = torch.as_tensor(np.asarray(boxes_xyxy, np.float32).reshape(-1, 4))
    if len(boxes) == 0:
        return np.zeros((0, h, w), bool), np.zeros(0, np.float32), np.zeros(0, np.float32)
    predictor.set_image(image)
    try:
        tb = predictor.transform.apply_boxes_torch(boxes, (h, w)).to(predictor.device)
        logits, iou, _ = predictor.predict_torch(None, None, boxes=tb, multimask_output=False, return_logits=True)
    finally:
        predictor.reset_image()
    threshold = predictor.model.mask_threshold
    stability = calculate_stability_score(logits[:, 0], threshold, STABILITY_OFFSET).float().cpu().numpy()
    masks = (logits[:, 0] > threshold).cpu().numpy()
    masks = masks if margin is None else clip_to_boxes(masks, boxes.numpy(), margin)
    return masks, iou[:, 0].float().cpu().numpy(), stability.astype(np.float32)


def sam_masks_for_boxes(predictor, image: np.ndarray, boxes_xyxy: np.ndarray,
                        margin: int | None = BOX_MARGIN) -> np.ndarray:
    """``(N, H, W)`` bool SAM masks for ``N`` boxes: :func:`sam_predict_boxes` without the scores."""
    return sam_predict_boxes(predictor, image, boxes_xyxy, margin)[0]


@dataclass
class LabelSettings:
    """How the labeler runs; recorded with every labelled row."""

    mode: str = "box"  # SAM mode: "box" (prompt with each detection's box) or "auto" (grid of points)
    score_threshold: float = 0.5  # keep detections of our classes at or above this score
    keep_overlap: float = 0.9  # share of a SAM mask's area that must lie inside a detection's mask
    merge_inside: float = 0.99  # share of a mask's area inside a bigger kept mask that merges it in
    mask_threshold: float = 0.5  # Mask R-CNN mask probability that counts as inside
    points_per_side: int = 32  # auto mode: grid of points per image side
    pred_iou_thresh: float = 0.88  # auto mode: SAM's predicted-IoU filter
    stability_score_thresh: float = 0.95  # auto mode: SAM's stability filter
    points_per_batch: int = 64  # auto mode: grid points decoded per batched SAM call
    box_margin: int = BOX_MARGIN  # box mode: pixels a SAM mask may reach beyond its prompt box

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown SAM mode {self.mode!r}; known: {', '.join(MODES)}")
        for name in ("score_threshold", "keep_overlap", "merge_inside", "mask_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        for name in ("points_per_side", "points_per_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.box_margin < 0:
            raise ValueError(f"box_margin must be >= 0, got {self.box_margin}")


class Labeler:
    """Image -> :class:`Instances` of our classes, from an injected detector and SAM."""

    def __init__(self, detector: torch.nn.Module, class_map: dict[int, int], sam, settings: LabelSettings,
                 models: dict[str, str] | None = None, device: str = "cpu") -> None:
        from segment_anything import SamPredictor

        self.detector = detector.eval().to(device)
        self.sam = sam.eval().to(device)
        self.settings = settings
        self.device = device
        self.models = models or {}
        n = max(class_map, default=0) + 1
        self._lut = np.full(max(n, 1), -1, np.int64)
        self._lut[list(class_map)] = list(class_map.values())
        self.predictor = SamPredictor(self.sam)
        self._auto = None

    @property
    def description(self) -> str:
        """Compact JSON of the models and settings, stored as the rows' ``labeler`` provenance."""
        return json.dumps({**self.models, **asdict(self.settings)}, sort_keys=True, separators=(",", ":"))

    @torch.no_grad()
    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(boxes, classes, scores, masks)`` of detections of our classes above the score threshold."""
        x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).to(self.device, torch.float32) / 255.0
        out = self.detector([x])[0]
        labels = out["labels"].cpu().numpy()
        scores = out["scores"].cpu().numpy()
        known = labels < len(self._lut)
        classes = np.where(known, self._lut[np.where(known, labels, 0)], -1)
        keep = (classes >= 0) & (scores >= self.settings.score_threshold)
        masks = (out["masks"][:, 0] >= self.settings.mask_threshold).cpu().numpy()
        return out["boxes"].cpu().numpy()[keep], classes[keep], scores[keep], masks[keep]

    @torch.no_grad()
    def segment(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """SAM masks (M, H, W) bool, one per box in box mode (one batched call), every grid mask in auto
        mode, and their (M, 2) SAM scores: predicted IoU and stability score."""
        h, w = image.shape[:2]
        if self.settings.mode == "auto":
            found = self._generator().generate(image)
            masks = np.stack([m["segmentation"] for m in found]).astype(bool) if found else np.zeros((0, h, w), bool)
            return masks, np.array([[m["predicted_iou"], m["stability_score"]] for m in found], np.float32).reshape(-1, 2)
        masks, iou, stability = sam_predict_boxes(self.predictor, image, boxes, self.settings.box_margin)
        return masks, np.stack([iou, stability], axis=1)

    def _generator(self):
        if self._auto is None:
            from segment_anything import SamAutomaticMaskGenerator

            s = self.settings
            self._auto = SamAutomaticMaskGenerator(self.sam, points_per_side=s.points_per_side,
                                                   points_per_batch=s.points_per_batch,
                                                   pred_iou_thresh=s.pred_iou_thresh,
                                                   stability_score_thresh=s.stability_score_thresh)
        return self._auto

    def __call__(self, image) -> Instances:
        """Instances (masks, boxes from masks, classes, detector scores, SAM's predicted IoU and stability
        score as ``extra``, source ``maskrcnn+sam``) of one RGB image."""
        image = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"labeler expects an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        boxes, classes, scores, det_masks = self.detect(image)
        if len(boxes) == 0:
            return Instances.empty(h, w)
        sam_masks, sam_scores = self.segment(image, boxes)
        masks, cls, sc, sam_sc = combine(sam_masks, det_masks, classes, scores, self.settings.keep_overlap,
                                         self.settings.merge_inside, sam_scores)
        if len(masks) == 0:
            return Instances.empty(h, w)
        return Instances.from_masks(masks, cls, scores=sc, sources=[SOURCE] * len(masks),
                                    extra={"sam_iou": sam_sc[:, 0], "sam_stability": sam_sc[:, 1]})


def build_labeler(detector: str = "tiny", sam: str = "tiny", mode: str = "box", score_threshold: float = 0.5,
                  keep_overlap: float = 0.9, merge_inside: float = 0.99, device: str = "cpu",
                  cyclist: bool = False, sign: bool = False, **settings) -> Labeler:
    """A :class:`Labeler` from model specs (see ``streetsynth.models.detector.load_detector`` and
    ``streetsynth.models.sam.load_sam``); extra keyword settings go to :class:`LabelSettings`."""
    from streetsynth.models.detector import load_detector
    from streetsynth.models.sam import load_sam

    cfg = LabelSettings(mode=mode, score_threshold=score_threshold, keep_overlap=keep_overlap,
                        merge_inside=merge_inside, **settings)
    model, class_map, det_desc = load_detector(detector, device=device, cyclist=cyclist, sign=sign)
    sam_model, sam_desc = load_sam(sam, device=device)
    return Labeler(model, class_map, sam_model, cfg, models={"detector": det_desc, "sam": sam_desc}, device=device)
