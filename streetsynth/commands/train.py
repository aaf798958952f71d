"""``streetsynth train {maskrcnn,compare,inpaint,controlnet}``: train detectors on data mixes, compare mixes,
adapt an SD inpainting model to the real scenes, train a layout ControlNet."""

from __future__ import annotations

import argparse
from pathlib import Path

from streetsynth.config import config_from_args, parse_size


def _int_or_none(text: str) -> int | None:
    return None if text.lower() in ("none", "") else int(text)


def _add_recipe_args(p: argparse.ArgumentParser) -> None:
    """Arguments shared by ``maskrcnn`` and ``compare`` (TrainConfig fields)."""
    p.add_argument("--real", required=True, help="real dataset repo (config stitched, splits train/validation)")
    p.add_argument("--epochs", type=int, default=1, help="epochs (default 1)")
    p.add_argument("--steps-per-epoch", type=_int_or_none, default=None,
                   help="optimizer steps per epoch (default: one pass over the weighted sources)")
    p.add_argument("--max-steps", type=_int_or_none, default=None, help="stop after this many steps in all")
    p.add_argument("--batch-size", type=int, default=2, help="images per process per step (default 2)")
    p.add_argument("--lr", type=float, default=0.02, help="peak SGD learning rate (default 0.02)")
    p.add_argument("--warmup-steps", type=int, default=100, help="linear warm-up steps (default 100)")
    p.add_argument("--arch", default="v2", help="detector architecture: v2, v1, mobilenet, tiny (default v2)")
    p.add_argument("--weights", default=None, help="detector weights (name or path); default random init")
    p.add_argument("--weights-backbone", default=None, help="backbone weights (name or path)")
    p.add_argument("--min-size", type=int, default=None,
                   help="detector resize: shorter side (default: the architecture's, 800; tiny 128)")
    p.add_argument("--max-size", type=int, default=None,
                   help="detector resize: longest side cap (default: the architecture's, 1333; tiny 256)")
    p.add_argument("--anchors", choices=("auto", "default"), default=None,
                   help="auto (default): fit anchor sizes and ratios to the training boxes at the resize when "
                   "training from scratch, and refuse a resize at which a class cannot be matched; default: the "
                   "architecture's anchors")
    p.add_argument("--norm-images", type=int, default=None,
                   help="training images the batch-norm statistics are recomputed on before every evaluation "
                   "(default 32; 0: off)")
    p.add_argument("--augment", default="hflip", help="augmentation preset: none, hflip, hflip_scale (default hflip)")
    p.add_argument("--missing-masks", choices=("drop-row", "box-fill", "skip-object"), default="drop-row",
                   help="objects without mask pixels: drop-row = leave their image out (default), box-fill = "
                   "fill the box as the mask, skip-object = drop the object, keep the image (it is then taught "
                   "as background; warns)")
    p.add_argument("--max-seam-score", type=float, default=None,
                   help="load-time filter: leave out synthetic rows whose seam score is above this")
    p.add_argument("--min-instance-score", type=float, default=None,
                   help="load-time filter: leave out synthetic instances whose detector score is below this "
                   "(their pixels become background)")
    p.add_argument("--min-sam-iou", type=float, default=None,
                   help="load-time filter: leave out synthetic instances whose SAM predicted IoU is below this")
    p.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    p.add_argument("--mixed-precision", choices=("auto", "no", "fp16", "bf16"), default="auto",
                   help="auto = bf16/fp16 on a GPU, none on the CPU")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even where a GPU is present")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (default 0)")
    p.add_argument("--max-eval-rows", type=_int_or_none, default=None, help="evaluate on at most this many rows")
    p.add_argument("--no-resume", action="store_true", help="start over instead of resuming from --out")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _config(args: argparse.Namespace, **over):
    from streetsynth.training.maskrcnn import TrainConfig

    return config_from_args(TrainConfig, args, resume=not args.no_resume, progress=not args.no_progress, **over)


