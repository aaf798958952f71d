"""Train Mask R-CNN on a mix of the real and synthetic datasets, under accelerate.

The recipe follows torchvision's detection reference: SGD with momentum, linear warm-up then a
cosine decay, a stop on a non-finite loss, checkpoints of model + optimizer + scheduler + step +
config together. Layout of ``out``::

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from streetsynth import schema
from streetsynth.repo import atomic_write_text, load_split, read_info
from streetsynth.seeds import derive_seed
from streetsynth.versions import fingerprint

from .checkpoints import (STATE_FILE, TRAINER_FILE, checkpoint_step, commit_checkpoint, latest_checkpoint, staging_dir,
                          trim_jsonl)
from .data import DetectionSources, MixSampler, check_policy, collate, format_mix, parse_mix
from .evaluate import evaluate_model, format_table, write_metrics

MODEL_DIR = "model"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.json"
#: Config fields that may change between a run and its resume (they do not change what is learnt).
RESUMABLE_FIELDS = ("epochs", "max_steps", "num_workers", "progress", "log_every", "eval_each_epoch",
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
    max_steps: int | None = None  # stop after this many steps in all (the lr schedule still spans all epochs)
    batch_size: int = 2  # images per process per step
    lr: float = 0.02  # peak learning rate (SGD)
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 1e-4  # SGD weight decay
    warmup_steps: int = 100  # linear warm-up from lr * warmup_factor to lr over this many steps
    warmup_factor: float = 0.001  # starting fraction of lr during warm-up
    arch: str = "v2"  # detector architecture for streetsynth.models.detector.build_maskrcnn: v2, v1, mobilenet, tiny
    weights: str | None = None  # detector weights (name or path), None = random init
    weights_backbone: str | None = None  # backbone weights (name or path), None = random init
    min_size: int | None = None  # the detector's resize: shorter side (None = the architecture's default)
    max_size: int | None = None  # the detector's resize: longest side cap (None = the architecture's default)
    augment: str = "hflip"  # augmentation preset: none, hflip, hflip_scale
    missing_masks: str = "drop-row"  # objects without mask pixels: drop-row, box-fill or skip-object (see data.py)
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


def lr_lambda(warmup_steps: int, warmup_factor: float, total_steps: int):
    """Multiplier of the peak lr at a step: linear warm-up, then cosine decay to 0 at the end."""
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
    return fingerprint({k: v for k, v in asdict(config).items() if k not in RESUMABLE_FIELDS and k != "out"})


def _save_checkpoint(model, optimizer, scheduler, config: TrainConfig, step: int, epoch: int,
                     datasets_used: list[dict], out: Path) -> Path:
    from streetsynth.models.detector import save_checkpoint_dir

    tmp = staging_dir(out, step)
    save_checkpoint_dir(model, _detector_config(config), tmp / MODEL_DIR)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / STATE_FILE)
    record = {"step": step, "epoch": epoch, "config": asdict(config), "settings": _settings_fingerprint(config),
              "datasets": datasets_used}
    return commit_checkpoint(tmp, record, config.keep_checkpoints)


def _detector_config(config: TrainConfig) -> dict[str, Any]:
    return {"arch": config.arch, "num_classes": len(schema.CLASS_NAMES) + 1, "class_names": list(schema.CLASS_NAMES),
            "min_size": config.min_size, "max_size": config.max_size}


def _build_model(config: TrainConfig) -> torch.nn.Module:
    from streetsynth.models.detector import build_maskrcnn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init"))
        return build_maskrcnn(arch=config.arch, num_classes=len(schema.CLASS_NAMES) + 1, weights=config.weights,
                              weights_backbone=config.weights_backbone, min_size=config.min_size,
                              max_size=config.max_size)


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


def _load_sources(config: TrainConfig) -> dict[str, Any]:
    import datasets

    sources: dict[str, Any] = {"real": load_split(config.real, schema.STITCHED, "train")}
    syn = []
    for p in config.synthetic:
        rows = load_split(p, schema.SYNTHETIC, schema.SYNTHETIC_SPLIT)
        check_synthetic_labelled(p, rows)
        syn.append(rows)
    if syn:
        sources["synthetic"] = syn[0] if len(syn) == 1 else datasets.concatenate_datasets(syn)
    else:
        sources["synthetic"] = []
    return sources


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def train_maskrcnn(config: TrainConfig, model: torch.nn.Module | None = None) -> TrainResult:
    """Train (or resume) one run; ``model`` is built from the config unless injected."""
    out = Path(config.out)
    mix = parse_mix(config.mix)
    check_policy(config.missing_masks)
    if mix["synthetic"] > 0 and not config.synthetic:
        raise ValueError(f"mix {config.mix!r} weighs synthetic data but no synthetic repo was given")
    datasets_used = [dataset_info(config.real)] + (
        [dataset_info(p) for p in config.synthetic] if mix["synthetic"] > 0 else [])
    mp = resolve_mixed_precision(config.mixed_precision, config.cpu)
    accelerator = Accelerator(mixed_precision=mp, cpu=config.cpu)
    main = accelerator.is_main_process

    sources = DetectionSources(_load_sources(config), config.augment, config.missing_masks)
    sizes = sources.sizes()
    if main:
        print(sources.report())
    for name, c in sources.counts.items():
        if mix.get(name, 0) > 0 and c["rows"] and not sizes[name]:
            raise ValueError(f"every {name} row has objects without masks and the {config.missing_masks} policy "
                             "drops them all; label the masks first (SAM from boxes) or pass --missing-masks box-fill")
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
        optimizer, lr_lambda(config.warmup_steps, config.warmup_factor, horizon))

    step, resumed_from = 0, None
    ckpt = latest_checkpoint(out) if config.resume else None
    if ckpt is not None:
        record = json.loads((ckpt / TRAINER_FILE).read_text())
        if record.get("settings") != _settings_fingerprint(config):
            raise ValueError(f"{out} holds a run with other settings ({ckpt}); use another --out or the same "
                             "settings to resume it")
        model.load_state_dict(load_file(str(ckpt / MODEL_DIR / "model.safetensors")))
        state = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = resumed_from = int(record["step"])

    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    metrics_path = out / METRICS_FILE
    if main:
        out.mkdir(parents=True, exist_ok=True)
        # Records past the checkpoint (a run killed mid-epoch) are written again by this run.
        trim_jsonl(metrics_path, step)
    evals: list[dict[str, Any]] = []
    last_loss = None
    bar = tqdm(total=total_steps, initial=step, desc=f"maskrcnn {format_mix(mix)}",
               disable=not (main and config.progress))
    model.train()
    start_epoch = step // steps_per_epoch
    for epoch in range(start_epoch, math.ceil(total_steps / steps_per_epoch)):
        if step >= total_steps:
            break
        skip = step - epoch * steps_per_epoch
        epoch_loader = accelerator.skip_first_batches(loader, skip) if skip else loader
        # accelerate's loaders pass their epoch on to the sampler when iterated.
        epoch_loader.set_epoch(epoch)
        tick = time.perf_counter()
        for images, targets in epoch_loader:
            if step >= total_steps:
                break
            # The detector samples proposals with the global generator: seed it per step and process.
            torch.manual_seed(derive_seed(config.seed, f"step/{accelerator.process_index}", step))
            losses = training_step(model, images, targets, optimizer, accelerator, step)
            scheduler.step()
            step += 1
            last_loss = losses["loss"]
            now = time.perf_counter()
            ips = per_step / max(now - tick, 1e-9)
            tick = now
            bar.update(1)
            bar.set_postfix(loss=f"{last_loss:.3f}", img_s=f"{ips:.1f}")
            if main and step % config.log_every == 0:
                _append_jsonl(metrics_path, {"type": "train", "step": step, "epoch": epoch, **losses,
                                             "lr": scheduler.get_last_lr()[0], "images_per_s": ips})
        accelerator.wait_for_everyone()
        unwrapped = accelerator.unwrap_model(model)
        if main:
            _save_checkpoint(unwrapped, optimizer, scheduler, config, step, epoch + 1, datasets_used, out)
        if val_rows is not None:
            metrics = evaluate_model(unwrapped, val_rows, config.eval_batch_size, accelerator.device,
                                     progress=config.progress, accelerator=accelerator)
            unwrapped.train()
            if main:
                record = {"type": "eval", "step": step, "epoch": epoch + 1, "box_AP": metrics["box"]["AP"],
                          "mask_AP": (metrics["mask"] or {}).get("AP"), "metrics": metrics}
                evals.append(record)
                _append_jsonl(metrics_path, record)
                write_metrics(metrics, out / EVAL_FILE)
                if config.progress:
                    tqdm.write(f"epoch {epoch + 1} step {step}\n{format_table(metrics)}")
        accelerator.wait_for_everyone()
    bar.close()
    model_dir = out / MODEL_DIR
    if main:
        from streetsynth.models.detector import save_checkpoint_dir

        unwrapped = accelerator.unwrap_model(model)
        last = latest_checkpoint(out)
        if last is None or checkpoint_step(last) != step:
            _save_checkpoint(unwrapped, optimizer, scheduler, config, step, step // steps_per_epoch,
                             datasets_used, out)
        save_checkpoint_dir(unwrapped, _detector_config(config), model_dir)
        atomic_write_text(out / "run.json", json.dumps({"config": asdict(config), "steps": step,
                                                        "steps_per_epoch": steps_per_epoch,
                                                        "num_processes": accelerator.num_processes,
                                                        "mixed_precision": mp, "datasets": datasets_used,
                                                        "final_loss": last_loss}, indent=2) + "\n")
    accelerator.wait_for_everyone()
    return TrainResult(out=out, steps=step, final_loss=last_loss, model_dir=model_dir, evals=evals,
                       resumed_from=resumed_from)


def read_metrics(out: str | Path) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl (empty if none)."""
    path = Path(out) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
