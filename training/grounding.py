"""Train a grounding head: masks of prompt objects from the denoiser's attention and features.

The head (:class:`~streetsynth.models.grounding_head.GroundingHead`) is a small convolutional
decoder. For one object of one image it reads that object's cross-attention maps and the UNet's
block outputs at the cached timesteps (on the latent grid), upsamples, and predicts the object's
mask at the image size / ``mask_stride``.
It learns from a synthetic version whose rows carry masks (the labeler's, or ground truth in an
oracle version); features come from the cache of :mod:`.grounding_features`, so training never
runs the diffusion model once the cache is complete. Several objects per image, many epochs,
a choice of loss (:data:`LOSSES`), checkpoints every ``checkpoint_every`` steps and resume after
a kill with the same batches (each epoch's order derives from the run seed).

Layout of ``out``::

    features/                   the feature cache (unless --features names another folder)
    head/head.safetensors       the trained head; head/head.json: its shape, the FeatureSpec, metrics
    checkpoints/step-NNNNNNNN/  head, optimizer, trainer.json (resume)
    metrics.jsonl               one record per optimizer step
    training.json               config, steps, losses, held-out mIoU of the head and of thresholding
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from streetsynth.digest import file_digest
from streetsynth.models.grounding_head import HEAD_DIR, HEAD_FILE, FeatureSpec, GroundingHead, save_head
from streetsynth.repo import atomic_write_text
from streetsynth.seeds import derive_seed

from .checkpoints import STATE_FILE, TRAINER_FILE, commit_checkpoint, latest_checkpoint, staging_dir, trim_jsonl
from .grounding_features import SETTINGS_FILE, cache_rows, load_row, open_cache, spec_settings



def _dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice loss per item (smoothed, so an empty target with an empty prediction costs 0)."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    return 1.0 - (2.0 * (p * t).sum(1) + 1.0) / (p.sum(1) + t.sum(1) + 1.0)


def _bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, target)


#: Loss name -> function of (logits, target) -> scalar; the choices of Grounded Diffusers.
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "bce": _bce,
    "dice": lambda x, t: _dice(x, t).mean(),
    "dice+bce": lambda x, t: _dice(x, t).mean() + _bce(x, t),
    "logcosh+bce": lambda x, t: torch.log(torch.cosh(_dice(x, t))).mean() + _bce(x, t),
}


def loss_fn(name: str):
    if name not in LOSSES:
        raise ValueError(f"unknown --loss {name!r}; known: {', '.join(LOSSES)}")
    return LOSSES[name]


def object_items(folder: Path, ids: list[str]) -> list[tuple[str, int]]:
    """(row id, object index) for every object of the cached rows."""
    items = []
    for sid in ids:
        k = int(load_row(folder, sid)["classes"].numel())
        items += [(sid, j) for j in range(k)]
    return items


def batch_of(folder: Path, items: list[tuple[str, int]], device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(attention (B, T, h, w), features (B, T*C, h, w), masks (B, Hm, Wm)) float32 of cached objects."""
    rows: dict[str, dict[str, torch.Tensor]] = {}
    att, feat, mask = [], [], []
    for sid, k in items:
        row = rows.setdefault(sid, load_row(folder, sid))
        att.append(row["attention"][k].float())
        feat.append(row["features"].float().flatten(0, 1))
        mask.append(row["masks"][k].float())
    return torch.stack(att).to(device), torch.stack(feat).to(device), torch.stack(mask).to(device)


def threshold_prediction(attention: torch.Tensor, out_hw: tuple[int, int], threshold: float) -> torch.Tensor:
    """The untrained method's masks: timestep-mean attention, nearest-upsampled, above ``threshold``."""
    return F.interpolate(attention.mean(dim=1, keepdim=True), size=out_hw, mode="nearest")[:, 0] > threshold


def mean_iou(pred: torch.Tensor, target: torch.Tensor) -> float | None:
    """Mean IoU over the objects where prediction or target has a pixel (None when there is none)."""
    pred, target = pred.bool().flatten(1), target.bool().flatten(1)
    union = (pred | target).sum(1)
    keep = union > 0
    if not keep.any():
        return None
    return float(((pred & target).sum(1)[keep].float() / union[keep].float()).mean())