def _split_list(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train Mask R-CNN on data mixes, compare mixes, fine-tune inpainting",
                           description="Training: Mask R-CNN on real/synthetic mixes with AP on the real "
                           "validation split, a comparison of mixes, and SD-inpainting adaptation.")
    tsub = train.add_subparsers(dest="train_command", metavar="WHAT", required=True)

    p = tsub.add_parser("maskrcnn", help="train Mask R-CNN on one mix",
                        description="Train Mask R-CNN on a mix of the real train split and synthetic versions "
                        "(accelerate: one process or several), checkpoint each epoch, resume from --out, and "
                        "report box/mask AP on the real validation split.")
    _add_recipe_args(p)
    p.add_argument("--synthetic", default="", help="synthetic version folders (or stores), comma-separated")
    p.add_argument("--mix", default="real=1", help="sampling weights, e.g. real=1.0,synthetic=0.5 (default real=1)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-eval", action="store_true", help="skip the per-epoch evaluation")
    p.set_defaults(func=run_maskrcnn)

    p = tsub.add_parser("compare", help="train the same recipe on several mixes and compare AP",
                        description="Run the Mask R-CNN recipe on every mix at equal compute (same steps and images), "
                        "--seeds times each; print mean ± std of box and mask AP (AP, AP50, AP75, per class) and "
                        "the paired change against real-only with a 95 % interval; write results.json and "
                        "learning_curves.png and delta.png to --out; --control oracle,noise adds the positive control.")
    _add_recipe_args(p)
    p.add_argument("--synthetic", default="", help="synthetic version folders (or stores), comma-separated")
    p.add_argument("--mixes", nargs="+", default=None,
                   help="mixes to compare (default with --synthetic: real=1  real=1,synthetic=0.5  synthetic=1; "
                   "without: real=1); real-only is always added")
    p.add_argument("--real-fraction", default=None,
                   help="comma-separated shares of the real train segments to run every mix at, e.g. 0.1,1.0 "
                   "(whole segments, drawn per seed; default 1.0)")
    p.add_argument("--control", default=None,
                   help="controls that show the comparison can see an effect: oracle (the real train scenes with "
                   "their true labels, as a synthetic version) and/or noise (the same scenes with another "
                   "scene's labels), e.g. oracle,noise; each runs as real=1,synthetic=1")
    p.add_argument("--no-control-2x", action="store_true",
                   help="skip the real-only control trained for twice the steps")
    p.add_argument("--sweep", default=None,
                   help="train one mix per threshold of a load-time filter instead of the mixes, e.g. "
                   "min-instance-score=0.3,0.5,0.7 (also max-seam-score, min-sam-iou); the mix is the first of "
                   "--mixes (default real=1,synthetic=1), run beside the unfiltered mix and real-only")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at once, one process each (default 1)")
    p.add_argument("--steps", type=_int_or_none, default=None,
                   help="optimizer steps every mix gets (default: the real-only run's, one pass over the real "
                   "rows per epoch); every mix sees the same number of images")
    p.add_argument("--seeds", type=int, default=3, help="runs per mix, seeds SEED..SEED+N-1 (default 3)")
    p.add_argument("--out", required=True, help="output folder, one subfolder per mix and seed")
    p.set_defaults(func=run_compare)

    p = tsub.add_parser("inpaint", help="adapt an SD inpainting model to the real scenes",
                        description="Fine-tune a Stable Diffusion inpainting model (LoRA on the UNet attention "
                        "by default, or full) on the real stitched scenes with outpainting and random masks; "
                        "--out loads with StableDiffusionInpaintPipeline.from_pretrained.")
    p.add_argument("--real", required=True, help="real dataset repo (config stitched, split train)")
    p.add_argument("--model", required=True, help="diffusers model id or local path, or 'tiny' for a random tiny one")
    p.add_argument("--out", required=True, help="output folder (a full pipeline, LoRA merged)")
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps (default 1000)")
    p.add_argument("--batch-size", type=int, default=1, help="images per process per micro-step (default 1)")
    p.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation micro-steps (default 1)")
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate (default 1e-4)")
    p.add_argument("--full", action="store_true", help="fine-tune the whole UNet instead of LoRA")
    p.add_argument("--lora-rank", type=int, default=8, help="LoRA rank (default 8)")
    p.add_argument("--resolution", type=parse_size, default="512x1024", help="training canvas HxW, multiples of 8 (default 512x1024)")
    p.add_argument("--random-mask-prob", type=float, default=0.5,
                   help="share of canvases with random masks instead of the outpainting mask (default 0.5)")
    p.add_argument("--ema", action="store_true", help="keep an EMA of the trained weights and save that")
    p.add_argument("--mixed-precision", choices=("auto", "no", "fp16", "bf16"), default="auto")
    p.add_argument("--checkpoint-every", type=int, default=500, help="checkpoint every N steps (default 500)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even where a GPU is present")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run_inpaint)

    p = tsub.add_parser("controlnet", help="train a layout ControlNet on the real scenes",
                        description="Train a ControlNet (diffusers' ControlNetModel; full, or LoRA with the layout "
                        "parts in full) on the real train scenes' layouts: instances over the stuff classes of "
                        "frames with panoptic labels, in the streetsynth palette, with layout dropout for guidance "
                        "on the condition; checkpoints and resumes from --out; 'rerender --controlnet OUT' uses it.")
    p.add_argument("--real", required=True, help="real dataset repo (config stitched, split train)")
    p.add_argument("--model", required=True, help="SD 1.5 base id or local path, or 'tiny' for a random tiny one")
    p.add_argument("--out", required=True, help="output folder (ControlNetModel.from_pretrained loads it)")
    p.add_argument("--init", default=None, help="ControlNet id or folder to start from (default: the base UNet's encoder)")
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps (default 1000)")
    p.add_argument("--batch-size", type=int, default=1, help="images per process per micro-step (default 1)")
    p.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation micro-steps (default 1)")
    p.add_argument("--lr", type=float, default=1e-5, help="learning rate (default 1e-5)")
    p.add_argument("--lora", action="store_true", help="LoRA on the attention (layout parts trained in full)")
    p.add_argument("--lora-rank", type=int, default=16, help="LoRA rank (default 16)")
    p.add_argument("--resolution", type=parse_size, default="512x1024", help="training canvas HxW, multiples of 8 (default 512x1024)")
    p.add_argument("--layout-dropout", type=float, default=0.1,
                   help="share of pairs trained with an empty layout, for guidance on the condition (default 0.1)")
    p.add_argument("--mixed-precision", choices=("auto", "no", "fp16", "bf16"), default="auto")
    p.add_argument("--checkpoint-every", type=int, default=500, help="checkpoint every N steps (default 500)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even where a GPU is present")
    p.add_argument("--no-resume", action="store_true", help="start over instead of resuming from --out")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run_controlnet)

    _register_grounding(tsub)


