"""``streetsynth make-sample``: write Waymo-format segments of rendered street scenes."""

from __future__ import annotations

import argparse

from streetsynth.config import parse_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-sample", help="write a small Waymo-format sample of rendered scenes",
                       description="Render street scenes and write them as real Waymo segments "
                       "(v1 TFRecords of Frame protos, or v2 Parquet): FRONT and FRONT_RIGHT views with "
                       "calibrations, 2D boxes and panoptic labels. Deterministic from --seed.")
    p.add_argument("--out", required=True, help="folder to write training/ and validation/ into")
    p.add_argument("--segments", type=int, default=2, help="number of segments (the last --validation-segments go to validation)")
    p.add_argument("--validation-segments", type=int, default=1,
                   help="how many of the segments (the last ones) go to validation; more make AP less noisy")
    p.add_argument("--frames", type=int, default=3, help="frames per segment")
    p.add_argument("--seed", type=int, default=0, help="everything follows from this seed")
    p.add_argument("--size", type=parse_size, default=(320, 480), help="per-view HxW (1280x1920 is Waymo's)")
    p.add_argument("--format", choices=("v1", "v2"), default="v1", help="v1 TFRecords or v2 Parquet components")
    p.add_argument("--panoptic-every", type=int, default=2, help="every Nth frame carries panoptic labels (0: none)")
    p.add_argument("--no-distortion", action="store_true", help="write lens distortion k1..k3 as zero")
    p.add_argument("--no-offsets", action="store_true",
                   help="one shared camera centre and centred principal points")
    p.add_argument("--no-tilt", action="store_true", help="no camera pitch or roll")
    p.add_argument("--no-exposure", action="store_true", help="FRONT_RIGHT exposed like FRONT")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.builders.sample import make_sample

    paths = make_sample(args.out, args.segments, args.frames, args.seed, args.size, args.format, args.panoptic_every,
                        distortion=not args.no_distortion, offsets=not args.no_offsets, tilt=not args.no_tilt,
                        exposure=not args.no_exposure,
                        validation_segments=args.validation_segments)
    for p in paths:
        print(p)
    print(f"wrote {args.segments} segment(s) x {args.frames} frame(s) at {args.size[0]}x{args.size[1]} ({args.format})")
    return 0
