"""``streetsynth label``: relabel a dataset version into a NEW version (see generators.relabel).

With ``--prompt-boxes ground-truth`` SAM draws a mask for every ground-truth box of a real
dataset (panoptic masks kept where a frame has them); otherwise Mask R-CNN + SAM replace the labels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from streetsynth import schema

LABELLED_CONFIGS = (schema.STITCHED, schema.SYNTHETIC)
PROMPT_BOXES = ("detector", "ground-truth")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="relabel a dataset version with Mask R-CNN + SAM into a new version",
                       description="Label every row of a dataset version with Mask R-CNN refined by Segment "
                       "Anything and write the result as a new version in a store (the source is never edited).")
    p.add_argument("--data", type=Path, required=True, help="source dataset repo (a version folder)")
    p.add_argument("--out", type=Path, required=True, help="store folder the new version is written under")
    p.add_argument("--detector", default=None, help="detector: tiny, a torchvision weights name, a .safetensors/"
                   ".pth COCO state dict, or a checkpoint folder (default tiny)")
    p.add_argument("--sam", default=None, help="SAM: tiny, vit_h|vit_l|vit_b:PATH, or a path naming the type (default tiny)")
    p.add_argument("--mode", choices=("box", "auto"), default=None, help="SAM prompted by boxes, or automatic (default box)")
    p.add_argument("--prompt-boxes", choices=PROMPT_BOXES, default=None,
                   help="boxes SAM is prompted with: the detector's (default), or each row's own ground-truth "
                   "boxes (every real object gets a mask; panoptic masks win where a frame has them)")
    p.add_argument("--config", choices=LABELLED_CONFIGS, default=None, help="config to label (default: the "
                   "repo's synthetic or stitched config)")
    p.add_argument("--split", action="append", default=None, help="split(s) to label (default: all)")
    p.add_argument("--score-threshold", type=float, default=None, help="minimum detection score (default 0.5)")
    p.add_argument("--keep-overlap", type=float, default=None, help="share of a SAM mask inside a detection (default 0.9)")
    p.add_argument("--merge-inside", type=float, default=None, help="share inside a bigger mask that merges (default 0.99)")
    p.add_argument("--points-per-side", type=int, default=None, help="auto mode: point grid per side (default 32)")
    p.add_argument("--cyclist", action="store_true", help="map COCO bicycle to cyclist")
    p.add_argument("--sign", action="store_true", help="map COCO stop sign to sign")
    p.add_argument("--rows-per-shard", type=int, default=None, help="rows per Parquet shard (default 200)")
    p.add_argument("--shard-size", dest="rows_per_shard", type=int, default=None, help=argparse.SUPPRESS)  # old name
    p.add_argument("--limit", type=int, default=None, help="label only the first N rows of each split")
    p.add_argument("--version", default=None, help="version to write (default: next patch in the store)")
    p.add_argument("--device", default=None, help="torch device (default cpu)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.generators.label import build_labeler
    from streetsynth.generators.relabel import check_paths, label_repo

    if not args.data.is_dir():
        raise FileNotFoundError(f"{args.data}: no such dataset repo")
    check_paths(args.data, args.out)
    for name, flag in (("rows_per_shard", "--rows-per-shard/--shard-size"), ("limit", "--limit"),
                       ("points_per_side", "--points-per-side")):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if args.prompt_boxes == "ground-truth" and args.mode not in (None, "box"):
        raise ValueError("--prompt-boxes ground-truth prompts SAM with boxes: it needs --mode box")
    given = {k: v for k, v in vars(args).items() if v is not None}
    labeler = build_labeler(**{k: given[k] for k in ("detector", "sam", "mode", "score_threshold", "keep_overlap",
                                                      "merge_inside", "device", "cyclist", "sign",
                                                      "points_per_side") if k in given})
    res = label_repo(args.data, args.out, labeler, args.config, args.split, limit=args.limit, version=args.version,
                     **{k: given[n] for k, n in (("shard_size", "rows_per_shard"), ("prompt_boxes", "prompt_boxes"))
                        if n in given})
    objects = ", ".join(f"{n} {c}" for c, n in res.objects.items() if n) or "no objects"
    sources = ", ".join(f"{n} {s}" for s, n in res.mask_sources.items() if n) or "none"
    print(f"labelled {sum(res.rows.values())} rows into {res.folder} ({res.tag}): {objects}; masks: {sources}")
    if res.mask_iou:
        iou = res.mask_iou["sam_vs_panoptic"]
        print(f"SAM vs panoptic mask IoU on {iou['objects']} objects: mean {iou['mean']}, median {iou['median']}")
    return 0