def run_maskrcnn(args: argparse.Namespace) -> int:
    from streetsynth.training.compare import resolve_synthetic
    from streetsynth.training.evaluate import format_table
    from streetsynth.training.maskrcnn import train_maskrcnn

    synthetic = [str(resolve_synthetic(p)) for p in _split_list(args.synthetic)]
    cfg = _config(args, synthetic=synthetic, eval_each_epoch=not args.no_eval)
    result = train_maskrcnn(cfg)
    print(f"trained {result.steps} steps; final loss {result.final_loss}; model in {result.model_dir}")
    if result.evals:
        print(format_table(result.evals[-1]["metrics"]))
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from streetsynth.training.compare import CURVES_FILE, DELTA_FILE, RESULTS_FILE, compare_mixes, \
        format_comparison, resolve_synthetic

    from streetsynth.training.compare import control_specs, parse_fractions
    from streetsynth.training.control import parse_controls

    synthetic = [str(resolve_synthetic(p)) for p in _split_list(args.synthetic)]
    cfg = _config(args, synthetic=synthetic, mix="real=1", eval_each_epoch=True)
    if args.sweep:
        return _run_sweep(args, cfg)
    fractions = parse_fractions(args.real_fraction)
    controls = parse_controls(args.control)
    mixes = args.mixes or (["real=1", "real=1,synthetic=0.5", "synthetic=1"] if synthetic else ["real=1"])
    mixes = mixes + control_specs(args.real, controls, Path(args.out) / "controls", cfg.seed)
    rows = compare_mixes(cfg, mixes, args.out, seeds=args.seeds, steps=args.steps, real_fractions=fractions,
                         control_2x=not args.no_control_2x, jobs=args.jobs)
    print(format_comparison(rows))
    from streetsynth.generators.quality import quality_lines

    for line in quality_lines(synthetic):
        print(line)
    print(f"wrote {Path(args.out) / RESULTS_FILE}, {Path(args.out) / CURVES_FILE} and {Path(args.out) / DELTA_FILE}")
    return 0


