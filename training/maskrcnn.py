"""Train Mask R-CNN on a mix of the real and synthetic datasets, under accelerate.

The recipe follows torchvision's detection reference: SGD with momentum, linear warm-up then a
cosine decay, a stop on a non-finite loss, checkpoints of model + optimizer + scheduler + step +
config together. Three things make it learn at every size (see README "Training"):

- the schedule spans the steps the run will take (``--max-steps`` included) and the warm-up is
  at most a fifth of them, so a short run reaches its peak learning rate;
- batch-norm statistics are recomputed on a fixed set of training images at the end of every
  epoch, before the checkpoint and the evaluation (training/norm.py);
- anchors are fitted to the training boxes at the detector's resize when training from scratch,
  and a resize at which a class cannot be matched is refused (training/anchors.py). Layout of ``out``::

    checkpoints/step-NNNNNNNN/   model/ (detector.save_checkpoint_dir), trainer_state.pt, trainer.json
    model/                       the final model, loadable with streetsynth.models.detector.load_detector
    metrics.jsonl                one JSON record per logged step ("train") and per evaluation ("eval")
    eval.json                    the last evaluation on the REAL validation split

A run started again with the same ``out`` resumes from its newest checkpoint and continues the
same step count (the sampler's draws are derived from the seed and epoch, so the data order
after a resume is the one the uninterrupted run would have seen).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from streetsynth import schema
from streetsynth.repo import atomic_write_text, load_split, read_info, writing
from streetsynth.seeds import derive_seed
from streetsynth.versions import fingerprint

from .checkpoints import (STATE_FILE, TRAINER_FILE, checkpoint_step, commit_checkpoint, latest_checkpoint, staged_checkpoint,
                          trim_jsonl)
from .data import (FILTERS, DetectionSources, MixSampler, ScoreFilter, check_policy, collate, filter_synthetic, format_filter,
                   format_mix, parse_mix, select_segments)
from .evaluate import evaluate_model, format_table, write_metrics
from .norm import recompute_norm_stats

MODEL_DIR = "model"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.json"
#: Config fields that may change between a run and its resume (they do not change what is learnt).
RESUMABLE_FIELDS = ("epochs", "num_workers", "progress", "log_every", "eval_each_epoch",
                    "max_eval_rows", "eval_batch_size", "resume", "keep_checkpoints")


class NonFiniteLossError(ValueError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """One Mask R-CNN training run."""

    real: str  # real dataset repo: config "stitched", splits "train" (training) and "validation" (AP)
    out: str  # output folder (checkpoints, final model, metrics.jsonl, eval.json)
    synthetic: list[str] = field(default_factory=list)  # synthetic version folders, read as one "synthetic" source
    mix: str = "real=1"  # sampling weights over the sources, e.g. "real=1.0,synthetic=0.5"
    epochs: int = 1  # passes of steps_per_epoch steps
    steps_per_epoch: int | None = None  # optimizer steps per epoch; None = one pass over the weighted sources
    max_steps: int | None = None  # stop after this many steps in all (the lr schedule ends there)
    batch_size: int = 2  # images per process per step
    lr: float = 0.02  # peak learning rate (SGD)
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 1e-4  # SGD weight decay
    warmup_steps: int = 100  # linear warm-up from lr * warmup_factor to lr (at most a fifth of the run)
    warmup_factor: float = 0.001  # starting fraction of lr during warm-up
    arch: str = "v2"  # detector architecture for streetsynth.models.detector.build_maskrcnn: v2, v1, mobilenet, tiny
    weights: str | None = None  # detector weights (name or path), None = random init
    weights_backbone: str | None = None  # backbone weights (name or path), None = random init
    min_size: int | None = None  # the detector's resize: shorter side (None = the architecture's default)
    max_size: int | None = None  # the detector's resize: longest side cap (None = the architecture's default)
    anchors: str = "auto"  # "auto": fit to the training boxes when training from scratch; "default": the arch's
    anchor_sizes: list[list[float]] | None = None  # anchor sizes per feature map (set by "auto"; None = the arch's)
    aspect_ratios: list[float] | None = None  # anchor height/width ratios (set by "auto"; None = the arch's)
    norm_images: int = 32  # training images the batch-norm statistics are recomputed on before each eval (0: off)
    real_fraction: float = 1.0  # share of the real train segments used, drawn per seed as whole segments
    augment: str = "hflip"  # augmentation preset: none, hflip, hflip_scale
    missing_masks: str = "drop-row"  # objects without mask pixels: drop-row, box-fill or skip-object (see data.py)
    max_seam_score: float | None = None  # load-time filter: drop synthetic rows with a seam score above this
    min_instance_score: float | None = None  # load-time filter: drop synthetic instances with a detector score below
    min_sam_iou: float | None = None  # load-time filter: drop synthetic instances with a SAM predicted IoU below
    seed: int = 0  # run seed; sampler draws and augmentations derive from it
    mixed_precision: str = "auto"  # "auto" (bf16/fp16 on a GPU, none on CPU), "no", "fp16", "bf16"
    cpu: bool = False  # force the CPU even where a GPU is present
    num_workers: int = 0  # DataLoader worker processes
    log_every: int = 1  # write a train record to metrics.jsonl every this many steps
    eval_each_epoch: bool = True  # box/mask AP on the real validation split after every epoch
    eval_batch_size: int = 2  # images per evaluation batch
    max_eval_rows: int | None = None  # evaluate on at most this many validation rows
    resume: bool = True  # continue from the newest checkpoint in out/checkpoints
    keep_checkpoints: int = 2  # keep this many newest checkpoints (older ones are deleted)
    progress: bool = True  # show progress bars


@dataclass
class TrainResult:
    """What a run produced."""

    out: Path
    steps: int
    final_loss: float | None
    model_dir: Path
    evals: list[dict[str, Any]]
    resumed_from: int | None = None


def dataset_info(path: str | Path) -> dict[str, Any]:
    """What a run records about a dataset it trained on, from its meta/info.json."""
    info = read_info(path)
    return {"path": str(path), "kind": info.get("kind"), "version": info.get("version"),
            "fingerprint": info.get("fingerprint")}


def resolve_mixed_precision(value: str, cpu: bool) -> str:
    """``auto`` -> bf16 on a GPU that supports it, fp16 on other GPUs, ``no`` on the CPU."""
    if value not in ("auto", "no", "fp16", "bf16"):
        raise ValueError(f"unknown mixed precision {value!r}; known: auto, no, fp16, bf16")
    if value != "auto":
        return value
    if cpu or not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def warmup_length(warmup_steps: int, total_steps: int) -> int:
    """The warm-up a run of ``total_steps`` gets: ``warmup_steps``, at most a fifth of the run."""
    return max(0, min(warmup_steps, total_steps // 5))


def lr_lambda(warmup_steps: int, warmup_factor: float, total_steps: int):
    """Multiplier of the peak lr at a step: linear warm-up, then cosine decay to 0 at the end.

    The warm-up is shortened to at most a fifth of ``total_steps`` so the peak is always reached.
    """
    warmup_steps = warmup_length(warmup_steps, total_steps)

    def f(step: int) -> float:
        if step < warmup_steps:
            alpha = step / max(warmup_steps, 1)
            return warmup_factor * (1 - alpha) + alpha
        span = max(total_steps - warmup_steps, 1)
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup_steps, span) / span))
    return f


def training_step(model: torch.nn.Module, images: list[torch.Tensor], targets: list[dict], optimizer,
                  accelerator: Accelerator | None = None, step: int = 0) -> dict[str, float]:
    """One optimizer step of a torchvision detector in train mode; returns the losses as floats.

    Raises NonFiniteLossError (naming the step and each loss term) if the loss is NaN or inf.
    """
    loss_dict = model(images, targets)
    loss = sum(loss_dict.values())
    reduced = accelerator.reduce(loss.detach(), "mean") if accelerator is not None else loss.detach()
    if not torch.isfinite(reduced):
        terms = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in loss_dict.items())
        raise NonFiniteLossError(f"non-finite loss {float(reduced)} at step {step} ({terms}); "
                                 "lower --lr or raise --warmup-steps")
    optimizer.zero_grad(set_to_none=True)
    if accelerator is not None:
        accelerator.backward(loss)
    else:
        loss.backward()
    optimizer.step()
    return {"loss": float(reduced), **{k: float(v.detach()) for k, v in loss_dict.items()}}


def _settings_fingerprint(config: TrainConfig) -> str:
    # Unset load-time filters stay out, so runs checkpointed before the filters existed still resume.
    return fingerprint({k: v for k, v in asdict(config).items()
                        if k not in RESUMABLE_FIELDS and k != "out" and not (k in FILTERS and v is None)})


def _save_checkpoint(model, optimizer, scheduler, config: TrainConfig, step: int, epoch: int,
                     datasets_used: list[dict], out: Path, loss: float | None = None) -> Path:
    from streetsynth.models.detector import save_checkpoint_dir

    with staged_checkpoint(out, step) as tmp:
        save_checkpoint_dir(model, _detector_config(config), tmp / MODEL_DIR)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / STATE_FILE)
    record = {"step": step, "epoch": epoch, "config": asdict(config), "settings": _settings_fingerprint(config),
              "datasets": datasets_used, "loss": loss}
    return commit_checkpoint(tmp, record, config.keep_checkpoints)


def _detector_config(config: TrainConfig) -> dict[str, Any]:
    return {"arch": config.arch, "num_classes": len(schema.CLASS_NAMES) + 1, "class_names": list(schema.CLASS_NAMES),
            "min_size": config.min_size, "max_size": config.max_size, "anchor_sizes": config.anchor_sizes,
            "aspect_ratios": config.aspect_ratios, "frozen_norm": _frozen_norm(config)}


def _frozen_norm(config: TrainConfig) -> bool:
    """v2 from pretrained weights trains with a frozen backbone batch norm (detector.freeze_backbone_norm)."""
    return config.arch == "v2" and (config.weights is not None or config.weights_backbone is not None)


def _build_model(config: TrainConfig) -> torch.nn.Module:
    from streetsynth.models.detector import build_maskrcnn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init"))
        return build_maskrcnn(arch=config.arch, num_classes=len(schema.CLASS_NAMES) + 1, weights=config.weights,
                              weights_backbone=config.weights_backbone, min_size=config.min_size,
                              max_size=config.max_size, anchor_sizes=config.anchor_sizes,
                              aspect_ratios=config.aspect_ratios, frozen_norm=_frozen_norm(config))


#: What ``generation.labeler`` starts with when a version's invented region was never labelled.
UNLABELLED_PREFIX = "carried-from-source"


def check_synthetic_labelled(path: str | Path, rows: Any = None) -> None:
    """ValueError if a synthetic version's invented region was never labelled.

    Such a version carries only the source's objects clipped to the known region (generated without
    ``--detector/--sam``): every object the model invented would be taught as background.
    """
    info = read_info(path)
    labeler = info.get("labeler")
    if labeler is None and rows is not None and len(rows):
        labeler = (rows[0].get("generation") or {}).get("labeler")
    if labeler and str(labeler).startswith(UNLABELLED_PREFIX):
        raise ValueError(f"synthetic version {info.get('version', '?')} ({path}) was generated without a labeler "
                         f"(labeler {labeler!r}): its invented region has no labels, so the objects there would "
                         "be learnt as background. Generate it with --detector and --sam, or label it with "
                         "`streetsynth label`, and train on that version.")


def _load_sources(config: TrainConfig) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The real train rows (the run's share of segments) and the synthetic rows after the load-time score
    filter, and what the filter dropped (None without synthetic rows)."""
    import datasets

    real = load_split(config.real, schema.STITCHED, "train")
    sources: dict[str, Any] = {"real": select_segments(real, config.real_fraction, config.seed)}
    syn = []
    for p in config.synthetic:
        rows = load_split(p, schema.SYNTHETIC, schema.SYNTHETIC_SPLIT)
        check_synthetic_labelled(p, rows)
        syn.append(rows)
    if not syn:
        sources["synthetic"] = []
        return sources, None
    rows = syn[0] if len(syn) == 1 else datasets.concatenate_datasets(syn)
    sources["synthetic"], filtered = filter_synthetic(rows, ScoreFilter.from_config(config))
    return sources, filtered


