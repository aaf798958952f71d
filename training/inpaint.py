"""Adapt a Stable Diffusion inpainting model to the real stitched scenes (LoRA or full fine-tuning).

Each training canvas is a real scene resized to the training resolution with a mask over the
region to paint: the outpainting mask (columns at and right of ``stitch.front_x1``, scaled to the
canvas, the part the generator outpaints) or, with probability ``random_mask_prob``, random
rectangles. The loss is the usual noise-prediction MSE on the 9-channel UNet input the inpainting
pipeline feeds: noisy latents, the mask downsampled to the latent size, the masked-image latents.

Layout of ``out``::

    model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/
                      the full pipeline with the LoRA merged (or the fine-tuned UNet):
                      StableDiffusionInpaintPipeline.from_pretrained(out) loads it
    lora/             the LoRA adapter alone (LoRA runs only), in the diffusers LoRA format:
                      StableDiffusionInpaintPipeline.from_pretrained(BASE).load_lora_weights(out / "lora")
    checkpoints/step-NNNNNNNN/   trainable weights, optimizer, EMA, trainer.json (resume)
    metrics.jsonl     one record per optimizer step
    training.json     config, steps, the dataset trained on
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from PIL import Image
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from streetsynth import schema
from streetsynth.repo import atomic_write_bytes, atomic_write_text, load_split, writing
from streetsynth.seeds import derive_seed

from .checkpoints import STATE_FILE, TRAINER_FILE, commit_checkpoint, latest_checkpoint, staged_checkpoint, trim_jsonl
from .data import MixSampler
from .maskrcnn import NonFiniteLossError, dataset_info, resolve_mixed_precision

#: UNet attention projections LoRA adapts by default.
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
#: Where a LoRA run writes its adapter, under ``out``.
LORA_DIR = "lora"
TRAINABLE_FILE = "trainable.safetensors"


@dataclass
class InpaintConfig:
    """One inpainting fine-tuning run."""

    real: str  # real dataset repo (config "stitched", split "train")
    model: str  # diffusers inpainting model id or local path, or "tiny" (random, for tests)
    out: str  # output folder: the full pipeline (LoRA merged), lora/, checkpoints/, metrics.jsonl
    max_steps: int = 1000  # optimizer steps
    batch_size: int = 1  # canvases per process per micro-step
    grad_accum: int = 1  # micro-steps per optimizer step
    lr: float = 1e-4  # AdamW learning rate (after warm-up)
    warmup_steps: int = 0  # linear warm-up steps
    lora: bool = True  # LoRA on the UNet attention projections; False = full UNet fine-tuning
    lora_rank: int = 8  # LoRA rank
    lora_alpha: int | None = None  # LoRA alpha; None = the rank (scale 1)
    height: int = 512  # training canvas height (multiple of 8)
    width: int = 1024  # training canvas width (multiple of 8)
    random_mask_prob: float = 0.5  # share of canvases with random rectangles instead of the outpainting mask
    ema: bool = False  # keep an EMA of the trained weights and save that
    ema_decay: float = 0.999  # EMA decay
    mixed_precision: str = "auto"  # "auto" (bf16/fp16 on a GPU, none on CPU), "no", "fp16", "bf16"
    checkpoint_every: int = 500  # save a resumable checkpoint every this many steps (and at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept
    seed: int = 0  # run seed: canvases, masks, noise and timesteps derive from it
    cpu: bool = False  # force the CPU
    num_workers: int = 0  # DataLoader workers
    resume: bool = True  # continue from the newest checkpoint in out/checkpoints
    progress: bool = True  # show a progress bar


@dataclass
class InpaintResult:
    """What a run produced."""

    out: Path
    steps: int
    final_loss: float | None
    resumed_from: int | None = None


def outpaint_mask(height: int, width: int, front_x1: int, source_width: int) -> np.ndarray:
    """(H, W) float mask, 1 on canvas columns at and right of ``front_x1`` of the source scene."""
    mask = np.zeros((height, width), np.float32)
    x = int(round(front_x1 * width / max(source_width, 1)))
    mask[:, min(max(x, 0), width):] = 1.0
    return mask


def random_mask(height: int, width: int, rng: np.random.Generator, max_boxes: int = 3) -> np.ndarray:
    """(H, W) float mask of 1 to ``max_boxes`` rectangles, each 20-60 % of the canvas per side."""
    mask = np.zeros((height, width), np.float32)
    for _ in range(int(rng.integers(1, max_boxes + 1))):
        h = int(rng.uniform(0.2, 0.6) * height)
        w = int(rng.uniform(0.2, 0.6) * width)
        y = int(rng.integers(0, height - h + 1))
        x = int(rng.integers(0, width - w + 1))
        mask[y:y + h, x:x + w] = 1.0
    return mask


class InpaintCanvases(Dataset):
    """Real rows as (pixels in [-1, 1], mask, prompt) canvases, keyed by ``(source, row, seed)``."""

    def __init__(self, rows, height: int, width: int, random_mask_prob: float):
        if height % 8 or width % 8:
            raise ValueError(f"canvas {height}x{width}: height and width must be multiples of 8")
        if not 0.0 <= random_mask_prob <= 1.0:
            raise ValueError(f"random_mask_prob must be within [0, 1], got {random_mask_prob}")
        self.rows, self.height, self.width, self.random_mask_prob = rows, height, width, random_mask_prob

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key) -> dict[str, Any]:
        _, index, seed = key if isinstance(key, tuple) else ("real", key, 0)
        row = self.rows[int(index)]
        img = row["image"].convert("RGB")
        src_w = img.width
        img = img.resize((self.width, self.height), Image.BICUBIC)
        pixels = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 127.5 - 1.0
        rng = np.random.default_rng(int(seed))
        front_x1 = int((row.get("stitch") or {}).get("front_x1") or 0)
        if front_x1 <= 0 or rng.random() < self.random_mask_prob:
            mask = random_mask(self.height, self.width, rng)
        else:
            mask = outpaint_mask(self.height, self.width, front_x1, src_w)
        return {"pixel_values": pixels, "mask": torch.from_numpy(mask)[None], "prompt": row.get("caption") or ""}


#: Families whose denoiser and text encoding ``inpaint_loss`` implements (a 9-channel UNet, one CLIP).
TRAINABLE_FAMILIES = ("sd-inpaint",)


def load_pipeline(model: str, seed: int = 0):
    """``tiny`` -> the tiny random pipeline; otherwise an id or local path through the model registry."""
    from streetsynth.models.inpaint import build_tiny, load

    loaded = build_tiny("sd-inpaint", seed) if model == "tiny" else load(model)
    if loaded.family.name not in TRAINABLE_FAMILIES:
        raise ValueError(f"{model}: train inpaint fine-tunes {', '.join(TRAINABLE_FAMILIES)} models; "
                         f"{loaded.family.name} ({loaded.family.denoiser}) is not supported yet")
    return loaded.pipeline


def inpaint_loss(unet, vae, text_encoder, tokenizer, noise_scheduler, batch: dict[str, Any],
                 generator: torch.Generator, weight_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Noise-prediction MSE of ``unet`` on one batch of canvases (the 9-channel inpainting input)."""
    device = batch["pixel_values"].device
    pixels = batch["pixel_values"].to(weight_dtype)
    mask = batch["mask"].to(weight_dtype)
    masked = pixels * (mask < 0.5)
    scale = vae.config.scaling_factor
    with torch.no_grad():
        latents = vae.encode(pixels).latent_dist.sample(generator=generator) * scale
        masked_latents = vae.encode(masked).latent_dist.sample(generator=generator) * scale
        ids = tokenizer(list(batch["prompt"]), padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors="pt").input_ids.to(device)
        text = text_encoder(ids)[0]
    mask_latent = F.interpolate(mask, size=latents.shape[-2:], mode="nearest")
    noise = torch.randn(latents.shape, generator=generator, device=device, dtype=latents.dtype)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator,
                      device=device).long()
    noisy = noise_scheduler.add_noise(latents, noise, t)
    unet_in = torch.cat([noisy, mask_latent, masked_latents], dim=1)
    pred = unet(unet_in, t, text).sample
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, t)
    else:
        target = noise
    return F.mse_loss(pred.float(), target.float())


