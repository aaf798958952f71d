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
    p.add_argument("--num", type=int, default=None, help="images to generate (prompts taken in turn) (default 8)")
    p.add_argument("--model", default=None, help="SD 1.5/2.1 id or folder; 'tiny' = tiny random pipeline (default tiny)")
    p.add_argument("--revision", default=None)
    p.add_argument("--size", type=parse_size, default=None, help="HxW, multiples of 8 (default 512x1024)")
    p.add_argument("--steps", type=int, default=None, help="default 30")
    p.add_argument("--guidance", type=float, default=None, help="default 7.5")
    p.add_argument("--threshold", type=float, default=None, help="attention share of its maximum counted inside (default 0.5)")
    p.add_argument("--min-area", type=int, default=None, help="smallest instance in pixels (default 64)")
    p.add_argument("--iou-threshold", type=float, default=None, help="Mask R-CNN agreement to keep an instance (default 0.5)")
    p.add_argument("--detector", default=None, help="detector spec for agreement (default tiny)")
    p.add_argument("--sam", default=None, help="SAM spec for refinement, or 'none' (default tiny)")
    p.add_argument("--head", default=None,
                   help="grounding head trained by `streetsynth train grounding` (its OUT, OUT/head or "
                   "head.safetensors): masks from the head instead of thresholded attention; rows record its digest")
    add_version_run_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.generators.ground import GroundConfig, run_ground
    from streetsynth.generators.method_run import format_result

    extra = {"prompts": tuple(args.prompts)} if args.prompts else {}
    if args.sam == "none":
        extra["sam"] = None
    print(format_result(run_ground(config_from_args(GroundConfig, args, **extra)), "dropped (no instance agreed)"))
    return 0
