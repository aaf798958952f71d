"""``streetsynth inspect PATH``: what a segment file or folder of them holds."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="summarise Waymo v1 segment files",
                       description="Print frames, cameras, image sizes, label counts by type, panoptic "
                       "frames and any skipped or corrupt records of a segment file or a folder of them.")
    p.add_argument("path", help="a .tfrecord segment file or a folder searched recursively")
    p.add_argument("--on-error", choices=("raise", "skip"), default="skip",
                   help="stop at the first bad record, or count it and read on (default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.builders.summary import format_summary, summarize_segment
    from streetsynth.builders.waymo_v1 import segment_files

    files = [f for fs in segment_files(args.path).values() for f in fs]
    if not files:
        raise FileNotFoundError(f"{args.path}: no .tfrecord segment files found")
    skipped = 0
    for f in files:
        s = summarize_segment(f, on_error=args.on_error)
        skipped += s.stats.skipped
        print(format_summary(s))
    print(f"{len(files)} segment file(s), {skipped} skipped record(s)")
    return 0
