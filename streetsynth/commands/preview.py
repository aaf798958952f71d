"""``streetsynth preview REPO``: a contact sheet of labelled rows and an HTML page of class counts."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preview", help="contact sheet of a dataset's rows with class-coloured masks",
                       description="Render rows of a dataset repo with their instance masks tinted by class into "
                       "a PNG contact sheet, with an HTML page of per-class counts beside it.")
    p.add_argument("repo", type=Path, help="dataset repo (a version folder)")
    p.add_argument("--config", default=None, help="config (default: synthetic, else stitched)")
    p.add_argument("--split", default=None, help="split (default: the config's first)")
    p.add_argument("--num", type=int, default=12, help="rows on the sheet, evenly spaced (default 12)")
    p.add_argument("--columns", type=int, default=3, help="tiles per row (default 3)")
    p.add_argument("--sort", default=None,
                   help="sort rows by a score, -SCORE for highest first: seam_score, plausibility_score, quality_clip, "
                   "min_score, min_sam_iou, min_sam_stability (min_*: the lowest over the row's instances)")
    p.add_argument("--where", action="append", default=None,
                   help="keep rows whose score passes, e.g. seam_score<=0.5 or min_sam_iou>0.8 (repeatable)")
    p.add_argument("--rejected", action="store_true",
                   help="show the worst accepted rows (by --sort, default highest seam score) beside the best "
                   "rejected attempts the generation kept, two columns")
    p.add_argument("--out", type=Path, default=None, help="PNG to write (default REPO/preview-<config>-<split>.png)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.cards.preview import preview

    if not args.repo.is_dir():
        raise FileNotFoundError(f"{args.repo}: no such dataset repo")
    sheet, page = preview(args.repo, args.config, args.split, args.num, args.out, args.columns,
                          sort=args.sort, where=args.where, rejected=args.rejected)
    print(f"wrote {sheet} and {page}")
    return 0
