"""``streetsynth demo --out DIR``: the whole pipeline on a sample the package makes itself.

Parses the flags and calls :func:`streetsynth.training.demo.run_demo`, which makes the sample,
builds, masks, generates, labels, trains with the recipe (real-only, real+synthetic and an oracle
control) and writes ``DIR/report.html``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from streetsynth.config import config_from_args, parse_size
from streetsynth.training.demo import DemoConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the pipeline end to end and write report.html",
                       description="Make a Waymo-format sample (or read --source), build the real dataset, "
                       "generate and label a synthetic version, train Mask R-CNN on real-only, real+synthetic and "
                       "an oracle control, sweep a filter of the synthetic rows, and write DIR/report.html. Offline; tiny random models stand in unless "
                       "real ones are named.")
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="folder for everything the demo writes")
    p.add_argument("--source", type=Path, default=None, help="real Waymo segments (v1 or v2) instead of a sample")
    p.add_argument("--segments", type=int, default=None, help="sample segments (default 4)")
    p.add_argument("--frames", type=int, default=None, help="frames per segment (default 4)")
    p.add_argument("--size", type=parse_size, default=None, help="stitched scene HxW (default 160x384)")
    p.add_argument("--model", default=None, help="inpainting model id or folder (default: tiny random)")
    p.add_argument("--detector", default=None, help="Mask R-CNN spec for labeling (default: tiny random)")
    p.add_argument("--sam", default=None, help="SAM spec, e.g. vit_h:sam_vit_h_4b8939.pth (default: tiny random)")
    p.add_argument("--num", type=int, default=None, help="synthetic samples to generate (default 8)")
    p.add_argument("--steps", type=int, default=None, help="diffusion steps per outpaint (default 4)")
    p.add_argument("--train-steps", type=int, default=None, help="optimizer steps per training run")
    p.add_argument("--train-arch", default=None, choices=("tiny", "mobilenet", "v1", "v2"),
                   help="Mask R-CNN architecture for the training runs (v2 is the real recipe; tiny is fast on CPU)")
    p.add_argument("--seeds", type=int, default=None, help="training seeds per mix (default 2)")
    p.add_argument("--sweep", default=None, metavar="FILTER=V1,V2",
                   help="filter sweep of the synthetic rows, as `train compare --sweep` takes it (default auto: "
                   "max-seam-score at the thirds of the version's seam scores)")
    p.add_argument("--no-sweep", dest="sweep", action="store_const", const="", help="skip the filter sweep")
    p.add_argument("--no-methods", dest="methods", action="store_false", default=None,
                   help="skip the occlude, rerender and ground stages")
    p.add_argument("--base-model", default=None, help="SD 1.5 text-to-image base for rerender and ground "
                   "(default: tiny random)")
    p.add_argument("--device", default=None, help="torch device for generation and labeling (default cpu)")
    p.add_argument("--seed", type=int, default=None, help="run seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.training.demo import run_demo

    run_demo(config_from_args(DemoConfig, args))
    return 0
