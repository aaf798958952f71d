"""``streetsynth inspect PATH``: what a segment file or folder of them holds."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="summarise Waymo v1 or v2 segments",
                       description="Print frames, cameras, image sizes (HxW), label counts by type, panoptic "
                       "frames and any skipped or corrupt records of a segment file or a folder of them "
                       "(v1 TFRecords, or v2 component folders detected from the layout).")
    p.add_argument("path", help="a .tfrecord or v2 camera_image .parquet file, or a folder searched recursively")
    p.add_argument("--on-error", choices=("raise", "skip"), default="skip",
                   help="stop at the first bad record, or count it and read on (default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.builders.summary import format_summary, segment_files, summarize

    files = segment_files(args.path)
    if not files:
        raise FileNotFoundError(f"{args.path}: no Waymo segments (*.tfrecord or camera_image/*.parquet) found")
    skipped = 0
    for f in files:
        s = summarize(f, on_error=args.on_error)
        skipped += s.stats.skipped
        print(format_summary(s))
    print(f"{len(files)} segment file(s), {skipped} skipped record(s)")
    return 0
