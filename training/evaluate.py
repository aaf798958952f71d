"""COCO-style box and mask AP with pycocotools, from rows (or Instances) and any predictions.

Ground truth is built in memory as a COCO dataset: category id = CLASS_NAMES index + 1, masks
RLE-encoded with ``pycocotools.mask.encode``. For mask AP, a ground-truth object with no mask
pixels (a box-only label) becomes a crowd region over its box, so a detection there is neither
a hit nor a false positive; for box AP it is a normal object.

Predictions are :class:`Instances` (``scores`` are the confidences) or torchvision detection
outputs (``{"boxes", "labels", "scores", "masks"}`` with (N, 1, H, W) soft masks).

Evaluation streams, as torchvision's detection reference does: each image's ground truth and
predictions go into a :class:`CocoAccumulator` at once, masks thresholded and RLE-encoded, and
nothing else of the image is kept, so memory grows with the number of objects (a few hundred bytes
each), not with pixels. Under accelerate every process evaluates its share of the rows and the
accumulators are gathered on the main process before COCOeval runs.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm.auto import tqdm

from streetsynth import codec
from streetsynth.instances import Instances
from streetsynth.schema import CLASS_NAMES

#: What is measured, by pycocotools iouType.
IOU_TYPES = {"bbox": "box", "segm": "mask"}


def _as_instances(item: Any) -> Instances:
    if isinstance(item, Instances):
        return item
    if isinstance(item, dict) and "objects" in item:
        return Instances.from_row(item)
    raise ValueError(f"ground truth must be rows or Instances, got {type(item).__name__}")


def _rles(masks: np.ndarray | torch.Tensor) -> list[dict]:
    """(N, H, W) bool/uint8 masks -> COCO RLEs with str counts, encoded in one pycocotools call."""
    if isinstance(masks, torch.Tensor):
        masks = masks.to(torch.uint8).cpu().numpy()
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(np.asarray(masks, np.uint8).transpose(1, 2, 0)))
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles


def _xywh(box: np.ndarray) -> list[float]:
    return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]


def _prediction_parts(pred: Any, mask_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, list | None]:
    """boxes, class indices, scores and mask RLEs (None without masks) of one image's predictions."""
    if isinstance(pred, Instances):
        rles = None if pred.masks is None else _rles(pred.masks)
        return pred.boxes, pred.classes, pred.scores, rles
    boxes = torch.as_tensor(pred["boxes"]).detach().float().cpu().numpy().reshape(-1, 4)
    n = len(boxes)
    labels = torch.as_tensor(pred["labels"]).detach().cpu().numpy().reshape(-1).astype(np.int64)
    scores = torch.as_tensor(pred.get("scores", torch.ones(n))).detach().float().cpu().numpy()
    keep = (labels >= 1) & (labels <= len(CLASS_NAMES))
    rles = None
    if pred.get("masks") is not None:
        m = torch.as_tensor(pred["masks"]).detach()
        rles = _rles(m.reshape(n, *m.shape[-2:])[torch.from_numpy(keep).to(m.device)] > mask_threshold)
    return boxes[keep], labels[keep] - 1, scores[keep], rles


class CocoAccumulator:
    """COCO ground truth and results added image by image, masks as RLE: all evaluation keeps.

    ``add`` takes an image id (unique across processes), its ground truth (a row or Instances)
    and its predictions; ``gather`` merges the accumulators of every process; ``summarize``
    runs COCOeval. For mask AP a ground-truth object with no mask pixels (a box-only label) is a
    crowd region over its box, neither a hit nor a false positive; for box AP it is a normal object.
    """

    def __init__(self, mask_threshold: float = 0.5):
        self.mask_threshold = mask_threshold
        self.images: list[dict] = []
        self.gt: list[dict] = []
        self.results: list[dict] = []
        self.with_masks = True

    def add(self, image_id: int, ground_truth: Any, prediction: Any) -> None:
        gt = _as_instances(ground_truth)
        h, w = gt.height, gt.width
        self.images.append({"id": int(image_id), "height": h, "width": w})
        masks = gt.masks if gt.masks is not None else np.zeros((len(gt), h, w), bool)
        boxed = masks.copy()
        empty = ~masks.reshape(len(gt), h * w).any(axis=1)
        for k in np.flatnonzero(empty):
            x0, y0, x1, y1 = np.round(gt.boxes[k]).astype(int)
            boxed[k, max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
        for k, rle in enumerate(_rles(boxed)):
            box = gt.boxes[k]
            self.gt.append({"image_id": int(image_id), "category_id": int(gt.classes[k]) + 1, "bbox": _xywh(box),
                            "box_area": float((box[2] - box[0]) * (box[3] - box[1])), "segmentation": rle,
                            "mask_area": float(boxed[k].sum()), "mask_crowd": int(empty[k])})
        boxes, classes, scores, rles = _prediction_parts(prediction, self.mask_threshold)
        self.with_masks = self.with_masks and rles is not None
        for k in range(len(boxes)):
            res = {"image_id": int(image_id), "category_id": int(classes[k]) + 1, "score": float(scores[k]),
                   "bbox": _xywh(boxes[k])}
            if rles is not None:
                res["segmentation"] = rles[k]
            self.results.append(res)

    def gather(self) -> None:
        """Merge every process's images, ground truth and results into each (accelerate, gloo/nccl)."""
        from accelerate.utils import gather_object

        parts = gather_object([(self.images, self.gt, self.results, self.with_masks)])
        self.images = [i for p in parts for i in p[0]]
        self.gt = [a for p in parts for a in p[1]]
        self.results = [r for p in parts for r in p[2]]
        self.with_masks = all(p[3] for p in parts)

    def _coco(self, iou_type: str) -> COCO:
        anns = []
        for a in self.gt:
            ann = {"id": len(anns) + 1, "image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"]}
            if iou_type == "segm":
                ann.update(segmentation=a["segmentation"], area=a["mask_area"], iscrowd=a["mask_crowd"])
            else:
                ann.update(area=a["box_area"], iscrowd=0)
            anns.append(ann)
        coco = COCO()
        coco.dataset = {"images": self.images, "annotations": anns,
                        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASS_NAMES)]}
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return coco

    def summarize(self) -> dict[str, Any]:
        """Box and mask AP (AP, AP50, AP75, per class); mask is None when predictions had no masks."""
        present = {a["category_id"] - 1 for a in self.gt}
        out: dict[str, Any] = {"images": len(self.images), "objects": len(self.gt)}
        for iou_type, name in IOU_TYPES.items():
            if iou_type == "segm" and not self.with_masks:
                out[name] = None
                continue
            if not self.results or not self.gt:
                out[name] = _empty_summary(present)
                continue
            gt = self._coco(iou_type)
            key = "bbox" if iou_type == "bbox" else "segmentation"
            results = [{k: v for k, v in r.items() if k in ("image_id", "category_id", "score", key)}
                       for r in self.results]
            with contextlib.redirect_stdout(io.StringIO()):
                dt = gt.loadRes(results)
                ev = COCOeval(gt, dt, iou_type)
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
            out[name] = _summary(ev)
        return out