@torch.no_grad()
def compare_on(head: GroundingHead, folder: Path, items: list[tuple[str, int]], threshold: float,
               device="cpu", batch_size: int = 16) -> dict[str, float | None]:
    """Held-out mIoU of the head (probability > 0.5) and of thresholding the attention at ``threshold``."""
    preds, base, targets = [], [], []
    head.eval()
    for start in range(0, len(items), batch_size):
        att, feat, mask = batch_of(folder, items[start:start + batch_size], device)
        hw = tuple(mask.shape[-2:])
        preds.append(torch.sigmoid(head(att, feat, hw)) > 0.5)
        base.append(threshold_prediction(att, hw, threshold))
        targets.append(mask > 0.5)
    head.train()
    if not items:
        return {"head_miou": None, "threshold_miou": None, "objects": 0}
    target = torch.cat(targets)
    return {"head_miou": mean_iou(torch.cat(preds), target), "threshold_miou": mean_iou(torch.cat(base), target),
            "objects": len(items)}


@dataclass
class GroundingConfig:
    """One grounding-head training run."""

    data: str  # synthetic version folder (or store: its newest version) whose rows carry masks
    out: str  # output folder: head/, checkpoints/, metrics.jsonl, training.json (and features/)
    features: str | None = None  # feature cache folder (default OUT/features); shareable between runs
    model: str = "tiny"  # text-to-image model the features come from (id, folder, or "tiny"); ground must use it too
    revision: str | None = None
    timesteps: tuple[int, ...] = (200,)  # noise levels features are taken at
    blocks: tuple[int, ...] = (-2, -1)  # UNet up blocks whose outputs the head reads
    mask_stride: int = 2  # masks are learned at the image size divided by this
    epochs: int = 10  # passes over the training objects
    batch_size: int = 8  # objects per step
    lr: float = 1e-3  # AdamW learning rate
    hidden: int = 32  # head width
    loss: str = "dice+bce"  # bce, dice, dice+bce, logcosh+bce
    threshold: float = 0.5  # attention threshold of the baseline the head is compared with
    val_fraction: float = 0.2  # share of rows held out for the mIoU comparison (by id hash)
    max_rows: int | None = None  # use at most this many rows of --data
    checkpoint_every: int = 50  # checkpoint every N steps (and at the end)
    keep_checkpoints: int = 2
    seed: int = 0  # run seed: noise of the features, held-out rows, epoch orders, initialisation
    device: str = "cpu"
    resume: bool = True  # continue from the newest checkpoint in out/checkpoints
    progress: bool = True
    pipeline: Any = field(default=None, repr=False)  # injected text-to-image pipeline (declared)


@dataclass
class GroundingResult:
    out: Path
    head: Path
    steps: int
    final_loss: float | None
    metrics: dict[str, Any]
    resumed_from: int | None = None


def check_config(cfg: GroundingConfig) -> None:
    loss_fn(cfg.loss)
    for name in ("epochs", "batch_size", "checkpoint_every", "hidden"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be within [0, 1), got {cfg.val_fraction}")


def split_rows(ids: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, held-out) ids; a row is held out when its derived seed falls in the lowest ``fraction``."""
    held = [s for s in ids if derive_seed(seed, f"val/{s}") < fraction * 2 ** 63]
    return [s for s in ids if s not in set(held)], held


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The batches (item indices) of one epoch, in an order that depends only on (seed, epoch)."""
    order = np.random.default_rng(derive_seed(seed, "epoch", epoch)).permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def _model_ident(cfg: GroundingConfig) -> tuple[str, str | None]:
    from streetsynth.models.load import DECLARED, model_name

    if cfg.pipeline is not None:
        ident = getattr(cfg.pipeline, DECLARED, None)
        if ident is None:
            raise ValueError("an injected pipeline must declare its id and revision "
                             "(streetsynth.models.load.declare)")
        return ident
    if cfg.model == "tiny":  # what the model registry names its tiny text-to-image pipeline
        return "streetsynth/tiny-random-text2img", "seed-0"
    return model_name(cfg.model), cfg.revision


def prepare_features(cfg: GroundingConfig) -> tuple[Path, FeatureSpec, list[str], dict[str, Any]]:
    """Open (or reuse) the cache and fill in the rows missing from it."""
    from streetsynth.models.load import ModelSpec, load

    from .compare import resolve_synthetic

    data = resolve_synthetic(cfg.data)
    spec = FeatureSpec(tuple(cfg.timesteps), tuple(cfg.blocks), cfg.mask_stride, cfg.seed)
    model_id, revision = _model_ident(cfg)
    settings = spec_settings(spec, model_id, revision, str(data))
    folder = open_cache(cfg.features or Path(cfg.out) / "features", settings)
    ids = cache_rows(data, folder, spec,
                     lambda: load("text2img", ModelSpec(cfg.model, cfg.revision, cfg.device, model=cfg.pipeline)),
                     cfg.max_rows, cfg.progress)
    if not ids:
        raise ValueError(f"{data}: no row with masks to learn from")
    return folder, spec, ids, settings


def _save_checkpoint(head, optimizer, cfg: GroundingConfig, step: int, out: Path) -> Path:
    tmp = staging_dir(out, step)
    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, str(tmp / HEAD_FILE))
    torch.save({"optimizer": optimizer.state_dict()}, tmp / STATE_FILE)
    record = {"step": step, "config": {k: v for k, v in asdict(cfg).items() if k != "pipeline"}}
    return commit_checkpoint(tmp, record, cfg.keep_checkpoints)


