"""One container for labelled instances, spoken by the builders, the labeler and training.

A row stores instances as ``objects`` (a list of records with box, class, id, score, source)
plus one ``instance_mask`` image whose pixel values are instance ids (0 = background). In memory
they are an :class:`Instances`: stacked boolean masks and aligned arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .codec import decode_unchanged, encode
from .schema import CLASS_NAMES, INSTANCE_SCORES


@dataclass
class Instances:
    """N instances of one image of size (height, width).

    ``boxes`` are xyxy pixels (float32). ``masks`` is (N, H, W) bool or None where only boxes
    are known. ``ids`` are positive and unique; they are the values written into the id mask.
    ``extra`` holds the labeler's other per-instance scores by name (schema.INSTANCE_SCORES), float32
    arrays aligned with the boxes, NaN where not measured; a name left out is NaN for every instance.
    """

    boxes: np.ndarray
    classes: np.ndarray
    height: int
    width: int
    masks: np.ndarray | None = None
    scores: np.ndarray | None = None
    ids: np.ndarray | None = None
    sources: list[str] = field(default_factory=list)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        n = len(self.boxes)
        self.classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)
        self.scores = np.ones(n, np.float32) if self.scores is None else np.asarray(self.scores, np.float32).reshape(-1)
        self.ids = np.arange(1, n + 1, dtype=np.int32) if self.ids is None else np.asarray(self.ids, np.int32).reshape(-1)
        if not self.sources:
            self.sources = [""] * n
        for name, arr in (("classes", self.classes), ("scores", self.scores), ("ids", self.ids), ("sources", self.sources)):
            if len(arr) != n:
                raise ValueError(f"Instances: {name} has {len(arr)} entries for {n} boxes")
        if n and (self.classes.min() < 0 or self.classes.max() >= len(CLASS_NAMES)):
            raise ValueError(f"Instances: class index out of range 0..{len(CLASS_NAMES) - 1}: {self.classes}")
        if n and (self.ids.min() < 1 or len(np.unique(self.ids)) != n):
            raise ValueError(f"Instances: ids must be positive and unique, got {self.ids}")
        unknown = set(self.extra) - set(INSTANCE_SCORES)
        if unknown:
            raise ValueError(f"Instances: unknown scores {sorted(unknown)}; known: {', '.join(INSTANCE_SCORES)}")
        self.extra = {k: np.full(n, np.nan, np.float32) if self.extra.get(k) is None
                      else np.asarray(self.extra[k], np.float32).reshape(-1) for k in INSTANCE_SCORES}
        for name, arr in self.extra.items():
            if len(arr) != n:
                raise ValueError(f"Instances: {name} has {len(arr)} entries for {n} boxes")
        if self.masks is not None:
            self.masks = np.asarray(self.masks, dtype=bool)
            if self.masks.shape != (n, self.height, self.width):
                raise ValueError(f"Instances: masks shape {self.masks.shape} != {(n, self.height, self.width)}")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls, height: int, width: int, with_masks: bool = True) -> "Instances":
        masks = np.zeros((0, height, width), bool) if with_masks else None
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), height, width, masks=masks)

    @classmethod
    def from_masks(cls, masks: np.ndarray, classes, scores=None, ids=None, sources=None, extra=None
                   ) -> "Instances":
        """Instances whose boxes are the tight boxes of their masks (empty masks are dropped)."""
        masks = np.asarray(masks, dtype=bool)
        n, h, w = masks.shape
        keep = masks.any(axis=(1, 2))
        classes = np.asarray(classes).reshape(-1)[keep]
        scores = None if scores is None else np.asarray(scores).reshape(-1)[keep]
        ids = None if ids is None else np.asarray(ids).reshape(-1)[keep]
        srcs = [s for s, k in zip(sources, keep) if k] if sources else []
        extra = {k: np.asarray(v, np.float32).reshape(-1)[keep] for k, v in (extra or {}).items() if v is not None}
        masks = masks[keep]
        boxes = boxes_from_masks(masks)
        return cls(boxes, classes, h, w, masks=masks, scores=scores, ids=ids, sources=srcs, extra=extra)

    def select(self, index) -> "Instances":
        """A subset by boolean mask or integer index array."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return Instances(
            self.boxes[index],
            self.classes[index],
            self.height,
            self.width,
            masks=None if self.masks is None else self.masks[index],
            scores=self.scores[index],
            ids=self.ids[index],
            sources=[self.sources[i] for i in index],
            extra={k: v[index] for k, v in self.extra.items()},
        )

    def id_mask(self) -> np.ndarray:
        """(H, W) uint16 image of instance ids; where masks overlap, the smaller instance wins."""
        out = np.zeros((self.height, self.width), np.uint16)
        if self.masks is None or not len(self):
            return out
        order = np.argsort(-self.masks.reshape(len(self), -1).sum(axis=1), kind="stable")
        for i in order:
            out[self.masks[i]] = self.ids[i]
        return out

    def to_row(self) -> dict[str, Any]:
        """The row fields ``objects`` and ``instance_mask`` (PNG bytes, or None without masks)."""
        objects = [
            {
                "bbox": [float(v) for v in box],
                "category": int(c),
                "instance_id": int(i),
                "score": float(s),
                "source": src,
                **{k: None if np.isnan(v[j]) else float(v[j]) for k, v in self.extra.items()},
            }
            for j, (box, c, i, s, src) in enumerate(zip(self.boxes, self.classes, self.ids, self.scores, self.sources))
        ]
        mask = None if self.masks is None else {"bytes": encode_id_mask(self.id_mask()), "path": None}
        return {"objects": objects, "instance_mask": mask}

    @classmethod
    def from_row(cls, row: dict[str, Any], height: int | None = None, width: int | None = None) -> "Instances":
        """Instances from a row's ``objects`` and ``instance_mask`` (decoded PIL or raw bytes)."""
        height = int(row.get("height") or height)
        width = int(row.get("width") or width)
        objects = row["objects"]
        if isinstance(objects, dict):  # columnar form, as datasets returns with some formats
            keys = list(objects)
            objects = [dict(zip(keys, vals)) for vals in zip(*objects.values())] if keys else []
        boxes = [o["bbox"] for o in objects]
        classes = [o["category"] for o in objects]
        scores = [o.get("score", 1.0) for o in objects]
        ids = [o["instance_id"] for o in objects]
        sources = [o.get("source") or "" for o in objects]
        extra = {k: [np.nan if o.get(k) is None else o[k] for o in objects] for k in INSTANCE_SCORES}
        masks = None
        id_img = decode_id_mask(row.get("instance_mask"))
        if id_img is not None:
            masks = np.asarray(ids, np.int64)[:, None, None] == id_img[None].astype(np.int64)
        return cls(np.asarray(boxes, np.float32).reshape(-1, 4), classes, height, width,
                   masks=masks, scores=scores, ids=ids, sources=sources, extra=extra)


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """Tight xyxy boxes of (N, H, W) boolean masks; the max corner is exclusive, so a box spans whole
    pixels. An empty mask gets an all-zero box. NumPy only: the builder's workers need no torch."""
    masks = np.asarray(masks, bool)
    n, h, w = masks.shape
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    boxes = np.stack([cols.argmax(axis=1), rows.argmax(axis=1),
                      w - cols[:, ::-1].argmax(axis=1), h - rows[:, ::-1].argmax(axis=1)], axis=1).astype(np.float32)
    boxes[~rows.any(axis=1)] = 0.0
    return boxes.reshape(n, 4)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of xyxy boxes ``a`` (N, 4) and ``b`` (M, 4); 0 where the union is empty."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    wh = np.clip(np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0).astype(np.float32)


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def encode_id_mask(id_mask: np.ndarray) -> bytes:
    """Lossless 16-bit PNG of an instance-id image."""
    return encode(id_mask.astype(np.uint16), "png")


def decode_id_mask(value: Any) -> np.ndarray | None:
    """An instance-id image as uint16 from a decoded image (PIL, as datasets gives it), PNG bytes,
    a ``{"bytes": ..., "path": ...}`` dict, or None."""
    if value is None:
        return None
    if isinstance(value, dict):
        if value.get("bytes") is None and value.get("path") is None:
            return None
        value = value.get("bytes") or Path(value["path"]).read_bytes()
    if isinstance(value, (bytes, bytearray)):
        value = decode_unchanged(bytes(value), "instance mask")
    return np.asarray(value).astype(np.uint16)
