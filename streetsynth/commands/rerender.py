"""``streetsynth rerender``: new appearances for real scene layouts with a ControlNet."""

from __future__ import annotations

import argparse

from streetsynth.config import add_style_options, add_version_run_options, config_from_args, parse_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rerender", help="re-render real scene layouts with a ControlNet into a synthetic version",
                       description="Condition a ControlNet on each real row's layout (instances over the stuff classes where "
                       "the row has panoptic labels; the streetsynth palette for a ControlNet from 'train controlnet', "
                       "ADE20K's for a public segmentation ControlNet) or edges, prompt with the caption plus a condition phrase, keep the instances a detector "
                       "confirms on the new image, and stream rows into STORE/vX.Y.Z (resumable).")
    p.add_argument("--real", required=True, help="real dataset repo folder (config 'stitched')")
    p.add_argument("--out", required=True, help="store folder of synthetic versions")
    p.add_argument("--model", default=None, help="SD 1.5 base id or folder; 'tiny' = tiny random ControlNet pipeline (default tiny)")
    p.add_argument("--controlnet", default=None, help="ControlNet id or folder, e.g. the --out of 'streetsynth train controlnet' "
                   "(default lllyasviel/control_v11p_sd15_seg)")
    p.add_argument("--revision", default=None)
    p.add_argument("--split", default=None, help="default train")
    p.add_argument("--condition", choices=("layout", "seg", "edges"), default=None,
                   help="layout: streetsynth palette; seg: ADE20K palette; edges: Canny (default: layout for a "
                   "ControlNet trained by 'train controlnet', else seg)")
    p.add_argument("--phrase", dest="phrases", action="append", default=None,
                   help="condition phrase added to the prompt (repeatable; default: night, rain, snow, dusk, fog, cities)")
    p.add_argument("--prompt-source", choices=("caption", "default"), default=None, help="default caption")
    p.add_argument("--size", type=parse_size, default=None, help="generation HxW (default: source size)")
    p.add_argument("--steps", type=int, default=None, help="default 30")
    p.add_argument("--guidance", type=float, default=None, help="default 7.5")
    p.add_argument("--conditioning-scale", type=float, default=None, help="default 1.0")
    p.add_argument("--iou-threshold", type=float, default=None, help="detector agreement needed to keep an instance (default 0.5)")
    p.add_argument("--min-kept", type=int, default=None, help="drop rows keeping fewer instances (default 1)")
    p.add_argument("--detector", default=None, help="detector spec for verification (default tiny)")
    p.add_argument("--num", type=int, default=None)
    add_style_options(p)
    add_version_run_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.generators.method_run import format_result
    from streetsynth.generators.rerender import RerenderConfig, run_rerender

    extra = {"phrases": tuple(args.phrases)} if args.phrases else {}
    print(format_result(run_rerender(config_from_args(RerenderConfig, args, **extra)), "dropped by verification"))
    return 0