def _resume(ckpt: Path | None, head, optimizer) -> int | None:
    if ckpt is None:
        return None
    saved = load_file(str(ckpt / HEAD_FILE))
    if {k: tuple(v.shape) for k, v in saved.items()} != {k: tuple(v.shape) for k, v in head.state_dict().items()}:
        raise ValueError(f"{ckpt}: checkpoint of a head of another shape; use another --out or --no-resume")
    head.load_state_dict(saved)
    optimizer.load_state_dict(torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)["optimizer"])
    return json.loads((ckpt / TRAINER_FILE).read_text())["step"]


def train_grounding(cfg: GroundingConfig) -> GroundingResult:
    """Cache features (resuming), train (or resume) the head, and save it under ``out/head``."""
    check_config(cfg)
    folder, _, ids, settings = prepare_features(cfg)
    return train_head(cfg, folder, ids, {"mask_sources": _mask_sources(settings["data"])})


def train_head(cfg: GroundingConfig, folder: Path, ids: list[str],
               meta: dict[str, Any] | None = None) -> GroundingResult:
    """Train (or resume) the head on cached rows ``ids`` of ``folder``; hold out, compare, save."""
    from tqdm.auto import tqdm

    check_config(cfg)
    out, folder = Path(cfg.out), Path(folder)
    settings = json.loads((folder / SETTINGS_FILE).read_text())
    train_ids, held_ids = split_rows(ids, cfg.val_fraction, cfg.seed)
    items, held = object_items(folder, train_ids), object_items(folder, held_ids)
    if not items:
        raise ValueError(f"{folder}: no object to learn from (prompts name none of our classes)")
    t, c = load_row(folder, items[0][0])["features"].shape[:2]
    torch.manual_seed(derive_seed(cfg.seed, "head-init"))
    head = GroundingHead(t, c, cfg.hidden).to(cfg.device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=cfg.lr)
    criterion = loss_fn(cfg.loss)
    per_epoch = math.ceil(len(items) / cfg.batch_size)
    total = cfg.epochs * per_epoch
    resumed_from = _resume(latest_checkpoint(out) if cfg.resume else None, head, optimizer)
    step = resumed_from or 0
    out.mkdir(parents=True, exist_ok=True)
    trim_jsonl(out / "metrics.jsonl", step)
    bar = tqdm(total=total, initial=step, desc="grounding", disable=not cfg.progress)
    last = None
    head.train()
    while step < total:
        epoch, index = divmod(step, per_epoch)
        chosen = epoch_batches(len(items), cfg.batch_size, cfg.seed, epoch)[index]
        att, feat, mask = batch_of(folder, [items[i] for i in chosen], cfg.device)
        loss = criterion(head(att, feat, tuple(mask.shape[-2:])), mask)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite grounding loss at step {step}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        last = float(loss.detach())
        bar.update(1)
        bar.set_postfix(loss=f"{last:.4f}")
        with (out / "metrics.jsonl").open("a") as fh:
            fh.write(json.dumps({"step": step, "epoch": epoch, "loss": last}) + "\n")
        if step % cfg.checkpoint_every == 0 or step == total:
            _save_checkpoint(head, optimizer, cfg, step, out)
    bar.close()
    metrics = compare_on(head, folder, held, cfg.threshold, cfg.device)
    path = save_head(head, out / HEAD_DIR, {"features": settings, "loss": cfg.loss, "steps": step,
                                            "held_out": metrics, **(meta or {})})
    atomic_write_text(out / "training.json", json.dumps(
        {"config": {k: v for k, v in asdict(cfg).items() if k != "pipeline"}, "features": str(folder), "steps": step,
         "final_loss": last, "rows": {"train": len(train_ids), "held_out": len(held_ids)},
         "objects": {"train": len(items), "held_out": len(held)}, "held_out": metrics,
         "head": str(path), "head_digest": file_digest(path), **(meta or {})}, indent=2) + "\n")
    return GroundingResult(out, path, step, last, metrics, resumed_from)


def _mask_sources(data: str) -> list[str]:
    """The sources the version's instances came from (labeler, ground truth...), as its rows record them."""
    from streetsynth.repo import load_split

    rows = load_split(data, "synthetic", "synthetic")
    return sorted({o.get("source") or "" for objects in rows["objects"] for o in objects})
