"""``streetsynth occlude``: inpaint occluders inside object boxes of real scenes."""

from __future__ import annotations

import argparse

from streetsynth.config import add_version_run_options, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("occlude", help="inpaint occluders over parts of real objects into a synthetic version",
                       description="For sampled objects of each real stitched scene, inpaint an occluder over a "
                       "region of the object's box (GLIGEN box-grounded inpainting when --model names a GLIGEN "
                       "model, else SD inpainting with a box mask), keep every other pixel exactly, cut the "
                       "occluder's mask out of the labels, and stream rows into STORE/vX.Y.Z (resumable).")
    p.add_argument("--real", required=True, help="real dataset repo folder (config 'stitched')")
    p.add_argument("--out", required=True, help="store folder of synthetic versions")
    p.add_argument("--model", default="tiny", help="e.g. masterful/gligen-1-4-inpainting-text-box, an SD "
                   "inpainting id or folder; 'tiny' = tiny random inpainting pipeline")
    p.add_argument("--revision", default=None)
    p.add_argument("--split", default="train")
    p.add_argument("--classes", nargs="+", default=["pedestrian", "vehicle"], help="classes of objects to occlude")
    p.add_argument("--min-size", type=int, default=16, help="shorter box side in pixels")
    p.add_argument("--min-visible", type=float, default=0.3, help="mask share of the box an object needs")
    p.add_argument("--per-row", type=int, default=1, help="objects occluded per real row")
    p.add_argument("--num", type=int, default=None, help="at most this many samples")
    p.add_argument("--placement", choices=("bottom", "side", "random", "any"), default="random")
    p.add_argument("--share", type=float, default=0.4, help="share of the box area to cover")
    p.add_argument("--occluder", dest="occluders", action="append", default=None,
                   help="occluder prompt, 'TEXT' or 'TEXT=CLASS' to label it (repeatable; default: a bicycle, a trash "
                   "bin, boxes, a road sign, a pedestrian)")
    p.add_argument("--mask-mode", choices=("diff", "sam"), default="diff", help="how the occluder's mask is found")
    p.add_argument("--sam", default="tiny", help="SAM spec for --mask-mode sam")
    p.add_argument("--drop-below", type=float, default=0.2, help="drop objects keeping less of their pixels")
    p.add_argument("--size", type=int, default=512, help="square working size of an inpainting model")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--guidance", type=float, default=7.5)
    add_version_run_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.generators.occlude import OccludeConfig, run_occlude

    extra = {"occluders": tuple(args.occluders)} if args.occluders else {}
    res = run_occlude(config_from_args(OccludeConfig, args, classes=tuple(args.classes), **extra))
    c = res["counts"]
    print(f"{'resumed' if res['resumed'] else 'wrote'} {res['tag']} at {res['folder']}: {c['accepted']} rows")
    return 0
