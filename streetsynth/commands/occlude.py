"""``streetsynth occlude``: inpaint occluders inside object boxes of real scenes."""

from __future__ import annotations

import argparse

from streetsynth.config import add_version_run_options, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("occlude", help="inpaint occluders over parts of real objects into a synthetic version",
                       description="For sampled objects of each real stitched scene, inpaint an occluder over a "
                       "region of the object's box (GLIGEN box-grounded inpainting when --model names a GLIGEN "
                       "model, else SD or SDXL inpainting with a box mask), keep every other pixel exactly, cut the "
                       "occluder's mask out of the labels, and stream rows into STORE/vX.Y.Z (resumable). --refine "
                       "first repaints the object inside its own mask (LOCO's refined variant); --detector measures "
                       "each sample's agreement, and the card compares the variants.")
    p.add_argument("--real", required=True, help="real dataset repo folder (config 'stitched')")
    p.add_argument("--out", required=True, help="store folder of synthetic versions")
    p.add_argument("--model", default=None, help="e.g. masterful/gligen-1-4-inpainting-text-box, an SD or SDXL "
                   "inpainting id or folder (diffusers/stable-diffusion-xl-1.0-inpainting-0.1); 'tiny' or "
                   "'tiny:sdxl-inpaint' = tiny random pipelines (default tiny)")
    p.add_argument("--revision", default=None)
    p.add_argument("--split", default=None, help="default train")
    p.add_argument("--classes", nargs="+", default=None, help="classes of objects to occlude (default pedestrian vehicle)")
    p.add_argument("--min-size", type=int, default=None, help="shorter box side in pixels (default 16)")
    p.add_argument("--min-visible", type=float, default=None, help="mask share of the box an object needs (default 0.3)")
    p.add_argument("--per-row", type=int, default=None, help="objects occluded per real row (default 1)")
    p.add_argument("--num", type=int, default=None, help="at most this many samples")
    p.add_argument("--placement", choices=("bottom", "side", "random", "any"), default=None, help="default random")
    p.add_argument("--share", type=float, default=None, help="share of the box area to cover (default 0.4)")
    p.add_argument("--occluder", dest="occluders", action="append", default=None,
                   help="occluder prompt, 'TEXT' or 'TEXT=CLASS' to label it (repeatable; default: a bicycle, a trash "
                   "bin, boxes, a road sign, a pedestrian)")
    p.add_argument("--mask-mode", choices=("diff", "sam"), default=None, help="how the occluder's mask is found (default diff)")
    p.add_argument("--sam", default=None, help="SAM spec for --mask-mode sam (default tiny)")
    p.add_argument("--drop-below", type=float, default=None, help="drop objects keeping less of their pixels (default 0.2)")
    p.add_argument("--size", type=int, default=None, help="square working size of an inpainting model (default: "
                   "its own, 512 for SD, 1024 for SDXL)")
    p.add_argument("--refine", nargs="?", const="on", choices=("off", "on", "both"), default=None,
                   help="LOCO's refined variant: repaint the object in its own mask, then occlude it; '--refine "
                   "both' writes both variants of every object (default off)")
    p.add_argument("--refine-prompt", default=None, help="prompt repainting the object, {name} = its class "
                   "(default 'a {name}')")
    p.add_argument("--detector", default=None, help="Mask R-CNN spec measuring each sample's agreement "
                   "(default: none, not measured)")
    p.add_argument("--iou-threshold", type=float, default=None, help="agreement a sample needs (default 0)")
    p.add_argument("--max-attempts", type=int, default=None, help="seeds tried per sample (default 1)")
    p.add_argument("--steps", type=int, default=None, help="default 30")
    p.add_argument("--guidance", type=float, default=None, help="default 7.5")
    add_version_run_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.generators.method_run import format_result
    from streetsynth.generators.occlude import OccludeConfig, run_occlude

    extra = {name: tuple(getattr(args, name)) for name in ("occluders", "classes") if getattr(args, name)}
    print(format_result(run_occlude(config_from_args(OccludeConfig, args, **extra)), "dropped"))
    return 0
