"""``streetsynth demo --out DIR``: the whole pipeline on a sample the package makes itself."""

from __future__ import annotations

import argparse
from pathlib import Path

from streetsynth.commands.make_sample import parse_size
from streetsynth.commands._demo import DemoConfig, run_demo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the pipeline end to end and write report.html",
                       description="Make a Waymo-format sample (or read --source), build the real dataset, "
                       "generate and label a synthetic version, train real-only and real+synthetic Mask R-CNN, "
                       "and write DIR/report.html. Offline; tiny random models stand in unless real ones are named.")
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="folder for everything the demo writes")
    p.add_argument("--source", type=Path, default=None, help="real Waymo segments (v1 or v2) instead of a sample")
    p.add_argument("--segments", type=int, default=3, help="sample segments")
    p.add_argument("--frames", type=int, default=4, help="frames per segment")
    p.add_argument("--size", type=parse_size, default=(128, 320), help="stitched scene HxW")
    p.add_argument("--model", default="tiny", help="inpainting model id or folder (default: tiny random)")
    p.add_argument("--detector", default="tiny", help="Mask R-CNN spec for labeling (default: tiny random)")
    p.add_argument("--sam", default="tiny", help="SAM spec, e.g. vit_h:sam_vit_h_4b8939.pth (default: tiny random)")
    p.add_argument("--num", type=int, default=8, help="synthetic samples to generate")
    p.add_argument("--steps", type=int, default=4, help="diffusion steps per outpaint")
    p.add_argument("--train-steps", type=int, default=12, help="optimizer steps per epoch per training run")
    p.add_argument("--epochs", type=int, default=2, help="epochs per training run")
    p.add_argument("--train-arch", default="tiny", choices=("tiny", "mobilenet", "v1", "v2"),
                   help="Mask R-CNN architecture for the training runs (v2 is the real recipe; tiny is fast on CPU)")
    p.add_argument("--device", default="cpu", help="torch device for generation and labeling")
    p.add_argument("--seed", type=int, default=0, help="run seed")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = DemoConfig(out=args.out, source=args.source, segments=args.segments, frames=args.frames, size=args.size,
                     model=args.model, detector=args.detector, sam=args.sam, num=args.num, steps=args.steps,
                     train_steps=args.train_steps, epochs=args.epochs,
                     train_arch=args.train_arch, device=args.device, seed=args.seed)
    run_demo(cfg)
    return 0