def _summary(coco_eval: COCOeval) -> dict[str, Any]:
    stats = coco_eval.stats
    precision = coco_eval.eval["precision"]  # [iou thresholds, recall, class, area, max dets]
    per_class = {}
    for k, name in enumerate(CLASS_NAMES):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        per_class[name] = float(p.mean()) if p.size else None

    def clean(v: float) -> float | None:
        return None if v < 0 else float(v)

    return {"AP": clean(stats[0]), "AP50": clean(stats[1]), "AP75": clean(stats[2]), "per_class": per_class}


def _empty_summary(present: set[int]) -> dict[str, Any]:
    value = 0.0 if present else None
    return {"AP": value, "AP50": value, "AP75": value,
            "per_class": {n: (0.0 if k in present else None) for k, n in enumerate(CLASS_NAMES)}}


def evaluate_predictions(ground_truth: Sequence[Any], predictions: Sequence[Any]) -> dict[str, Any]:
    """Box and mask AP (AP, AP50, AP75, per class) of ``predictions`` against ``ground_truth``.

    Both are aligned lists, one entry per image. Ground truth is rows or Instances; predictions
    are Instances or torchvision output dicts. Mask AP is reported when predictions carry masks.
    A value is None where there is nothing to measure (no ground truth of that class).
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(f"{len(predictions)} predictions for {len(ground_truth)} ground-truth images")
    acc = CocoAccumulator()
    for i, (g, p) in enumerate(zip(ground_truth, predictions)):
        acc.add(i, g, p)
    return acc.summarize()


def _row_image(row: dict[str, Any]) -> torch.Tensor:
    """A row's image as a float CHW tensor in [0, 1]."""
    return torch.from_numpy(codec.to_rgb(row["image"], row.get("id"))).permute(2, 0, 1).float().div_(255.0)


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, rows: Sequence[dict], batch_size: int = 2,
                   device: torch.device | str = "cpu", progress: bool = True, accelerator=None
                   ) -> dict[str, Any] | None:
    """Box and mask AP of ``model`` on dataset rows (e.g. the REAL validation split), streamed.

    Rows are read batch by batch; each batch's predictions become COCO results at once. With an
    ``accelerator`` of several processes, process ``r`` evaluates rows ``r, r + P, ...`` and the
    main process returns the metrics of all rows (the others return None).
    """
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    was_training = model.training
    model.eval()
    acc = CocoAccumulator()
    mine = range(rank, len(rows), world)
    for start in tqdm(range(0, len(mine), batch_size), desc="eval", disable=not progress or rank != 0, leave=False):
        index = list(mine[start:start + batch_size])
        batch = [rows[i] for i in index]
        outputs = model([_row_image(r).to(device) for r in batch])
        for i, row, out in zip(index, batch, outputs):
            acc.add(i, Instances.from_row(row), out)
    model.train(was_training)
    if world > 1:
        acc.gather()
        if rank != 0:
            return None
    return acc.summarize()


def _fmt(v: float | None) -> str:
    return "   -  " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:6.1f}"


def format_table(metrics: dict[str, Any]) -> str:
    """A text table: one line per measure (box, mask), AP columns then per-class AP (x100)."""
    head = f"{'':6} {'AP':>6} {'AP50':>6} {'AP75':>6} " + " ".join(f"{n[:10]:>10}" for n in CLASS_NAMES)
    lines = [head]
    for name in IOU_TYPES.values():
        m = metrics.get(name)
        if m is None:
            continue
        lines.append(f"{name:6} {_fmt(m['AP'])} {_fmt(m['AP50'])} {_fmt(m['AP75'])} "
                     + " ".join(f"{_fmt(m['per_class'][n]):>10}" for n in CLASS_NAMES))
    return "\n".join(lines)


def write_metrics(metrics: dict[str, Any], path: str | Path) -> Path:
    """Write metrics as JSON (atomic) and return the path."""
    from streetsynth.repo import atomic_write_text

    atomic_write_text(path, json.dumps(metrics, indent=2) + "\n")
    return Path(path)
