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
from streetsynth.instances import Instances
from streetsynth.versions import fingerprint, resolve_version, store_lock

from .writer import ShardWriter, manifest_counts

LABELLED_CONFIGS = (schema.STITCHED, schema.SYNTHETIC)
PROMPT_BOXES = ("detector", "ground-truth")


def pick_config(available: dict[str, Any], wanted: str | None, data: Path) -> str:
    """The config to label: the one asked for, else the repo's synthetic or stitched one."""
    if wanted is not None:
        if wanted not in available:
            raise ValueError(f"{data}: no config {wanted!r} (has: {', '.join(available) or 'none'})")
        return wanted
    for name in (schema.SYNTHETIC, schema.STITCHED):
        if name in available:
            return name
    raise ValueError(f"{data}: no stitched or synthetic config to label (has: {', '.join(available) or 'none'})")


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


def sam_box_masks(labeler, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """SAM masks (N, H, W) bool for xyxy ``boxes``, through the labeler's own SAM predictor."""
    return labeler.segment(image, np.asarray(boxes, np.float32).reshape(-1, 4))


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of each pair ``a[i]``, ``b[i]`` of boolean masks (N, H, W)."""
    inter = (a & b).sum(axis=(1, 2))
    union = (a | b).sum(axis=(1, 2))
    return inter / np.maximum(union, 1)


def box_prompted_row(row: dict[str, Any], labeler) -> tuple[dict[str, Any], np.ndarray]:
    """``row`` with a mask for every ground-truth object, and the IoUs of SAM against panoptic masks.

    Objects keep box, class, id and source; ``mask_source`` says ``panoptic`` where the frame's
    panoptic mask has the object's pixels, ``sam-box`` where SAM drew it from the box. SAM masks
    never take pixels of a panoptic object.
    """
    data, rgb = _image(row)
    h, w = rgb.shape[:2]
    gt = Instances.from_row(row, h, w)
    objects = [dict(o) for o in row["objects"]]
    if not len(gt):
        return {**row, "image": {"bytes": data, "path": None}}, np.zeros(0)
    panoptic = gt.masks.any(axis=(1, 2)) if gt.masks is not None else np.zeros(len(gt), bool)
    sam = sam_box_masks(labeler, rgb, gt.boxes)
    masks = np.where(panoptic[:, None, None], gt.masks if gt.masks is not None else False, sam)
    masks[~panoptic] &= ~masks[panoptic].any(axis=0)
    ious = mask_iou(sam[panoptic], masks[panoptic])
    inst = Instances(gt.boxes, gt.classes, h, w, masks=masks, scores=gt.scores, ids=gt.ids, sources=gt.sources)
    for obj, from_panoptic in zip(objects, panoptic):
        obj["mask_source"] = "panoptic" if from_panoptic else "sam-box"
    mask = {"bytes": inst.to_row()["instance_mask"]["bytes"], "path": None}
    return {**row, "objects": objects, "instance_mask": mask, "image": {"bytes": data, "path": None}}, ious


@dataclass
class LabelResult:
    folder: Path
    tag: str
    rows: dict[str, int]
    objects: dict[str, int]
    mask_sources: dict[str, int] = field(default_factory=dict)
    mask_iou: dict[str, Any] | None = None  # SAM vs panoptic masks (ground-truth mode)


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
    src_info = repo.read_info(data)
    available = repo.data_configs(data)
    config = pick_config(available, config, data)
    splits = splits or list(available[config])
    missing = [s for s in splits if s not in available[config]]
    if missing:
        raise ValueError(f"{data}: config {config!r} has no split(s) {missing} (has: {', '.join(available[config])})")
    fp = fingerprint({"source": src_info.get("fingerprint") or str(data.resolve()), "config": config,
                      "splits": splits, "limit": limit, "labeler": labeler.description,
                      "prompt_boxes": prompt_boxes})
    with store_lock(store):
        folder, tag, resuming = resolve_version(store, fp, version)
        if resuming and (folder / repo.INFO_PATH).exists():
            info = repo.read_info(folder)
            return LabelResult(folder, tag, info["rows"], info["objects"], info.get("mask_sources", {}),
                               info.get("mask_iou"))
        if not (folder / repo.MANIFEST_PATH).exists():
            repo.atomic_write_text(folder / repo.MANIFEST_PATH, json.dumps(
                {"fingerprint": fp, "config": config, "splits": splits}) + "\n")
    features = schema.features_for(config)
    ious: list[float] = []
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
                ious += row_ious.tolist()
            else:
                row = relabel_row(row, labeler, config)
            writer.add(row["id"], row, attempts=1, rejected=0)
        writer.flush()
    return _finish(folder, tag, fp, data, src_info, config, splits, labeler, prompt_boxes, ious)


def _finish(folder: Path, tag: str, fp: str, data: Path, src_info: dict[str, Any], config: str,
            splits: list[str], labeler, prompt_boxes: str, ious: list[float]) -> LabelResult:
    """Count what the shards hold, write info.json and the README; refuse an empty version."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rows, classes, sources = {}, dict.fromkeys(schema.CLASS_NAMES, 0), {}
    for split in splits:
        manifest = json.loads((folder / f"meta/manifest-{split}.json").read_text())
        rows[split] = manifest_counts(manifest)["accepted"]
        for f in repo.shard_files(folder, config, split):
            objects = pc.list_flatten(pq.read_table(f, columns=["objects"])["objects"])
            for c in pc.struct_field(objects, "category").to_pylist():
                classes[schema.CLASS_NAMES[c]] += 1
            for s in pc.struct_field(objects, "mask_source").to_pylist():
                sources[s or "none"] = sources.get(s or "none", 0) + 1
    if sum(rows.values()) == 0:
        raise ValueError(f"{data}: labelling {config}/{', '.join(splits)} gave 0 rows; nothing written as {tag}")
    mask_iou = None
    if prompt_boxes == "ground-truth":
        # Only what this process labelled is measured; a resumed run reports on its own rows.
        arr = np.asarray(ious, np.float64)
        mask_iou = {"objects": len(arr), "mean": round(float(arr.mean()), 4) if len(arr) else None,
                    "median": round(float(np.median(arr)), 4) if len(arr) else None}
    info = {
        "kind": src_info.get("kind", config), "version": tag, "fingerprint": fp,
        "source": {"path": str(data.resolve()), "kind": src_info.get("kind"),
                   "version": src_info.get("version"), "fingerprint": src_info.get("fingerprint")},
        "label": {**json.loads(labeler.description), "prompt_boxes": prompt_boxes}, "config": config,
        "rows": rows, "objects": classes, "mask_sources": dict(sorted(sources.items())),
    }
    if mask_iou is not None:
        info["mask_iou"] = {"sam_vs_panoptic": mask_iou}
    repo.write_info(folder, info)
    how = ("SAM prompted with each row's ground-truth boxes (panoptic masks kept where the frame has them)"
           if prompt_boxes == "ground-truth" else "Mask R-CNN refined by Segment Anything")
    body = (f"# Relabelled {config} ({tag})\n\nMasks by {how}, from `{info['source']['path']}` "
            f"(version {info['source']['version']}).\n\nLabeler: `{labeler.description}`\n")
    repo.write_readme(folder, body=body, metadata={"pretty_name": f"streetsynth {config} relabelled"}, default=config)
    return LabelResult(folder, tag, rows, classes, info["mask_sources"], info.get("mask_iou"))