def _move(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """Move a module, casting only when its dtype differs (diffusers warns on needless casts)."""
    if next(module.parameters()).dtype != dtype:
        module.to(device, dtype=dtype)
    else:
        module.to(device)


def _trainable(unet) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in unet.named_parameters() if p.requires_grad}


def _save_checkpoint(unet, optimizer, scheduler, ema, config: InpaintConfig, step: int, out: Path,
                     loss: float | None = None) -> Path:
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    if ema is not None:
        state["ema"] = ema.state_dict()
    with staged_checkpoint(out, step) as tmp:
        save_file({n: p.detach().float().cpu().contiguous() for n, p in _trainable(unet).items()}, str(tmp / TRAINABLE_FILE))
        torch.save(state, tmp / STATE_FILE)
    return commit_checkpoint(tmp, {"step": step, "config": asdict(config), "loss": loss}, config.keep_checkpoints)


def _make_trainable(unet, config: InpaintConfig, device, weight_dtype) -> list:
    """Freeze the UNet and add a LoRA adapter (trained in float32), or train it whole; its trainable parameters."""
    from diffusers.training_utils import cast_training_params

    if config.lora:
        from peft import LoraConfig

        unet.requires_grad_(False)
        _move(unet, device, weight_dtype)
        unet.add_adapter(LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha or config.lora_rank,
                                    init_lora_weights="gaussian", target_modules=list(LORA_TARGETS)))
        cast_training_params(unet, dtype=torch.float32)
    else:
        unet.requires_grad_(True)
        _move(unet, device, torch.float32)
    return list(_trainable(unet).values())


