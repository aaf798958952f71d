"""COCO-style box and mask AP with pycocotools, from rows (or Instances) and any predictions.

Ground truth is built in memory as a COCO dataset: category id = CLASS_NAMES index + 1, masks
RLE-encoded with ``pycocotools.mask.encode``. For mask AP, a ground-truth object with no mask
pixels (a box-only label) becomes a crowd region over its box, so a detection there is neither
a hit nor a false positive; for box AP it is a normal object.

Predictions are :class:`Instances` (``scores`` are the confidences) or torchvision detection
outputs (``{"boxes", "labels", "scores", "masks"}`` with (N, 1, H, W) soft masks).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm.auto import tqdm

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


def prediction_to_instances(pred: Any, height: int, width: int, mask_threshold: float = 0.5) -> Instances:
    """A torchvision output dict (labels = class + 1) or an Instances, as Instances."""
    if isinstance(pred, Instances):
        return pred
    boxes = torch.as_tensor(pred["boxes"]).detach().float().cpu().numpy().reshape(-1, 4)
    n = len(boxes)
    labels = torch.as_tensor(pred["labels"]).detach().cpu().numpy().reshape(-1).astype(np.int64)
    scores = torch.as_tensor(pred.get("scores", torch.ones(n))).detach().float().cpu().numpy()
    keep = (labels >= 1) & (labels <= len(CLASS_NAMES))
    masks = None
    if pred.get("masks") is not None:
        m = torch.as_tensor(pred["masks"]).detach().float().cpu()
        masks = (m.reshape(n, height, width) > mask_threshold).numpy()[keep]
    return Instances(boxes[keep], labels[keep] - 1, height, width, masks=masks, scores=scores[keep])


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _box_mask(box: np.ndarray, height: int, width: int) -> np.ndarray:
    m = np.zeros((height, width), bool)
    x0, y0, x1, y1 = np.round(box).astype(int)
    m[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    return m


def _xywh(box: np.ndarray) -> list[float]:
    return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]


def coco_ground_truth(gts: Sequence[Instances], iou_type: str) -> COCO:
    """A COCO object for ``gts`` (image id = position); see the module notes on box-only objects."""
    images, anns = [], []
    for img_id, inst in enumerate(gts):
        images.append({"id": img_id, "height": inst.height, "width": inst.width})
        for k in range(len(inst)):
            box = inst.boxes[k]
            ann = {"id": len(anns) + 1, "image_id": img_id, "category_id": int(inst.classes[k]) + 1,
                   "bbox": _xywh(box), "iscrowd": 0}
            mask = None if inst.masks is None else inst.masks[k]
            if iou_type == "segm":
                if mask is None or not mask.any():
                    mask = _box_mask(box, inst.height, inst.width)
                    ann["iscrowd"] = 1
                ann["segmentation"] = _rle(mask)
                ann["area"] = float(mask.sum())
            else:
                ann["area"] = float((box[2] - box[0]) * (box[3] - box[1]))
            anns.append(ann)
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns,
                    "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASS_NAMES)]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _coco_results(preds: Sequence[Instances], iou_type: str) -> list[dict]:
    out = []
    for img_id, inst in enumerate(preds):
        for k in range(len(inst)):
            res = {"image_id": img_id, "category_id": int(inst.classes[k]) + 1, "score": float(inst.scores[k])}
            if iou_type == "segm":
                res["segmentation"] = _rle(inst.masks[k])
            else:
                res["bbox"] = _xywh(inst.boxes[k])
            out.append(res)
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


def _empty_summary(gts: Sequence[Instances]) -> dict[str, Any]:
    present = {int(c) for inst in gts for c in inst.classes}
    value = 0.0 if present else None
    return {"AP": value, "AP50": value, "AP75": value,
            "per_class": {n: (0.0 if k in present else None) for k, n in enumerate(CLASS_NAMES)}}


def evaluate_predictions(ground_truth: Sequence[Any], predictions: Sequence[Any]) -> dict[str, Any]:
    """Box and mask AP (AP, AP50, AP75, per class) of ``predictions`` against ``ground_truth``.

    Both are aligned lists, one entry per image. Ground truth is rows or Instances; predictions
    are Instances or torchvision output dicts. Mask AP is reported when predictions carry masks.
    A value is None where there is nothing to measure (no ground truth of that class).
    """
    gts = [_as_instances(g) for g in ground_truth]
    if len(predictions) != len(gts):
        raise ValueError(f"{len(predictions)} predictions for {len(gts)} ground-truth images")
    preds = [prediction_to_instances(p, g.height, g.width) for p, g in zip(predictions, gts)]
    with_masks = bool(preds) and all(p.masks is not None for p in preds)
    out: dict[str, Any] = {"images": len(gts), "objects": int(sum(len(g) for g in gts))}
    for iou_type, name in IOU_TYPES.items():
        if iou_type == "segm" and not with_masks:
            out[name] = None
            continue
        results = _coco_results(preds, iou_type)
        if not results or not any(len(g) for g in gts):
            out[name] = _empty_summary(gts)
            continue
        gt = coco_ground_truth(gts, iou_type)
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes(results)
            ev = COCOeval(gt, dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        out[name] = _summary(ev)
    return out


@torch.no_grad()
def predict(model: torch.nn.Module, images: Iterable[torch.Tensor], batch_size: int = 2,
            device: torch.device | str = "cpu") -> list[dict[str, torch.Tensor]]:
    """Run a torchvision detector in eval mode over float CHW images; outputs moved to the CPU."""
    was_training = model.training
    model.eval()
    outputs: list[dict[str, torch.Tensor]] = []
    batch: list[torch.Tensor] = []

    def flush() -> None:
        for o in model([b.to(device) for b in batch]):
            outputs.append({k: v.detach().cpu() for k, v in o.items()})
        batch.clear()

    for img in images:
        batch.append(img)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    model.train(was_training)
    return outputs


def evaluate_model(model: torch.nn.Module, rows: Sequence[dict], batch_size: int = 2,
                   device: torch.device | str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Box and mask AP of ``model`` on dataset rows (e.g. the REAL validation split)."""
    from .data import row_to_sample

    gts, images = [], []
    for row in tqdm(rows, desc="eval", disable=not progress, leave=False):
        img, _ = row_to_sample(row)
        images.append(img.as_subclass(torch.Tensor).float() / 255.0)
        gts.append(Instances.from_row(row, height=img.shape[-2], width=img.shape[-1]))
    preds = predict(model, images, batch_size=batch_size, device=device)
    return evaluate_predictions(gts, preds)


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
