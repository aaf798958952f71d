"""``streetsynth generate``: outpaint a real dataset into a new synthetic version."""

from __future__ import annotations

import argparse

from streetsynth.config import add_style_options, config_from_args, parse_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="outpaint real stitched scenes into a synthetic dataset version",
                       description="Keep the FRONT part of each real stitched scene, invent the FRONT_RIGHT part "
                       "with a diffusers inpainting model, reject seams and retry with derived seeds, label, and "
                       "stream the rows into STORE/vX.Y.Z (resumable; same arguments give the same rows). "
                       "Runs under `accelerate launch` with one share of the samples per process.")
    p.add_argument("--real", required=True, help="real dataset repo folder (config 'stitched')")
    p.add_argument("--out", required=True, help="store folder of synthetic versions")
    p.add_argument("--model", default=None, help="inpainting model id or folder (SD 1.5/2, SDXL, SD3, FLUX Fill); "
                   "'tiny' or 'tiny:FAMILY' = a tiny random pipeline (default tiny)")
    p.add_argument("--revision", default=None, help="Hub revision of --model")
    p.add_argument("--split", default=None, help="split of the real dataset (default train)")
    p.add_argument("--num", type=int, default=None, help="samples to generate (default: one per source row)")
    p.add_argument("--batch-size", type=int, default=None, help="canvases per pipeline call (default 4)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default 30)")
    p.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the family's; 30 for FLUX Fill)")
    p.add_argument("--strength", type=float, default=None, help="inpainting strength (default 1.0)")
    p.add_argument("--seam-threshold", type=float, default=None,
                   help="seam scores above this reject (default: the gate's calibrated threshold)")
    p.add_argument("--plausibility-threshold", type=float, default=None,
                   help="also reject plausibility scores below this (a copy of the known part scores near 0; default: off)")
    p.add_argument("--max-attempts", type=int, default=None, help="attempts per sample (default 3)")
    p.add_argument("--seed", type=int, default=None, help="run seed (default 0)")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda (default cpu)")
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default=None, help="default fp16 on CUDA")
    p.add_argument("--attention", default=None, help="diffusers attention backend (e.g. native, flash)")
    p.add_argument("--compile", action="store_true", help="torch.compile the denoiser (UNet or transformer)")
    p.add_argument("--version", default=None, help="version X.Y.Z to write (default: resume or next patch)")
    p.add_argument("--prompt-source", choices=("default", "caption"), default=None,
                   help="the fixed prompt, or each source row's caption (default default)")
    p.add_argument("--prompt", default=None, help="prompt for --prompt-source default (default: a street-view prompt)")
    p.add_argument("--negative-prompt", default=None,
                   help="negative prompt (default where the family takes one: against cartoons and distortion)")
    p.add_argument("--allow-drop", nargs="*", default=None, metavar="ARG",
                   help="call arguments the model may ignore (e.g. negative_prompt); otherwise an error")
    p.add_argument("--size", type=parse_size, default=None, help="canvas HxW (default: source size)")
    p.add_argument("--invent-fraction", type=float, default=None,
                   help="share of the width to invent (default: right of stitch.front_x1)")
    p.add_argument("--rows-per-shard", type=int, default=None, help="rows per Parquet shard (default 64)")
    p.add_argument("--detector", default=None, help="detector spec for labeling (with --sam)")
    p.add_argument("--sam", default=None, help="SAM spec for labeling (with --detector)")
    add_style_options(p)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.generators.generate import GenerateConfig, run_generation
    from streetsynth.generators.method_run import format_result

    extra = {"allow_drop": tuple(args.allow_drop)} if args.allow_drop is not None else {}
    cfg = config_from_args(GenerateConfig, args, **extra)
    res = run_generation(cfg)
    if res.rank == 0:
        print(format_result(res, f"dropped after {cfg.max_attempts} attempts"))
    return 0
