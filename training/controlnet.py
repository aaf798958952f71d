"""Train a layout ControlNet on the real scenes (diffusers' ``ControlNetModel``; LoRA or full).

Each training pair is a real train row resized to the training canvas and its layout drawn in the
streetsynth palette (``generators.layout_palette``: instances over the stuff classes of frames with
panoptic labels). With probability ``layout_dropout`` the layout is replaced by the empty (black)
one, so the model also learns the image without a layout: classifier-free guidance on the
condition. The base UNet, VAE and text encoder stay frozen; the loss is the usual noise-prediction
MSE of the UNet fed the ControlNet's residuals.

Full training updates the whole ControlNet. LoRA adapts its attention projections and trains the
parts that carry the layout in full (the conditioning embedding and the zero convolutions, which
start at zero and would pass no gradient otherwise).

Layout of ``out``::

    config.json, diffusion_pytorch_model.safetensors
                       the ControlNet (LoRA merged): ControlNetModel.from_pretrained(out),
                       ``streetsynth rerender --controlnet out``
    layout_palette.json the palette it was trained on (rerender draws the same one)
    checkpoints/step-NNNNNNNN/   trainable weights, optimizer, scheduler, trainer.json (resume)
    metrics.jsonl      one record per optimizer step
    training.json      config, steps, final loss, the dataset trained on
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from streetsynth import schema
from streetsynth.generators.layout_palette import PALETTE_FILE, palette_record, row_layout
from streetsynth.repo import atomic_write_text, load_split
from streetsynth.seeds import derive_seed

from .checkpoints import latest_checkpoint, trim_jsonl
from .data import MixSampler
from .inpaint import LORA_TARGETS, _move, _resume, _save_checkpoint
from .maskrcnn import NonFiniteLossError, dataset_info, resolve_mixed_precision

#: ControlNet parts trained in full under LoRA: they carry the layout in and start at zero.
FULL_UNDER_LORA = ("controlnet_cond_embedding", "controlnet_down_blocks", "controlnet_mid_block")


@dataclass
class ControlNetConfig:
    """One layout-ControlNet training run."""

    real: str  # real dataset repo (config "stitched", split "train")
    model: str  # SD 1.5 base id or local path, or "tiny" (random, for tests)
    out: str  # output folder: the ControlNet, layout_palette.json, checkpoints/, metrics.jsonl
    init: str | None = None  # ControlNet id/path to start from; None = a copy of the base UNet's encoder
    max_steps: int = 1000  # optimizer steps
    batch_size: int = 1  # pairs per process per micro-step
    grad_accum: int = 1  # micro-steps per optimizer step
    lr: float = 1e-5  # AdamW learning rate (after warm-up)
    warmup_steps: int = 0  # linear warm-up steps
    lora: bool = False  # LoRA on the attention + the layout parts in full; False = the whole ControlNet
    lora_rank: int = 16  # LoRA rank
    height: int = 512  # training canvas height (multiple of 8)
    width: int = 1024  # training canvas width (multiple of 8)
    layout_dropout: float = 0.1  # share of pairs trained with the empty layout (guidance on the condition)
    mixed_precision: str = "auto"  # "auto" (bf16/fp16 on a GPU, none on CPU), "no", "fp16", "bf16"
    checkpoint_every: int = 500  # save a resumable checkpoint every this many steps (and at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept
    seed: int = 0  # run seed: pairs, dropout, noise and timesteps derive from it
    cpu: bool = False  # force the CPU
    num_workers: int = 0  # DataLoader workers
    resume: bool = True  # continue from the newest checkpoint in out/checkpoints
    progress: bool = True  # show a progress bar


@dataclass
class ControlNetResult:
    """What a run produced."""

    out: Path
    steps: int
    final_loss: float | None
    resumed_from: int | None = None


class LayoutPairs(Dataset):
    """Real rows as (pixels in [-1, 1], layout in [0, 1], prompt), keyed by ``(source, row, seed)``."""

    def __init__(self, rows, height: int, width: int, layout_dropout: float):
        if height % 8 or width % 8:
            raise ValueError(f"canvas {height}x{width}: height and width must be multiples of 8")
        if not 0.0 <= layout_dropout <= 1.0:
            raise ValueError(f"layout_dropout must be within [0, 1], got {layout_dropout}")
        self.rows, self.height, self.width, self.layout_dropout = rows, height, width, layout_dropout

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key) -> dict[str, Any]:
        _, index, seed = key if isinstance(key, tuple) else ("real", key, 0)
        row = self.rows[int(index)]
        img = row["image"].convert("RGB").resize((self.width, self.height), Image.BICUBIC)
        pixels = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 127.5 - 1.0
        layout = cv2.resize(row_layout(row), (self.width, self.height), interpolation=cv2.INTER_NEAREST)
        if np.random.default_rng(int(seed)).random() < self.layout_dropout:
            layout = np.zeros_like(layout)
        cond = torch.from_numpy(layout).permute(2, 0, 1).float() / 255.0
        return {"pixel_values": pixels, "layout": cond, "prompt": row.get("caption") or ""}


def layout_rows(rows):
    """The rows with a layout to learn from: instance masks or a semantic map (box-only rows draw nothing)."""
    table = rows.data.table
    has = ~np.asarray(table.column("instance_mask").is_null())
    if "semantic_mask" in table.column_names:
        has |= ~np.asarray(table.column("semantic_mask").is_null())
    return rows.select(np.flatnonzero(has))


def controlnet_loss(controlnet, unet, vae, text_encoder, tokenizer, noise_scheduler, batch: dict[str, Any],
                    generator: torch.Generator, weight_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Noise-prediction MSE of the frozen ``unet`` fed ``controlnet``'s residuals for the batch's layouts."""
    device = batch["pixel_values"].device
    with torch.no_grad():
        latents = vae.encode(batch["pixel_values"].to(weight_dtype)).latent_dist.sample(generator=generator)
        latents = latents * vae.config.scaling_factor
        ids = tokenizer(list(batch["prompt"]), padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors="pt").input_ids.to(device)
        text = text_encoder(ids)[0]
    noise = torch.randn(latents.shape, generator=generator, device=device, dtype=latents.dtype)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator,
                      device=device).long()
    noisy = noise_scheduler.add_noise(latents, noise, t)
    down, mid = controlnet(noisy, t, encoder_hidden_states=text, controlnet_cond=batch["layout"].to(weight_dtype),
                           return_dict=False)
    pred = unet(noisy, t, text, down_block_additional_residuals=[d.to(weight_dtype) for d in down],
                mid_block_additional_residual=mid.to(weight_dtype)).sample
    target = noise_scheduler.get_velocity(latents, noise, t) \
        if noise_scheduler.config.prediction_type == "v_prediction" else noise
    return F.mse_loss(pred.float(), target.float())


