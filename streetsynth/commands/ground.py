"""``streetsynth ground``: text-to-image street scenes with masks from the UNet's cross-attention."""

from __future__ import annotations

import argparse

from streetsynth.config import add_version_run_options, config_from_args, parse_size



def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ground", help="generate labelled scenes from text with attention-map masks",
                       description="Generate street scenes from prompts, take masks for the class words' tokens "
                       "from the UNet's cross-attention (averaged over steps and layers, split into components), "
                       "sharpen them with SAM, keep those Mask R-CNN agrees with, and stream rows into "
                       "STORE/vX.Y.Z (resumable).")
    p.add_argument("--out", required=True, help="store folder of synthetic versions")
    p.add_argument("--prompt", dest="prompts", action="append", default=None,
                   help="prompt naming our classes (car, pedestrian, cyclist, sign...); repeatable")
    p.add_argument("--num", type=int, default=8, help="images to generate (prompts taken in turn)")
    p.add_argument("--model", default="tiny", help="SD 1.5/2.1 id or folder; 'tiny' = tiny random pipeline")
    p.add_argument("--revision", default=None)
    p.add_argument("--size", type=parse_size, default=(512, 1024), help="HxW, multiples of 8")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--threshold", type=float, default=0.5, help="attention share of its maximum counted inside")
    p.add_argument("--min-area", type=int, default=64, help="smallest instance in pixels")
    p.add_argument("--iou-threshold", type=float, default=0.5, help="Mask R-CNN agreement to keep an instance")
    p.add_argument("--detector", default="tiny", help="detector spec for agreement")
    p.add_argument("--sam", default="tiny", help="SAM spec for refinement, or 'none'")
    add_version_run_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.generators.ground import GroundConfig, run_ground

    extra = {"prompts": tuple(args.prompts)} if args.prompts else {}
    res = run_ground(config_from_args(GroundConfig, args, sam=None if args.sam == "none" else args.sam, **extra))
    c = res["counts"]
    print(f"{'resumed' if res['resumed'] else 'wrote'} {res['tag']} at {res['folder']}: {c['accepted']} rows, "
          f"{c['failed_samples']} dropped (no instance agreed)")
    return 0
