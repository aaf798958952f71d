"""Relabel a dataset version into a NEW version of a store, resumably.

Two ways to label, chosen by ``prompt_boxes``:

- ``"detector"``: the labeler (Mask R-CNN refined by SAM) replaces ``objects`` and ``instance_mask``;
- ``"ground-truth"``: SAM is prompted with each row's own ground-truth boxes, so every real object
  gets a mask and keeps its class, id and box. Panoptic masks win where a frame has them; the SAM
  masks of those objects are only compared with them (mask IoU, stored in ``info.json``).

Images are carried over byte for byte and the source is never edited. Rows go through the same
:class:`ShardWriter` as ``generate`` (one manifest per split), so a killed run resumes into the same
version with no row lost or doubled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streetsynth import codec, repo, schema
from streetsynth.instances import Instances, encode_id_mask
from streetsynth.versions import fingerprint, resolve_version, store_lock

from .writer import ShardWriter, manifest_counts

LABELLED_CONFIGS = (schema.STITCHED, schema.SYNTHETIC)
PROMPT_BOXES = ("detector", "ground-truth")
#: ``mask_source`` of an object whose mask SAM drew from its box, and of one SAM left empty inside its box.
SAM_BOX, SAM_EMPTY = "sam-box", "sam-box-empty"
#: Per split, each labelled row's SAM-vs-panoptic IoUs (JSON lines), logged before the row is written.
IOU_LOG = "meta/mask_iou-{split}.jsonl"


def _image(row: dict[str, Any]) -> tuple[bytes, np.ndarray]:
    image = row["image"]
    if not image or (image.get("bytes") is None and image.get("path") is None):
        raise ValueError(f"row {row.get('id')!r}: no image")
    data = image["bytes"] if image.get("bytes") is not None else Path(image["path"]).read_bytes()
    return data, codec.decode(data, str(row.get("id")))


def relabel_row(row: dict[str, Any], labeler, config: str) -> dict[str, Any]:
    """A copy of ``row`` whose objects and instance mask are the labeler's."""
    data, rgb = _image(row)
    fields = labeler(rgb).to_row()
    for obj in fields["objects"]:
        obj["mask_source"] = "maskrcnn+sam"
    out = {**row, **fields, "image": {"bytes": data, "path": None}}
    out["width"], out["height"] = int(rgb.shape[1]), int(rgb.shape[0])
    if config == schema.SYNTHETIC and out.get("generation") is not None:
        out["generation"] = {**out["generation"], "labeler": labeler.description}
    return out