def _resume(ckpt: Path | None, unet, optimizer, scheduler, ema) -> int | None:
    """Load the trainable weights, optimizer, scheduler and EMA of ``ckpt``; its step (None without one)."""
    if ckpt is None:
        return None
    saved = load_file(str(ckpt / TRAINABLE_FILE))
    missing = set(_trainable(unet)) - set(saved)
    if missing:
        raise ValueError(f"{ckpt}: checkpoint of another run (missing {sorted(missing)[:3]}...); use another --out")
    unet.load_state_dict(saved, strict=False)
    state = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if ema is not None and "ema" in state:
        ema.load_state_dict(state["ema"])
    return json.loads((ckpt / TRAINER_FILE).read_text())["step"]


def _write_training_record(out: Path, config: InpaintConfig, steps: int, final_loss: float | None, mp: str,
                           num_processes: int) -> None:
    """``training.json``: the config, steps, final loss, precision, processes and the dataset trained on."""
    atomic_write_text(out / "training.json", json.dumps(
        {"config": asdict(config), "steps": steps, "final_loss": final_loss, "mixed_precision": mp,
         "num_processes": num_processes, "dataset": dataset_info(config.real)}, indent=2) + "\n")


def _real_canvases(config: InpaintConfig, num_processes: int) -> DataLoader:
    """Batches of the real train scenes as inpainting canvases: one epoch holds every micro-step of the run."""
    rows = load_split(config.real, schema.STITCHED, "train")
    if len(rows) == 0:
        raise ValueError(f"{config.real}: the train split has no rows")
    canvases = InpaintCanvases(rows, config.height, config.width, config.random_mask_prob)
    per_epoch = config.max_steps * config.grad_accum * config.batch_size * num_processes
    sampler = MixSampler({"real": len(rows)}, {"real": 1.0}, per_epoch, config.seed)
    return DataLoader(canvases, batch_size=config.batch_size, sampler=sampler, num_workers=config.num_workers)


def train_inpaint(config: InpaintConfig, pipeline=None) -> InpaintResult:
    """Fine-tune (or resume) and save a loadable pipeline to ``config.out``; ``pipeline`` may be injected."""
    from diffusers import DDPMScheduler
    from diffusers.training_utils import EMAModel

    out = Path(config.out)
    mp = resolve_mixed_precision(config.mixed_precision, config.cpu)
    accelerator = Accelerator(mixed_precision=mp, gradient_accumulation_steps=config.grad_accum, cpu=config.cpu)
    main = accelerator.is_main_process
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mp, torch.float32)

    loader = _real_canvases(config, accelerator.num_processes)
    pipe = pipeline if pipeline is not None else load_pipeline(config.model, config.seed)
    unet, vae, text_encoder, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    for module in (vae, text_encoder):
        _move(module, accelerator.device, weight_dtype)
    params = _make_trainable(unet, config, accelerator.device, weight_dtype)
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / config.warmup_steps) if config.warmup_steps else 1.0)
    ema = EMAModel(params, decay=config.ema_decay) if config.ema else None

    resumed_from = _resume(latest_checkpoint(out) if config.resume else None, unet, optimizer, scheduler, ema)
    step = resumed_from or 0

    unet, optimizer, loader = accelerator.prepare(unet, optimizer, loader)
    if ema is not None:
        ema.to(accelerator.device)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        trim_jsonl(out / "metrics.jsonl", step)
    bar = tqdm(total=config.max_steps, initial=step, desc="inpaint", disable=not (main and config.progress))
    loader.set_epoch(0)
    # One epoch holds every micro-step of the run, so a resume skips the micro-steps already done.
    it = iter(accelerator.skip_first_batches(loader, step * config.grad_accum) if step else loader)
    # a rerun of a finished run trains nothing: the checkpoint it resumed from keeps the loss for training.json
    last_loss = json.loads((latest_checkpoint(out) / TRAINER_FILE).read_text()).get("loss") if step else None
    micro, tick = step * config.grad_accum, time.perf_counter()
    unet.train()
    while step < config.max_steps:
        batch = next(it)
        gen = torch.Generator(device=accelerator.device).manual_seed(
            derive_seed(config.seed, f"noise/{accelerator.process_index}", micro))
        micro += 1
        with accelerator.accumulate(unet):
            loss = inpaint_loss(unet, vae, text_encoder, tokenizer, noise_scheduler, batch, gen, weight_dtype)
            reduced = accelerator.reduce(loss.detach(), "mean")
            if not torch.isfinite(reduced):
                raise NonFiniteLossError(f"non-finite inpainting loss {float(reduced)} at step {step}; lower --lr")
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if not accelerator.sync_gradients:
            continue
        scheduler.step()
        if ema is not None:
            ema.step(params)
        step += 1
        last_loss = float(reduced)
        now = time.perf_counter()
        ips = config.batch_size * config.grad_accum * accelerator.num_processes / max(now - tick, 1e-9)
        tick = now
        bar.update(1)
        bar.set_postfix(loss=f"{last_loss:.4f}", img_s=f"{ips:.1f}")
        if main:
            with writing(out / "metrics.jsonl"), (out / "metrics.jsonl").open("a") as fh:
                fh.write(json.dumps({"step": step, "loss": last_loss, "lr": scheduler.get_last_lr()[0],
                                     "images_per_s": ips}) + "\n")
            if step % config.checkpoint_every == 0 or step == config.max_steps:
                _save_checkpoint(accelerator.unwrap_model(unet), optimizer, scheduler, ema, config, step, out, last_loss)
    bar.close()
    accelerator.wait_for_everyone()
    if main:
        _save_pipeline(pipe, accelerator.unwrap_model(unet), ema, params, config, out)
        _write_training_record(out, config, step, last_loss, mp, accelerator.num_processes)
    accelerator.wait_for_everyone()
    return InpaintResult(out=out, steps=step, final_loss=last_loss, resumed_from=resumed_from)


