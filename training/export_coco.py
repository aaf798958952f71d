"""COCO export: a dataset version as COCO instance segmentation, for trainers outside streetsynth.

``export_coco`` writes ``OUT/annotations/instances_<split>.json`` and the images, byte for byte as
the repo holds them, under ``OUT/images/<split>/``. Categories are ``CLASS_NAMES`` with id = index
+ 1 (0 stays background, as in torchvision). Every object becomes an annotation with its box (COCO
``[x, y, w, h]`` of the row's xyxy box), its mask as compressed RLE (pycocotools), the mask's area
and ``iscrowd`` 0; the row's other per-object fields (``score``, ``source``, ``mask_source`` and any
score a newer labeler records) ride along as extra keys, and each image carries the row's id and,
for synthetic rows, its ``generation`` record (seam score, attempts, ...) and the row scores of its
version's sidecar (``quality_clip``), so a user can re-threshold on the exported files alone.

COCO has no box-only instance; objects without mask pixels follow the training policies
(``drop-row``, the default, leaves out the whole image; ``box-fill`` fills the box and marks the
annotation ``"box_filled": true``; ``skip-object`` leaves out the object), and what was left out is
counted in the result.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streetsynth import repo, schema
from streetsynth.instances import Instances

#: Policies for objects without mask pixels (the names ``train`` uses); the first is the default.
MISSING_MASK_POLICIES = ("drop-row", "box-fill", "skip-object")
#: Configs that hold labelled scenes, in the order one is picked when none is named.
EXPORTED_CONFIGS = (schema.SYNTHETIC, schema.STITCHED)
#: Object fields that become the annotation's own COCO keys rather than extra ones.
_OWN_KEYS = {"bbox", "category", "instance_id"}


@dataclass
class ExportConfig:
    data: str  # dataset repo or version folder to export
    out: str  # folder to write annotations/ and images/ into
    format: str = "coco"  # export format (only "coco")
    config: str | None = None  # config to export (default: the repo's synthetic or stitched one)
    splits: list[str] | None = None  # splits to export (default: all of the config's)
    missing_masks: str = MISSING_MASK_POLICIES[0]  # objects without mask pixels: drop-row, box-fill, skip-object


@dataclass
class ExportResult:
    out: Path  # the export folder
    config: str  # the config exported
    annotations: dict[str, Path] = field(default_factory=dict)  # split -> instances_<split>.json
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> images, annotations, dropped rows/objects


def export(cfg: ExportConfig) -> ExportResult:
    """Export ``cfg.data`` in ``cfg.format`` (see the module docstring)."""
    if cfg.format != "coco":
        raise ValueError(f"unknown --format {cfg.format!r}; known: coco")
    if cfg.missing_masks not in MISSING_MASK_POLICIES:
        raise ValueError(f"unknown --missing-masks {cfg.missing_masks!r}; known: {', '.join(MISSING_MASK_POLICIES)}")
    data, out = Path(cfg.data), Path(cfg.out)
    repo.read_info(data)
    available = repo.data_configs(data)
    config = _pick_config(available, cfg.config, data)
    splits = cfg.splits or list(available[config])
    missing = [s for s in splits if s not in available[config]]
    if missing:
        raise ValueError(f"{data}: config {config!r} has no split(s) {missing} (has: {', '.join(available[config])})")
    result = ExportResult(out, config)
    for split in splits:
        coco, counts = coco_split(data, config, split, out / "images" / split, cfg.missing_masks)
        path = out / "annotations" / f"instances_{split}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        repo.atomic_write_text(path, json.dumps(coco))
        result.annotations[split], result.counts[split] = path, counts
    return result


def _pick_config(available: dict[str, Any], config: str | None, data: Path) -> str:
    """The named config, or the repo's synthetic one, else its stitched one."""
    if config is None:
        config = next((c for c in EXPORTED_CONFIGS if c in available), None)
        if config is None:
            raise ValueError(f"{data}: no labelled config to export (has: {', '.join(available) or 'no shards'})")
    if config not in available:
        raise ValueError(f"{data}: no config {config!r} (has: {', '.join(available)})")
    return config