def sam_box_masks(labeler, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """SAM masks (N, H, W) bool for xyxy ``boxes``, each cut to its box, through the labeler's SAM predictor,
    and SAM's scores of them (``sam_iou``, ``sam_stability``)."""
    from .label import sam_predict_boxes

    masks, iou, stability = sam_predict_boxes(labeler.predictor, image, np.asarray(boxes, np.float32).reshape(-1, 4),
                                              labeler.settings.box_margin)
    return masks, {"sam_iou": iou, "sam_stability": stability}


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of each pair ``a[i]``, ``b[i]`` of boolean masks (N, H, W)."""
    inter = (a & b).sum(axis=(1, 2))
    union = (a | b).sum(axis=(1, 2))
    return inter / np.maximum(union, 1)


def _object_list(objects) -> list[dict[str, Any]]:
    if isinstance(objects, dict):  # columnar, as some datasets formats give it
        return [dict(zip(objects, vals)) for vals in zip(*objects.values())]
    return [dict(o) for o in objects or []]


def fill_from_sam(objects: list[dict[str, Any]], gt: Instances, fill: np.ndarray, sam: np.ndarray,
                  sam_scores: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Row fields ``objects`` + ``instance_mask`` where each ``fill`` object takes its SAM mask.

    ``sam`` holds one box-prompted mask per ``fill`` object. SAM never takes pixels of an object
    that keeps its own mask. A filled object says ``mask_source`` ``sam-box``, or ``sam-box-empty``
    where nothing of its mask is left in the id mask (clipped away, or covered): it stays box-only
    and training's missing-mask policy decides what to do with it. Boxes, classes and ids are kept.
    ``sam_scores`` (name -> one value per ``fill`` object) are written onto the filled objects.
    """
    h, w = gt.height, gt.width
    base = gt.masks if gt.masks is not None else np.zeros((len(gt), h, w), bool)
    masks = base.copy()
    masks[fill] = sam & ~base[~fill].any(axis=0)
    inst = Instances(gt.boxes, gt.classes, h, w, masks=masks, scores=gt.scores, ids=gt.ids, sources=gt.sources)
    ids = inst.id_mask()
    shown = np.bincount(ids.ravel(), minlength=int(inst.ids.max()) + 1)[inst.ids] > 0
    out = [dict(o) for o in objects]
    for k, (obj, has) in enumerate(zip((o for o, f in zip(out, fill) if f), shown[fill])):
        obj["mask_source"] = SAM_BOX if has else SAM_EMPTY
        obj.update({name: float(v[k]) for name, v in (sam_scores or {}).items()})
    return {"objects": out, "instance_mask": {"bytes": encode_id_mask(ids), "path": None}}


def mask_box_only(fields: dict[str, Any], image: np.ndarray, predictor) -> dict[str, Any]:
    """``fields`` (a row, or its ``objects`` + ``instance_mask``) with a SAM mask for every object that has none.

    Each mask-less object prompts SAM (``predictor``, a ``SamPredictor``; None changes nothing) with
    its own box on ``image``, the row's RGB pixels; see :func:`fill_from_sam`. Every method that
    runs a SAM calls this on its rows, so a version made from a box-only repo comes out masked.
    """
    objects = _object_list(fields.get("objects"))
    if predictor is None or not objects:
        return fields
    h, w = image.shape[:2]
    gt = Instances.from_row({**fields, "objects": objects, "height": h, "width": w})
    fill = ~gt.masks.any(axis=(1, 2)) if gt.masks is not None else np.ones(len(gt), bool)
    if not fill.any():
        return fields
    from .label import sam_predict_boxes

    sam, iou, stability = sam_predict_boxes(predictor, image, gt.boxes[fill])
    return {**fields, **fill_from_sam(objects, gt, fill, sam, {"sam_iou": iou, "sam_stability": stability})}


def box_prompted_row(row: dict[str, Any], labeler) -> tuple[dict[str, Any], np.ndarray]:
    """``row`` with a mask for every ground-truth object, and the IoUs of SAM against panoptic masks.

    Objects keep box, class, id and source; ``mask_source`` says ``panoptic`` where the frame's
    panoptic mask has the object's pixels, else what :func:`fill_from_sam` says. Every object,
    panoptic ones included, prompts SAM, so SAM can be measured against the panoptic masks: every
    object records SAM's scores, and a panoptic one its ``gt_iou`` (SAM's mask against the panoptic one).
    """
    data, rgb = _image(row)
    h, w = rgb.shape[:2]
    gt = Instances.from_row(row, h, w)
    image = {"bytes": data, "path": None}
    if not len(gt):
        return {**row, "image": image}, np.zeros(0)
    panoptic = gt.masks.any(axis=(1, 2)) if gt.masks is not None else np.zeros(len(gt), bool)
    sam, scores = sam_box_masks(labeler, rgb, gt.boxes)
    objects = _object_list(row["objects"])
    ious = mask_iou(sam[panoptic], gt.masks[panoptic]) if panoptic.any() else np.zeros(0)
    for obj, iou in zip((o for o, p in zip(objects, panoptic) if p), ious):
        obj["mask_source"] = "panoptic"
        obj["gt_iou"] = float(iou)
    for k, obj in enumerate(objects):
        obj.update({name: float(v[k]) for name, v in scores.items()})
    return {**row, **fill_from_sam(objects, gt, ~panoptic, sam[~panoptic]), "image": image}, ious


@dataclass
class LabelResult:
    folder: Path
    tag: str
    rows: dict[str, int]
    objects: dict[str, int]
    mask_sources: dict[str, int] = field(default_factory=dict)
    mask_iou: dict[str, Any] | None = None  # SAM vs panoptic masks (ground-truth mode)


def check_paths(data: Path, store: Path) -> None:
    """Refuse a store that is the source repo or lies inside it: new versions never go into the source."""
    data, store = Path(data).resolve(), Path(store).resolve()
    if store == data or data in store.parents:
        raise ValueError(f"--out {store} is the source repo --data {data} or lies inside it; "
                         "write the new version into another store folder")


def _log_ious(folder: Path, split: str, row_id: str, ious: np.ndarray) -> None:
    """Append one row's SAM-vs-panoptic IoUs to the split's log (before the row is written)."""
    path = folder / IOU_LOG.format(split=split)
    path.parent.mkdir(parents=True, exist_ok=True)
    with repo.writing(path), open(path, "a") as f:  # the leading newline ends a line a killed run left half written
        f.write("\n" + json.dumps({"id": row_id, "iou": [round(float(v), 6) for v in ious]}))


def _logged_ious(folder: Path, split: str, ids: set[str]) -> list[float]:
    """The logged IoUs of the rows ``ids`` the shards hold, one entry per row (a redone row counts once)."""
    path = folder / IOU_LOG.format(split=split)
    per_row: dict[str, list[float]] = {}
    for line in path.read_text().split("\n") if path.exists() else []:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # empty, or cut by a kill: that row was not written and was redone
        if entry["id"] in ids:
            per_row[entry["id"]] = entry["iou"]
    return [v for i in sorted(per_row) for v in per_row[i]]


def _open_version(data: Path, store: Path, fp: str, config: str, splits: list[str], version: str | None):
    """``(folder, tag, info or None)``: the version of ``fp`` under the store lock; info when it is finished."""
    with store_lock(store):
        folder, tag, resuming = resolve_version(store, fp, version)
        if resuming and (folder / repo.INFO_PATH).exists():
            return folder, tag, repo.read_info(folder)
        repo.mark_unfinished(folder, config, splits)  # not a dataset until _finish names its shards
        if not (folder / repo.MANIFEST_PATH).exists():
            repo.atomic_write_text(folder / repo.MANIFEST_PATH, json.dumps(
                {"fingerprint": fp, "config": config, "splits": splits}) + "\n")
    return folder, tag, None


def label_repo(data: Path, store: Path, labeler, config: str | None = None, splits: list[str] | None = None,
               shard_size: int = 200, limit: int | None = None, version: str | None = None,
               prompt_boxes: str = "detector", progress: bool = True) -> LabelResult:
    """Write a labelled copy of ``config``/``splits`` of ``data`` as a new version under ``store``."""
    import datasets
    from tqdm.auto import tqdm

    if prompt_boxes not in PROMPT_BOXES:
        raise ValueError(f"unknown --prompt-boxes {prompt_boxes!r}; known: {', '.join(PROMPT_BOXES)}")
    if shard_size < 1:
        raise ValueError(f"--shard-size must be >= 1, got {shard_size}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    data, store = Path(data), Path(store)
    check_paths(data, store)
    src_info = repo.read_info(data)
    available = repo.data_configs(data)
    config = repo.pick_config(available, config, data)
    splits = splits or list(available[config])
    missing = [s for s in splits if s not in available[config]]
    if missing:
        raise ValueError(f"{data}: config {config!r} has no split(s) {missing} (has: {', '.join(available[config])})")
    fp = fingerprint({"source": src_info.get("fingerprint") or str(data.resolve()), "config": config,
                      "splits": splits, "limit": limit, "labeler": labeler.description,
                      "prompt_boxes": prompt_boxes})
    folder, tag, info = _open_version(data, store, fp, config, splits, version)
    if info is not None:
        return LabelResult(folder, tag, info["rows"], info["objects"], info.get("mask_sources", {}),
                           info.get("mask_iou"))
    features = schema.features_for(config)
    for split in splits:
        writer = ShardWriter(folder, config, split, features, shard_size, fp, manifest=f"meta/manifest-{split}.json")
        done = writer.done_ids()
        ds = repo.load_split(data, config, split)
        ds = ds.cast_column("image", datasets.Image(decode=False))
        ds = ds.cast_column("instance_mask", datasets.Image(decode=False))
        n = len(ds) if limit is None else min(limit, len(ds))
        for i in tqdm(range(n), desc=f"label {config}/{split}", unit="row", disable=not progress):
            row = ds[i]
            if row["id"] in done:
                continue
            if prompt_boxes == "ground-truth":
                row, row_ious = box_prompted_row(row, labeler)
                _log_ious(folder, split, row["id"], row_ious)
            else:
                row = relabel_row(row, labeler, config)
            writer.add(row["id"], row, attempts=1, rejected=0)
        writer.flush()
    return _finish(folder, tag, fp, data, src_info, config, splits, labeler, prompt_boxes)


def _count_shards(folder: Path, config: str, splits: list[str]):
    """``(rows, objects per class, mask sources, ids)`` of what the version's shards hold, per split."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rows, classes, sources, ids = {}, dict.fromkeys(schema.CLASS_NAMES, 0), {}, {}
    for split in splits:
        manifest = json.loads((folder / f"meta/manifest-{split}.json").read_text())
        rows[split] = manifest_counts(manifest)["accepted"]
        ids[split] = set()
        for f in repo.shard_files(folder, config, split):
            table = pq.read_table(f, columns=["id", "objects"])
            ids[split].update(table["id"].to_pylist())
            objects = pc.list_flatten(table["objects"])
            for c in pc.struct_field(objects, "category").to_pylist():
                classes[schema.CLASS_NAMES[c]] += 1
            for s in pc.struct_field(objects, "mask_source").to_pylist():
                sources[s or "none"] = sources.get(s or "none", 0) + 1
    return rows, classes, sources, ids


def _finish(folder: Path, tag: str, fp: str, data: Path, src_info: dict[str, Any], config: str,
            splits: list[str], labeler, prompt_boxes: str) -> LabelResult:
    """Count what the shards hold, write info.json and the README; refuse an empty version.

    Everything, the SAM-vs-panoptic IoUs included, is computed from the rows the version holds, so
    a resumed run describes the whole version exactly as an uninterrupted run does.
    """
    rows, classes, sources, ids = _count_shards(folder, config, splits)
    if sum(rows.values()) == 0:
        raise ValueError(f"{data}: labelling {config}/{', '.join(splits)} gave 0 rows; nothing written as {tag}")
    info = {
        "kind": src_info.get("kind", config), "version": tag, "fingerprint": fp,
        "source": repo.source_record(data, src_info, kind=src_info.get("kind"), version=src_info.get("version")),
        "label": {**json.loads(labeler.description), "prompt_boxes": prompt_boxes}, "config": config,
        "rows": rows, "objects": classes, "mask_sources": dict(sorted(sources.items())),
    }
    if prompt_boxes == "ground-truth":
        arr = np.asarray([v for split in splits for v in _logged_ious(folder, split, ids[split])], np.float64)
        info["mask_iou"] = {"sam_vs_panoptic": {
            "objects": len(arr), "mean": round(float(arr.mean()), 4) if len(arr) else None,
            "median": round(float(np.median(arr)), 4) if len(arr) else None}}
    repo.write_info(folder, info)
    how = ("SAM prompted with each row's ground-truth boxes (panoptic masks kept where the frame has them)"
           if prompt_boxes == "ground-truth" else "Mask R-CNN refined by Segment Anything")
    src = info["source"]
    body = (f"# Relabelled {config} ({tag})\n\nMasks by {how}, from `{src['name']}` (version {src['version']}, "
            f"fingerprint {src['fingerprint']}).\n\nLabeler: `{labeler.description}`\n")
    repo.write_readme(folder, body=body, metadata={"pretty_name": f"streetsynth {config} relabelled"}, default=config)
    return LabelResult(folder, tag, rows, classes, info["mask_sources"], info.get("mask_iou"))