def load_base(config: ControlNetConfig):
    """(base text-to-image pipeline, ControlNet to train): ``tiny`` builds both at random."""
    from diffusers import ControlNetModel

    if config.model == "tiny":
        from streetsynth.models.tiny_controlnet import build_tiny_controlnet_pipeline

        pipe = build_tiny_controlnet_pipeline(0)
        return pipe, pipe.controlnet if config.init is None else ControlNetModel.from_pretrained(config.init)
    from streetsynth.models.load import ModelSpec, from_pretrained, load

    pipe = load("text2img", ModelSpec(config.model, None, "cpu", "fp32")).pipeline
    if config.init is None:
        return pipe, ControlNetModel.from_unet(pipe.unet)
    return pipe, from_pretrained(ControlNetModel, config.init, None, dtype=torch.float32)


def make_trainable(controlnet, config: ControlNetConfig) -> list[torch.nn.Parameter]:
    """Train the whole ControlNet, or add a LoRA to its attention and train the layout parts in full."""
    if next(controlnet.parameters()).dtype != torch.float32:
        controlnet.to(dtype=torch.float32)
    if not config.lora:
        controlnet.requires_grad_(True)
        return [p for p in controlnet.parameters() if p.requires_grad]
    from peft import LoraConfig

    controlnet.requires_grad_(False)
    controlnet.add_adapter(LoraConfig(r=config.lora_rank, lora_alpha=config.lora_rank, init_lora_weights="gaussian",
                                      target_modules=list(LORA_TARGETS)))
    for name in FULL_UNDER_LORA:
        getattr(controlnet, name).requires_grad_(True)
    return [p for p in controlnet.parameters() if p.requires_grad]


