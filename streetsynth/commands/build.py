"""``streetsynth build``: build the real dataset (stitched or pairs) from Waymo segments into a repo."""

from __future__ import annotations

import argparse
import math

from streetsynth.config import config_from_args, parse_size


def metres(text: str) -> float:
    """An argparse ``type``: a finite distance > 0 (``nan``, ``inf`` and ``0`` are refused by name)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of metres > 0, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build the real dataset from Waymo v1/v2 segments",
                       description="Read Waymo segments (v1 TFRecords or v2 Parquet, detected from the layout), "
                       "stitch FRONT + FRONT_RIGHT, carry boxes and panoptic masks into the stitched scene, "
                       "caption it, and write Parquet shards into a dataset repo that "
                       "datasets.load_dataset(REPO, CONFIG) reads.")
    p.add_argument("--source", required=True, help="folder of Waymo segments (training/ and validation/ name splits)")
    p.add_argument("--out", required=True, help="dataset repo folder to write (other configs in it are kept)")
    p.add_argument("--config", choices=("stitched", "pairs"), default=None, help="which config to build (default stitched)")
    p.add_argument("--captions", choices=("manual", "template", "clip", "blip"), default=None,
                   help="caption source (default template)")
    p.add_argument("--prompts", help="prompts file for --captions manual (one per line, or CSV id,prompt)")
    p.add_argument("--caption-model", help="Hub id or local path of the CLIP/BLIP model for --captions clip/blip")
    p.add_argument("--size", type=parse_size, default=None, help="stitched image HxW (default 512x1024)")
    p.add_argument("--num-proc", type=int, default=1, help="processes (work is sharded by segment file)")
    p.add_argument("--on-error", choices=("raise", "skip"), default=None,
                   help="a bad frame stops the build (raise, default) or is counted and skipped (skip)")
    p.add_argument("--surface", default=None, help="projection surface of the stitch: ground+cylinder (default), "
                   "cylinder or infinity (README: what ghosting each leaves)")
    p.add_argument("--surface-radius", type=metres, default=None,
                   help="metres to the cylinder / end of the ground plane (default 30)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def format_summary(summary) -> str:
    """The printed summary of a build (``BuildSummary.format``); kept here for callers written before."""
    return summary.format()


def run(args: argparse.Namespace) -> int:
    from streetsynth.builders.waymo import WaymoStitchedConfig, build_real

    cfg = config_from_args(WaymoStitchedConfig, args, name=args.config or "stitched", source_dir=args.source,
                           prompts_file=args.prompts)
    print(build_real(cfg, args.out, num_proc=args.num_proc).format())
    return 0
