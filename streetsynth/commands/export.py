"""``streetsynth export``: a dataset version as COCO files for trainers outside streetsynth."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a dataset version as COCO instance segmentation",
                       description="Write OUT/annotations/instances_<split>.json (boxes, RLE masks, areas and "
                       "the rows' scores as extra keys) and the images under OUT/images/<split>/.")
    p.add_argument("--data", required=True, help="dataset repo or version folder to export")
    p.add_argument("--format", choices=("coco",), default=None, help="export format (default coco)")
    p.add_argument("--out", required=True, help="folder to write annotations/ and images/ into")
    p.add_argument("--config", default=None, help="config to export (default: the repo's synthetic or stitched one)")
    p.add_argument("--split", dest="splits", action="append", default=None,
                   help="split to export (repeatable; default: all)")
    p.add_argument("--missing-masks", choices=("drop-row", "box-fill", "skip-object"), default=None,
                   help="objects without mask pixels: leave out the image (drop-row, default), fill the box, "
                   "or leave out the object")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.config import config_from_args
    from streetsynth.training.export_coco import ExportConfig, export

    result = export(config_from_args(ExportConfig, args))
    for split, path in result.annotations.items():
        c = result.counts[split]
        print(f"{split}: {c['images']} images, {c['annotations']} annotations -> {path} "
              f"(left out: {c['dropped_rows']} rows, {c['dropped_objects']} objects; box-filled: {c['box_filled']})")
    return 0