def save_lora_adapter(unet, directory: str | Path, pipeline_class=None) -> Path:
    """Save a PEFT-adapted UNet's LoRA in the diffusers format with the pipeline class's saver.

    The keys get the ``unet.`` prefix and the adapter's config (rank, alpha, targets) travels in
    the safetensors metadata, so ``PIPELINE.from_pretrained(BASE).load_lora_weights(directory)``
    restores it. ``pipeline_class`` defaults to StableDiffusionInpaintPipeline.
    """
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    if pipeline_class is None:
        from diffusers import StableDiffusionInpaintPipeline as pipeline_class
    layers = {k: v.detach().float().cpu().contiguous()
              for k, v in sorted(convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)).items())}
    # The adapter config holds sets (target modules) whose order follows the hash seed: sort them.
    metadata = {k: sorted(v) if isinstance(v, (set, frozenset)) else v
                for k, v in sorted(unet.peft_config["default"].to_dict().items())}
    pipeline_class.save_lora_weights(directory, unet_lora_layers=layers, safe_serialization=True,
                                     unet_lora_adapter_metadata=metadata)
    for path in Path(directory).glob("*.safetensors"):
        _sort_safetensors_metadata(path)
    return Path(directory)


def _sort_safetensors_metadata(path: Path) -> None:
    """safetensors writes ``__metadata__`` from a hash map whose order changes from process to process; rewrite
    the header with those keys sorted (same length, same tensors), so equal adapters are equal files."""
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    header["__metadata__"] = dict(sorted((header.get("__metadata__") or {}).items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) <= size:  # the header keeps its length: padded with spaces, as safetensors pads it
        atomic_write_bytes(path, data[:8] + text.ljust(size) + data[8 + size:])


def _save_pipeline(pipe, unet, ema, params, config: InpaintConfig, out: Path) -> None:
    """Write the loadable pipeline: EMA weights if kept, LoRA saved alone and merged into the UNet."""
    if ema is not None:
        ema.copy_to(params)
    if config.lora:
        save_lora_adapter(unet, out / LORA_DIR, type(pipe))
        unet.fuse_lora(lora_scale=1.0)
        unet.unload_lora()
    for module in (unet, pipe.vae, pipe.text_encoder):
        _move(module, torch.device("cpu"), torch.float32)
    pipe.register_modules(unet=unet)
    tok = pipe.tokenizer
    # Training calls the tokenizer with truncation, which a fast tokenizer writes into tokenizer.json;
    # call it the same way here so a rerun that trains no step saves the same file.
    tok([""], padding="max_length", max_length=tok.model_max_length, truncation=True)
    pipe.save_pretrained(out, safe_serialization=True)