def coco_split(data: Path, config: str, split: str, images_dir: Path, missing_masks: str
               ) -> tuple[dict[str, Any], dict[str, int]]:
    """The COCO dict of one split, writing its images into ``images_dir`` on the way."""
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    counts = {"images": 0, "annotations": 0, "dropped_rows": 0, "dropped_objects": 0, "box_filled": 0}
    sidecar_path = Path(data) / schema.ROW_SCORES_PATH
    sidecar = json.loads(sidecar_path.read_text()) if sidecar_path.exists() else {}
    for row in _rows(data, config, split):
        anns = row_annotations(row, missing_masks, counts)
        if anns is None:
            counts["dropped_rows"] += 1
            continue
        image_id = len(images) + 1
        data_bytes = _image_bytes(row["image"], data)
        name = f"{row['id']}{_extension(data_bytes)}"
        (images_dir / name).write_bytes(data_bytes)
        images.append({**image_entry(row, image_id, name), **sidecar.get(str(row["id"]), {})})
        for ann in anns:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **ann})
    counts["images"], counts["annotations"] = len(images), len(annotations)
    categories = [{"id": i + 1, "name": n, "supercategory": "street"} for i, n in enumerate(schema.CLASS_NAMES)]
    info = {"description": f"streetsynth {data.name} {config}/{split}", "version": repo.read_info(data).get("version")}
    return {"info": info, "images": images, "annotations": annotations, "categories": categories}, counts


def image_entry(row: dict[str, Any], image_id: int, file_name: str) -> dict[str, Any]:
    """A COCO image record with the row's id, segment and, where present, its generation record."""
    entry = {"id": image_id, "file_name": file_name, "width": int(row["width"]), "height": int(row["height"]),
             "row_id": row["id"], "segment": row.get("segment")}
    if row.get("generation"):
        entry["generation"] = row["generation"]
    return entry


def row_annotations(row: dict[str, Any], missing_masks: str, counts: dict[str, int]) -> list[dict[str, Any]] | None:
    """The annotations of one row (without ids), or None when ``drop-row`` leaves the row out."""
    from pycocotools import mask as mask_utils

    inst = Instances.from_row(row)
    h, w = inst.height, inst.width
    masks = inst.masks if inst.masks is not None else np.zeros((len(inst), h, w), bool)
    has_pixels = masks.any(axis=(1, 2))
    if missing_masks == "drop-row" and not has_pixels.all():
        return None
    anns = []
    for k, obj in enumerate(row["objects"]):
        mask, extra = masks[k], {}
        if not has_pixels[k]:
            if missing_masks == "skip-object":
                counts["dropped_objects"] += 1
                continue
            mask = _box_mask(obj["bbox"], h, w)
            extra["box_filled"] = True
            counts["box_filled"] += 1
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        x0, y0, x1, y1 = (float(v) for v in obj["bbox"])
        anns.append({"category_id": int(obj["category"]) + 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                     "area": float(mask_utils.area(rle)), "segmentation": rle, "iscrowd": 0,
                     **{k2: v for k2, v in obj.items() if k2 not in _OWN_KEYS and v is not None}, **extra})
    return anns


def _box_mask(bbox, height: int, width: int) -> np.ndarray:
    """The pixels of an xyxy box (rounded to whole pixels) as a mask."""
    x0, y0, x1, y1 = (int(round(v)) for v in bbox)
    mask = np.zeros((height, width), bool)
    mask[max(y0, 0):min(y1, height), max(x0, 0):min(x1, width)] = True
    return mask


def _rows(data: Path, config: str, split: str) -> Iterator[dict[str, Any]]:
    """The rows of a split, shard by shard, a batch at a time."""
    import pyarrow.parquet as pq

    for f in repo.shard_files(data, config, split):
        for batch in pq.ParquetFile(f).iter_batches(batch_size=64):
            yield from batch.to_pylist()


def _image_bytes(image: dict[str, Any], data: Path) -> bytes:
    """The encoded image of a row: its bytes, or the file its path names (relative to the repo)."""
    if image.get("bytes"):
        return image["bytes"]
    return (data / image["path"]).read_bytes()


def _extension(data: bytes) -> str:
    """The file extension of encoded image bytes (PNG or JPEG; ``.img`` otherwise)."""
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    return ".img"