def _pairs(config: ControlNetConfig, num_processes: int) -> DataLoader:
    """Batches of layout pairs: one epoch holds every micro-step of the run (resume skips what is done)."""
    rows = layout_rows(load_split(config.real, schema.STITCHED, "train"))
    if len(rows) == 0:
        raise ValueError(f"{config.real}: no train row has instance masks or a semantic map to draw a layout from")
    pairs = LayoutPairs(rows, config.height, config.width, config.layout_dropout)
    per_epoch = config.max_steps * config.grad_accum * config.batch_size * num_processes
    sampler = MixSampler({"real": len(rows)}, {"real": 1.0}, per_epoch, config.seed)
    return DataLoader(pairs, batch_size=config.batch_size, sampler=sampler, num_workers=config.num_workers)


def save_controlnet(controlnet, config: ControlNetConfig, out: Path) -> None:
    """Write the loadable ControlNet (LoRA merged) and the palette it was trained on."""
    if config.lora:
        controlnet.fuse_lora(lora_scale=1.0)
        controlnet.unload_lora()
    controlnet.to("cpu", torch.float32).save_pretrained(out, safe_serialization=True)
    atomic_write_text(out / PALETTE_FILE, json.dumps(palette_record(), indent=2) + "\n")


def train_controlnet(config: ControlNetConfig, base=None) -> ControlNetResult:
    """Train (or resume) and save a layout ControlNet to ``config.out``; ``base`` = (pipeline, controlnet) may
    be injected."""
    from diffusers import DDPMScheduler

    out = Path(config.out)
    mp = resolve_mixed_precision(config.mixed_precision, config.cpu)
    accelerator = Accelerator(mixed_precision=mp, gradient_accumulation_steps=config.grad_accum, cpu=config.cpu)
    main = accelerator.is_main_process
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mp, torch.float32)

    loader = _pairs(config, accelerator.num_processes)
    pipe, controlnet = base if base is not None else load_base(config)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.requires_grad_(False)
        _move(module, accelerator.device, weight_dtype)
    params = make_trainable(controlnet, config)
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / config.warmup_steps) if config.warmup_steps else 1.0)
    resumed_from = _resume(latest_checkpoint(out) if config.resume else None, controlnet, optimizer, scheduler, None)
    step = resumed_from or 0

    controlnet, optimizer, loader = accelerator.prepare(controlnet, optimizer, loader)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        trim_jsonl(out / "metrics.jsonl", step)
    bar = tqdm(total=config.max_steps, initial=step, desc="controlnet", disable=not (main and config.progress))
    loader.set_epoch(0)
    it = iter(accelerator.skip_first_batches(loader, step * config.grad_accum) if step else loader)
    last_loss, micro = None, step * config.grad_accum
    controlnet.train()
    while step < config.max_steps:
        batch = next(it)
        gen = torch.Generator(device=accelerator.device).manual_seed(
            derive_seed(config.seed, f"noise/{accelerator.process_index}", micro))
        micro += 1
        with accelerator.accumulate(controlnet):
            loss = controlnet_loss(controlnet, pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer,
                                   noise_scheduler, batch, gen, weight_dtype)
            reduced = accelerator.reduce(loss.detach(), "mean")
            if not torch.isfinite(reduced):
                raise NonFiniteLossError(f"non-finite ControlNet loss {float(reduced)} at step {step}; lower --lr")
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if not accelerator.sync_gradients:
            continue
        scheduler.step()
        step += 1
        last_loss = float(reduced)
        bar.update(1)
        bar.set_postfix(loss=f"{last_loss:.4f}")
        if main:
            with (out / "metrics.jsonl").open("a") as fh:
                fh.write(json.dumps({"step": step, "loss": last_loss, "lr": scheduler.get_last_lr()[0]}) + "\n")
            if step % config.checkpoint_every == 0 or step == config.max_steps:
                _save_checkpoint(accelerator.unwrap_model(controlnet), optimizer, scheduler, None, config, step, out)
    bar.close()
    accelerator.wait_for_everyone()
    if main:
        save_controlnet(accelerator.unwrap_model(controlnet), config, out)
        atomic_write_text(out / "training.json", json.dumps(
            {"config": asdict(config), "steps": step, "final_loss": last_loss, "mixed_precision": mp,
             "num_processes": accelerator.num_processes, "palette": palette_record()["name"],
             "dataset": dataset_info(config.real)}, indent=2) + "\n")
    accelerator.wait_for_everyone()
    return ControlNetResult(out=out, steps=step, final_loss=last_loss, resumed_from=resumed_from)
