"""``streetsynth build``: build the real dataset (stitched or pairs) from Waymo segments into a repo."""

from __future__ import annotations

import argparse
import math

from streetsynth.config import parse_size


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
    p.add_argument("--config", choices=("stitched", "pairs"), default="stitched", help="which config to build")
    p.add_argument("--captions", choices=("manual", "template", "clip", "blip"), default="template",
                   help="caption source")
    p.add_argument("--prompts", help="prompts file for --captions manual (one per line, or CSV id,prompt)")
    p.add_argument("--caption-model", help="Hub id or local path of the CLIP/BLIP model for --captions clip/blip")
    p.add_argument("--size", type=parse_size, default=(512, 1024), help="stitched image HxW")
    p.add_argument("--num-proc", type=int, default=1, help="processes (work is sharded by segment file)")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="a bad frame stops the build (raise) or is counted and skipped (skip)")
    p.add_argument("--surface", default=None, help="projection surface of the stitch: ground+cylinder (default), "
                   "cylinder or infinity (README: what ghosting each leaves)")
    p.add_argument("--surface-radius", type=metres, default=None,
                   help="metres to the cylinder / end of the ground plane (default 30)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def format_summary(s: dict) -> str:
    """The printed summary: rows per split, objects per class, stitch methods, skipped frames."""
    lines = [f"built {s['config']} into {s['repo']} in {s['seconds']:.1f} s (fingerprint {s['fingerprint']})"]
    lines += [f"  {split}: {n} rows" for split, n in s["rows"].items()]
    lines.append("  objects: " + ", ".join(f"{c} {n}" for c, n in s["objects"].items()))
    if s.get("methods"):
        lines.append("  stitched by: " + ", ".join(f"{m} {n}" for m, n in s["methods"].items()))
    if s.get("uncalibrated"):
        lines.append(f"  frames without a calibration (registered from features): {s['uncalibrated']}")
    if s.get("unreadable"):
        lines.append(f"  segment files with no frame: {len(s['unreadable'])}")
        lines += [f"    - {r}" for r in s["unreadable"]]
    lines.append(f"  skipped frames: {s['skipped']}")
    lines += [f"    - {r}" for r in s["reasons"][:20]]
    if len(s["reasons"]) > 20:
        lines.append(f"    ... and {len(s['reasons']) - 20} more (all in meta/info.json)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from streetsynth.builders.waymo import build_real

    if args.num_proc < 1:
        raise ValueError(f"--num-proc must be at least 1, got {args.num_proc}")
    summary = build_real(args.source, args.out, config=args.config, size=args.size, captions=args.captions,
                         prompts=args.prompts, clip_model=args.caption_model, num_proc=args.num_proc,
                         on_error=args.on_error, **{k: v for k, v in (("surface", args.surface),
                                                                      ("surface_radius", args.surface_radius))
                                                    if v is not None})
    print(format_summary(summary))
    return 0