def _run_sweep(args: argparse.Namespace, cfg) -> int:
    from streetsynth.training.compare import DELTA_FILE, RESULTS_FILE, format_comparison, format_sweep_drops, \
        sweep_filters

    rows = sweep_filters(cfg, args.sweep, args.out, mix=(args.mixes or ["real=1,synthetic=1"])[0],
                         seeds=args.seeds, steps=args.steps, jobs=args.jobs)
    print(format_comparison(rows))
    print(format_sweep_drops(rows))
    print(f"wrote {Path(args.out) / RESULTS_FILE} and {Path(args.out) / DELTA_FILE}")
    return 0


def _inpaint_config(args: argparse.Namespace):
    from streetsynth.training.inpaint import InpaintConfig

    height, width = args.resolution
    return config_from_args(InpaintConfig, args, max_steps=args.steps, lora=not args.full, height=height,
                            width=width, progress=not args.no_progress)


def run_inpaint(args: argparse.Namespace) -> int:
    from streetsynth.training.inpaint import train_inpaint

    result = train_inpaint(_inpaint_config(args))
    print(f"trained {result.steps} steps; final loss {result.final_loss}; pipeline in {result.out}")
    return 0


def run_controlnet(args: argparse.Namespace) -> int:
    from streetsynth.training.controlnet import ControlNetConfig, train_controlnet

    height, width = args.resolution
    cfg = config_from_args(ControlNetConfig, args, max_steps=args.steps, height=height, width=width,
                           resume=not args.no_resume, progress=not args.no_progress)
    result = train_controlnet(cfg)
    print(f"trained {result.steps} steps; final loss {result.final_loss}; ControlNet in {result.out}")
    return 0


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in _split_list(text))


def _register_grounding(tsub) -> None:
    p = tsub.add_parser("grounding", help="train a grounding head on a synthetic version's masks",
                        description="Cache the denoiser's cross-attention and UNet features of every row of a "
                        "synthetic version (resumable, per row), then train a small convolutional head that predicts "
                        "each prompt object's mask from them (several objects per image, many epochs); checkpoints "
                        "and resumes from --out. `ground --head OUT` uses it.")
    p.add_argument("--data", required=True, help="synthetic version folder (or store: its newest) with masks")
    p.add_argument("--out", required=True, help="output folder (head/, checkpoints/, metrics.jsonl, features/)")
    p.add_argument("--features", default=None, help="feature cache folder (default OUT/features)")
    p.add_argument("--model", default=None, help="text-to-image model the features come from; 'tiny' (default) "
                   "= tiny random pipeline; ground must use the same")
    p.add_argument("--revision", default=None)
    p.add_argument("--timesteps", type=_ints, default=None, help="noise timesteps, comma-separated (default 200)")
    p.add_argument("--blocks", type=_ints, default=None, help="UNet up blocks read, comma-separated (default -2,-1)")
    p.add_argument("--mask-stride", type=int, default=None, help="masks learned at image size / this (default 2)")
    p.add_argument("--epochs", type=int, default=None, help="default 10")
    p.add_argument("--batch-size", type=int, default=None, help="objects per step (default 8)")
    p.add_argument("--lr", type=float, default=None, help="AdamW learning rate (default 1e-3)")
    p.add_argument("--hidden", type=int, default=None, help="head width (default 32)")
    p.add_argument("--loss", choices=("bce", "dice", "dice+bce", "logcosh+bce"), default=None,
                   help="default dice+bce")
    p.add_argument("--threshold", type=float, default=None, help="attention threshold of the baseline (default 0.5)")
    p.add_argument("--val-fraction", type=float, default=None, help="rows held out for mIoU (default 0.2)")
    p.add_argument("--max-rows", type=int, default=None, help="use at most this many rows")
    p.add_argument("--checkpoint-every", type=int, default=None, help="checkpoint every N steps (default 50)")
    p.add_argument("--seed", type=int, default=None, help="run seed (default 0)")
    p.add_argument("--device", default=None, help="torch device (default cpu)")
    p.add_argument("--no-resume", action="store_true", help="start over instead of resuming from --out")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run_grounding)


def run_grounding(args: argparse.Namespace) -> int:
    from streetsynth.training.grounding import GroundingConfig, train_grounding

    r = train_grounding(config_from_args(GroundingConfig, args, resume=not args.no_resume,
                                         progress=not args.no_progress))
    m = r.metrics
    print(f"trained {r.steps} steps; final loss {r.final_loss}; head in {r.head}")
    print(f"held-out mIoU: head {m['head_miou']}, attention threshold {m['threshold_miou']} ({m['objects']} objects)")
    return 0
