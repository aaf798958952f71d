"""``streetsynth label``: relabel a dataset version with Mask R-CNN + SAM into a NEW version.

The source repo is never edited. Rows are read with ``datasets``; ``objects`` and
``instance_mask`` are replaced by the labeler's (also on real frames without panoptic labels);
images are carried over byte for byte. The new version lives in ``STORE/vX.Y.Z`` with a
fingerprint of the source and the label settings, so the same run again finds it done.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from streetsynth import repo, schema
from streetsynth.versions import fingerprint, resolve_version

LABELLED_CONFIGS = (schema.STITCHED, schema.SYNTHETIC)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="relabel a dataset version with Mask R-CNN + SAM into a new version",
                       description="Label every row of a dataset version with Mask R-CNN refined by Segment "
                       "Anything and write the result as a new version in a store (the source is never edited).")
    p.add_argument("--data", type=Path, required=True, help="source dataset repo (a version folder)")
    p.add_argument("--out", type=Path, required=True, help="store folder the new version is written under")
    p.add_argument("--detector", default="tiny", help="detector: tiny, a torchvision weights name, a .safetensors/"
                   ".pth COCO state dict, or a checkpoint folder (default tiny)")
    p.add_argument("--sam", default="tiny", help="SAM: tiny, vit_h|vit_l|vit_b:PATH, or a path naming the type")
    p.add_argument("--mode", choices=("box", "auto"), default="box", help="SAM prompted by boxes, or automatic")
    p.add_argument("--config", choices=LABELLED_CONFIGS, default=None, help="config to label (default: the "
                   "repo's synthetic or stitched config)")
    p.add_argument("--split", action="append", default=None, help="split(s) to label (default: all)")
    p.add_argument("--score-threshold", type=float, default=0.5, help="minimum detection score (default 0.5)")
    p.add_argument("--keep-overlap", type=float, default=0.9, help="share of a SAM mask inside a detection")
    p.add_argument("--merge-inside", type=float, default=0.99, help="share inside a bigger mask that merges")
    p.add_argument("--points-per-side", type=int, default=32, help="auto mode: point grid per side")
    p.add_argument("--cyclist", action="store_true", help="map COCO bicycle to cyclist")
    p.add_argument("--sign", action="store_true", help="map COCO stop sign to sign")
    p.add_argument("--shard-size", type=int, default=200, help="rows per Parquet shard (default 200)")
    p.add_argument("--limit", type=int, default=None, help="label only the first N rows of each split")
    p.add_argument("--version", default=None, help="version to write (default: next patch in the store)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


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


def relabel_row(row: dict[str, Any], labeler, config: str) -> dict[str, Any]:
    """A copy of ``row`` whose objects and instance mask are the labeler's."""
    import io

    import numpy as np
    from PIL import Image

    image = row["image"]
    if not image or (image.get("bytes") is None and image.get("path") is None):
        raise ValueError(f"row {row.get('id')!r}: no image")
    data = image["bytes"] if image.get("bytes") is not None else Path(image["path"]).read_bytes()
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    inst = labeler(rgb)
    out = {**row, **inst.to_row(), "image": {"bytes": data, "path": None}}
    out["width"], out["height"] = int(rgb.shape[1]), int(rgb.shape[0])
    if config == schema.SYNTHETIC and out.get("generation") is not None:
        out["generation"] = {**out["generation"], "labeler": labeler.description}
    return out


def label_repo(data: Path, store: Path, labeler, config: str | None = None, splits: list[str] | None = None,
               shard_size: int = 200, limit: int | None = None, version: str | None = None) -> Path:
    """Write a labelled copy of ``config``/``splits`` of ``data`` as a new version under ``store``."""
    import datasets
    from tqdm.auto import tqdm

    src_info = repo.read_info(data)
    available = repo.data_configs(data)
    config = pick_config(available, config, data)
    splits = splits or list(available[config])
    missing = [s for s in splits if s not in available[config]]
    if missing:
        raise ValueError(f"{data}: config {config!r} has no split(s) {missing} (has: {', '.join(available[config])})")
    if shard_size < 1:
        raise ValueError(f"--shard-size must be >= 1, got {shard_size}")
    fp = fingerprint({"source": src_info.get("fingerprint") or str(Path(data).resolve()), "config": config,
                      "splits": splits, "limit": limit, "labeler": labeler.description})
    folder, tag, resuming = resolve_version(store, fp, version)
    if resuming and (folder / repo.INFO_PATH).exists():
        print(f"{folder}: already labelled ({tag}, fingerprint {fp})")
        return folder
    features = schema.features_for(config)
    counts: dict[str, int] = {}
    classes = [0] * len(schema.CLASS_NAMES)
    for split in splits:
        ds = repo.load_split(data, config, split)
        ds = ds.cast_column("image", datasets.Image(decode=False))
        ds = ds.cast_column("instance_mask", datasets.Image(decode=False))
        n = len(ds) if limit is None else min(limit, len(ds))
        rows: list[dict[str, Any]] = []
        shard = 0
        for i in tqdm(range(n), desc=f"label {config}/{split}", unit="row"):
            row = relabel_row(ds[i], labeler, config)
            for obj in row["objects"]:
                classes[obj["category"]] += 1
            rows.append(row)
            if len(rows) == shard_size:
                repo.write_shard(folder, config, split, shard, rows, features)
                rows, shard = [], shard + 1
        if rows or shard == 0:
            repo.write_shard(folder, config, split, shard, rows, features)
        counts[split] = n
    info = {
        "kind": src_info.get("kind", config), "version": tag, "fingerprint": fp,
        "source": {"path": str(Path(data).resolve()), "kind": src_info.get("kind"),
                   "version": src_info.get("version"), "fingerprint": src_info.get("fingerprint")},
        "label": json.loads(labeler.description), "config": config, "rows": counts,
        "objects": dict(zip(schema.CLASS_NAMES, classes)),
    }
    repo.write_info(folder, info)
    body = (f"# Relabelled {config} ({tag})\n\nLabels by Mask R-CNN refined by Segment Anything, from "
            f"`{info['source']['path']}` (version {info['source']['version']}).\n\n"
            f"Labeler: `{labeler.description}`\n")
    repo.write_readme(folder, body=body, metadata={"pretty_name": f"streetsynth {config} relabelled"}, default=config)
    return folder


def run(args: argparse.Namespace) -> int:
    from streetsynth.generators.label import build_labeler

    if not args.data.is_dir():
        raise FileNotFoundError(f"{args.data}: no such dataset repo")
    labeler = build_labeler(args.detector, args.sam, mode=args.mode, score_threshold=args.score_threshold,
                            keep_overlap=args.keep_overlap, merge_inside=args.merge_inside, device=args.device,
                            cyclist=args.cyclist, sign=args.sign, points_per_side=args.points_per_side)
    folder = label_repo(args.data, args.out, labeler, args.config, args.split, args.shard_size, args.limit,
                        args.version)
    info = repo.read_info(folder)
    objects = ", ".join(f"{n} {c}" for c, n in info["objects"].items() if n) or "no objects"
    print(f"labelled {sum(info['rows'].values())} rows into {folder} ({info['version']}): {objects}")
    return 0