def _segment_rows(rows):
    return rows.select_columns(["segment"]) if hasattr(rows, "select_columns") else rows


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with writing(path), path.open("a") as fh:  # a full disk names the file
        fh.write(json.dumps(record) + "\n")


def check_config(config: TrainConfig) -> None:
    """ValueError naming the flag for settings that would train nothing or divide by zero."""
    for flag, value in (("--epochs", config.epochs), ("--batch-size", config.batch_size),
                        ("--steps-per-epoch", config.steps_per_epoch), ("--max-steps", config.max_steps),
                        ("--eval-batch-size", config.eval_batch_size)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if not 0 < config.real_fraction <= 1:
        raise ValueError(f"--real-fraction must be in (0, 1], got {config.real_fraction}")
    if config.anchors not in ("auto", "default"):
        raise ValueError(f"--anchors must be auto or default, got {config.anchors!r}")
    check_policy(config.missing_masks)


def label_command(repo: str | Path) -> str:
    """The one command that gives a repo's box-only objects their masks."""
    return f"streetsynth label --data {repo} --prompt-boxes ground-truth --out STORE"


def _check_masks(config: TrainConfig, sources: DetectionSources, mix: dict[str, float]) -> None:
    """ValueError, naming the command that fixes it, when the policy leaves a weighted source empty."""
    sizes = sources.sizes()
    for name, c in sources.counts.items():
        if mix.get(name, 0) > 0 and c["rows"] and not sizes[name]:
            repo = config.real if name == "real" else ",".join(config.synthetic)
            raise ValueError(f"every {name} row has objects without masks and the {config.missing_masks} policy "
                             f"drops them all; give them masks first: `{label_command(repo)}` "
                             "(or pass --missing-masks box-fill)")


def _fit_detector(config: TrainConfig, sources: DetectionSources, mix: dict[str, float]) -> TrainConfig:
    """The config with its resize and anchors fitted to the training boxes (training/anchors.py)."""
    if config.anchors != "auto" or config.anchor_sizes is not None:
        return config
    from .anchors import plan_anchors

    live = [sources.sources[k] for k in sources.names if mix.get(k, 0) > 0 and len(sources.sources[k])]
    if not live:
        return config
    derive = config.weights is None and config.arch != "mobilenet"
    plan = plan_anchors(live[0], config.arch, config.min_size, config.max_size, derive)
    return replace(config, min_size=plan["min_size"], max_size=plan["max_size"],
                   anchor_sizes=plan["anchor_sizes"], aspect_ratios=plan["aspect_ratios"])


def _norm_batches(sources: DetectionSources, sizes: dict[str, int], mix: dict[str, float], config: TrainConfig):
    """The fixed training batches the batch-norm statistics are recomputed on (same draws every time)."""
    if config.norm_images <= 0:
        return []
    keys = list(MixSampler(sizes, mix, config.norm_images, derive_seed(config.seed, "norm")))
    return [collate([sources[k] for k in keys[i:i + config.batch_size]])
            for i in range(0, len(keys), config.batch_size)]


@dataclass
class _Run:
    """Everything a run's epochs share."""

    config: TrainConfig
    out: Path
    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: Any
    scheduler: Any
    loader: Any
    steps_per_epoch: int
    total_steps: int
    norm_batches: list
    val_rows: Any
    datasets_used: list[dict]
    mp: str
    real_segments: list[str] = field(default_factory=list)
    synthetic_filter: dict[str, Any] | None = None
    step: int = 0
    resumed_from: int | None = None
    last_loss: float | None = None
    evals: list[dict[str, Any]] = field(default_factory=list)


def _setup(config: TrainConfig, model: torch.nn.Module | None) -> _Run:
    """Load the data, fit resize and anchors, build (or resume) model, optimizer and schedule."""
    check_config(config)
    mix = parse_mix(config.mix)
    if mix["synthetic"] > 0 and not config.synthetic:
        raise ValueError(f"mix {config.mix!r} weighs synthetic data but no synthetic repo was given")
    datasets_used = [dataset_info(config.real)] + (
        [dataset_info(p) for p in config.synthetic] if mix["synthetic"] > 0 else [])
    mp = resolve_mixed_precision(config.mixed_precision, config.cpu)
    accelerator = Accelerator(mixed_precision=mp, cpu=config.cpu)
    loaded, filtered = _load_sources(config)
    sources = DetectionSources(loaded, config.augment, config.missing_masks)
    sizes = sources.sizes()
    if accelerator.is_main_process:
        print("\n".join(line for line in (format_filter(filtered or {}), sources.report()) if line))
    _check_masks(config, sources, mix)
    if model is None:
        config = _fit_detector(config, sources, mix)
    per_step = config.batch_size * accelerator.num_processes
    live_rows = sum(n for k, n in sizes.items() if mix.get(k, 0) > 0)
    steps_per_epoch = config.steps_per_epoch or max(1, math.ceil(live_rows / per_step))
    horizon = config.epochs * steps_per_epoch
    total_steps = horizon if config.max_steps is None else min(config.max_steps, horizon)
    sampler = MixSampler(sizes, mix, steps_per_epoch * per_step, config.seed)
    loader = DataLoader(sources, batch_size=config.batch_size, sampler=sampler, collate_fn=collate,
                        num_workers=config.num_workers)
    val_rows = None
    if config.eval_each_epoch:
        val_rows = load_split(config.real, schema.STITCHED, "validation")
        if config.max_eval_rows is not None:
            val_rows = val_rows.select(range(min(config.max_eval_rows, len(val_rows))))
    model = model if model is not None else _build_model(config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(config.warmup_steps, config.warmup_factor, total_steps))
    run = _Run(config, Path(config.out), accelerator, model, optimizer, scheduler, loader, steps_per_epoch,
               total_steps, _norm_batches(sources, sizes, mix, config), val_rows, datasets_used, mp,
               sorted({str(r["segment"]) for r in _segment_rows(sources.sources["real"])}), filtered)
    _resume(run)
    run.model, run.optimizer, run.loader = accelerator.prepare(run.model, run.optimizer, run.loader)
    return run


def _resume(run: _Run) -> None:
    """Load the newest checkpoint of ``run.out`` (same settings only) into the run."""
    ckpt = latest_checkpoint(run.out) if run.config.resume else None
    if ckpt is None:
        return
    record = json.loads((ckpt / TRAINER_FILE).read_text())
    if record.get("settings") != _settings_fingerprint(run.config):
        raise ValueError(f"{run.out} holds a run with other settings ({ckpt}); use another --out or the same "
                         "settings to resume it")
    run.model.load_state_dict(load_file(str(ckpt / MODEL_DIR / "model.safetensors")))
    state = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.step = run.resumed_from = int(record["step"])
    run.last_loss = record.get("loss")  # a rerun of a finished run trains nothing: its record keeps the loss


def _train_epoch(run: _Run, epoch: int, bar) -> None:
    """The steps of one epoch (from where a resumed run left off)."""
    acc, config = run.accelerator, run.config
    per_step = config.batch_size * acc.num_processes
    skip = run.step - epoch * run.steps_per_epoch
    epoch_loader = acc.skip_first_batches(run.loader, skip) if skip else run.loader
    # accelerate's loaders pass their epoch on to the sampler when iterated.
    epoch_loader.set_epoch(epoch)
    tick = time.perf_counter()
    for images, targets in epoch_loader:
        if run.step >= run.total_steps:
            break
        # The detector samples proposals with the global generator: seed it per step and process.
        torch.manual_seed(derive_seed(config.seed, f"step/{acc.process_index}", run.step))
        losses = training_step(run.model, images, targets, run.optimizer, acc, run.step)
        run.scheduler.step()
        run.step += 1
        run.last_loss = losses["loss"]
        now = time.perf_counter()
        ips = per_step / max(now - tick, 1e-9)
        tick = now
        bar.update(1)
        bar.set_postfix(loss=f"{run.last_loss:.3f}", img_s=f"{ips:.1f}")
        if acc.is_main_process and run.step % config.log_every == 0:
            _append_jsonl(run.out / METRICS_FILE, {"type": "train", "step": run.step, "epoch": epoch, **losses,
                                                   "lr": run.scheduler.get_last_lr()[0], "images_per_s": ips})


def _end_epoch(run: _Run, epoch: int) -> None:
    """Recompute the batch-norm statistics, evaluate on the real validation split, and checkpoint."""
    acc, config = run.accelerator, run.config
    acc.wait_for_everyone()
    unwrapped = acc.unwrap_model(run.model)
    recompute_norm_stats(unwrapped, run.norm_batches, acc.device)
    # Evaluate before the checkpoint: a run killed between the two resumes from the previous checkpoint and
    # evaluates this epoch again (its record is trimmed), instead of resuming past an evaluation never written.
    if run.val_rows is not None:
        metrics = evaluate_model(unwrapped, run.val_rows, config.eval_batch_size, acc.device,
                                 progress=config.progress, accelerator=acc)
        unwrapped.train()
        if acc.is_main_process:
            record = {"type": "eval", "step": run.step, "epoch": epoch + 1, "box_AP": metrics["box"]["AP"],
                      "mask_AP": (metrics["mask"] or {}).get("AP"), "metrics": metrics}
            run.evals.append(record)
            _append_jsonl(run.out / METRICS_FILE, record)
            write_metrics(metrics, run.out / EVAL_FILE)
            if config.progress:
                tqdm.write(f"epoch {epoch + 1} step {run.step}\n{format_table(metrics)}")
    if acc.is_main_process:
        _save_checkpoint(unwrapped, run.optimizer, run.scheduler, config, run.step, epoch + 1, run.datasets_used,
                         run.out, run.last_loss)
    acc.wait_for_everyone()


def _finish(run: _Run) -> None:
    """The final checkpoint (if the last epoch was cut short), the model folder and run.json."""
    from streetsynth.models.detector import save_checkpoint_dir

    acc, config = run.accelerator, run.config
    unwrapped = acc.unwrap_model(run.model)
    last = latest_checkpoint(run.out)
    if last is None or checkpoint_step(last) != run.step:
        recompute_norm_stats(unwrapped, run.norm_batches, acc.device)
        _save_checkpoint(unwrapped, run.optimizer, run.scheduler, config, run.step,
                         run.step // run.steps_per_epoch, run.datasets_used, run.out, run.last_loss)
    save_checkpoint_dir(unwrapped, _detector_config(config), run.out / MODEL_DIR)
    atomic_write_text(run.out / "run.json", json.dumps({
        "config": asdict(config), "steps": run.step, "steps_per_epoch": run.steps_per_epoch,
        "warmup_steps": warmup_length(config.warmup_steps, run.total_steps), "num_processes": acc.num_processes,
        "mixed_precision": run.mp, "datasets": run.datasets_used, "real_segments": run.real_segments,
        "synthetic_filter": run.synthetic_filter,
        "final_loss": run.last_loss}, indent=2) + "\n")


def train_maskrcnn(config: TrainConfig, model: torch.nn.Module | None = None) -> TrainResult:
    """Train (or resume) one run; ``model`` is built from the config unless injected."""
    run = _setup(config, model)
    main = run.accelerator.is_main_process
    if main:
        run.out.mkdir(parents=True, exist_ok=True)
        # Records past the checkpoint (a run killed mid-epoch) are written again by this run.
        trim_jsonl(run.out / METRICS_FILE, run.step)
    bar = tqdm(total=run.total_steps, initial=run.step, desc=f"maskrcnn {format_mix(parse_mix(config.mix))}",
               disable=not (main and config.progress))
    run.model.train()
    for epoch in range(run.step // run.steps_per_epoch, math.ceil(run.total_steps / run.steps_per_epoch)):
        if run.step >= run.total_steps:
            break
        _train_epoch(run, epoch, bar)
        _end_epoch(run, epoch)
    bar.close()
    if main:
        _finish(run)
    run.accelerator.wait_for_everyone()
    return TrainResult(out=run.out, steps=run.step, final_loss=run.last_loss, model_dir=run.out / MODEL_DIR,
                       evals=run.evals, resumed_from=run.resumed_from)


def read_metrics(out: str | Path) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl (empty if none)."""
    path = Path(out) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
