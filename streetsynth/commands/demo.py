"""``streetsynth demo --out DIR``: the whole pipeline on a sample the package makes itself."""

from __future__ import annotations

import argparse
from pathlib import Path

from streetsynth.demo import DemoConfig, run_demo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the pipeline end to end on a generated sample",
                       description="Make a Waymo-format sample and run the pipeline on it, end to end, "
                       "offline. Tiny random models stand in unless real ones are named.")
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="folder for everything the demo writes")
    p.add_argument("--segments", type=int, default=3, help="sample segments")
    p.add_argument("--frames", type=int, default=4, help="frames per segment")
    p.add_argument("--seed", type=int, default=0, help="run seed")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = run_demo(DemoConfig(out=args.out, segments=args.segments, frames=args.frames, seed=args.seed))
    print("demo done: " + ", ".join(f"{k}: {v}" for k, v in cfg.counts.items()))
    return 0
