"""The layout ControlNet trainer and the style reference at real size: SD 1.5 architectures, random weights.

1. ``streetsynth train controlnet`` as a user runs it (a process: start-up, loading the base from a local
   folder, accelerate, checkpoint and final save included) on a sample's real repo, beside a plain loop a
   competent engineer would write on diffusers (``--reference``: the same folder, ``ControlNetModel.from_unet``,
   the same frozen parts, loss, AdamW, pairs, resolution, batch and steps, and a final ``save_pretrained``).
   The base is the SD 1.5 architecture (UNet 860 M, CLIP ViT-L/14 text encoder, the SD VAE) with random
   weights, saved as safetensors.
2. ``generate``'s pipeline call (``outpaint_batch``) on the SD 1.5 inpainting architecture with an IP-Adapter
   of h94/IP-Adapter's size (ViT-H/14 image encoder, 4 image tokens): s per batch without a reference, with
   one reference for the batch, and with a different reference per sample: one call per sample (what
   ``generate`` does then) or one call per reference padded to the batch.

Same threads, size, batch and steps for both sides of each ratio, in one run:

    .venv/bin/python benchmarks/controlnet_style.py --size 64x128 --steps 3            # CPU, about 10 minutes
    .venv/bin/python benchmarks/controlnet_style.py --device cuda --size 512x1024 --steps 20
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12, projection_dim=768)
VIT_H = dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=16, num_hidden_layers=32, patch_size=14,
             image_size=224, hidden_act="gelu")
CLI = str(Path(sys.executable).parent / "streetsynth")


def sd15(in_channels: int):
    """The SD 1.5 UNet (``in_channels`` 4: text-to-image, 9: inpainting), VAE, CLIP-L and a DDIM scheduler."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from streetsynth.models.tiny_inpaint import build_tiny_tokenizer

    torch.manual_seed(0)
    tok = build_tiny_tokenizer()
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, bos_token_id=len(tok) - 2,
                                        eos_token_id=len(tok) - 1, pad_token_id=len(tok) - 1, **CLIP_L))
    unet = UNet2DConditionModel(in_channels=in_channels, out_channels=4, cross_attention_dim=768, attention_head_dim=8,
                                block_out_channels=(320, 640, 1280, 1280), sample_size=64)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), latent_channels=4, layers_per_block=2,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        sample_size=512)
    return dict(unet=unet, vae=vae, text_encoder=text, tokenizer=tok, scheduler=DDIMScheduler(),
                safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def reference_loop(real: str, base: str, out: str, steps: int, height: int, width: int, batch: int, lr: float,
                   device: str = "cpu") -> None:
    """A plain ControlNet training loop on diffusers, as one would write it: no accelerate, no checkpoints
    (bf16 autocast on a GPU, as ``train controlnet`` runs there)."""
    import cv2
    import torch.nn.functional as F
    from diffusers import ControlNetModel, DDPMScheduler, StableDiffusionPipeline

    from streetsynth.generators.layout_palette import row_layout
    from streetsynth.repo import load_split

    pipe = StableDiffusionPipeline.from_pretrained(base, use_safetensors=True).to(device)
    controlnet = ControlNetModel.from_unet(pipe.unet).to(device)
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=device.startswith("cuda"))
    for m in (pipe.unet, pipe.vae, pipe.text_encoder):
        m.requires_grad_(False)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    opt = torch.optim.AdamW(controlnet.parameters(), lr=lr)
    rows = load_split(real, "stitched", "train")
    rng = np.random.default_rng(0)
    for _ in range(steps):
        picks = [rows[int(i)] for i in rng.integers(len(rows), size=batch)]
        px = torch.stack([torch.from_numpy(np.asarray(r["image"].convert("RGB").resize((width, height)))).permute(2, 0, 1)
                          for r in picks]).float().to(device) / 127.5 - 1
        cond = torch.stack([torch.from_numpy(cv2.resize(row_layout(r), (width, height), interpolation=cv2.INTER_NEAREST))
                            .permute(2, 0, 1) for r in picks]).float().to(device) / 255
        with torch.no_grad(), autocast:
            lat = pipe.vae.encode(px).latent_dist.sample() * pipe.vae.config.scaling_factor
            ids = pipe.tokenizer([r["caption"] or "" for r in picks], padding="max_length", truncation=True,
                                 max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids.to(device)
            text = pipe.text_encoder(ids)[0]
        noise = torch.randn_like(lat)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (batch,), device=device)
        noisy = noise_scheduler.add_noise(lat, noise, t)
        with autocast:
            down, mid = controlnet(noisy, t, encoder_hidden_states=text, controlnet_cond=cond, return_dict=False)
            pred = pipe.unet(noisy, t, text, down_block_additional_residuals=down,
                             mid_block_additional_residual=mid).sample
        F.mse_loss(pred.float(), noise.float()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    controlnet.save_pretrained(out, safe_serialization=True)


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_controlnet(work: Path, args) -> None:
    from diffusers import StableDiffusionPipeline

    real = work / "real"
    for cmd in (["make-sample", "--out", str(work / "sample"), "--segments", "2", "--frames", "2",
                 "--panoptic-every", "1"], ["build", "--source", str(work / "sample"), "--out", str(real)]):
        subprocess.run([CLI, *cmd], check=True, stdout=subprocess.DEVNULL)
    base = work / "sd15"
    StableDiffusionPipeline(**sd15(4)).save_pretrained(base, safe_serialization=True)
    h, w = args.size
    ours = [CLI, "train", "controlnet", "--real", str(real), "--model", str(base),
            "--out", str(work / "ours"), "--steps", str(args.steps), "--batch-size", str(args.batch_size),
            "--resolution", f"{h}x{w}", "--no-progress", "--no-resume"] + (["--cpu"] if args.device == "cpu" else [])
    ref = [sys.executable, __file__, "--reference", json.dumps(dict(
        real=str(real), base=str(base), out=str(work / "ref"), steps=args.steps, height=h, width=w,
        batch=args.batch_size, lr=1e-5, device=args.device))]
    t_ref, t_ours = _timed(ref), _timed(ours)
    print(f"train controlnet, {args.steps} steps at {h}x{w}, batch {args.batch_size}, whole command: "
          f"streetsynth {t_ours:.1f} s, plain loop {t_ref:.1f} s, ratio {t_ours / t_ref:.2f}")


def bench_style(work: Path, args) -> None:
    from diffusers import StableDiffusionInpaintPipeline
    from PIL import Image

    from streetsynth.generators.outpaint import Canvas, outpaint_batch
    from streetsynth.generators.style_reference import load_ip_adapter
    from streetsynth.models.tiny_ip_adapter import WEIGHT, write_tiny_ip_adapter

    pipe = StableDiffusionInpaintPipeline(**sd15(9)).to(args.device)
    write_tiny_ip_adapter(work / "ip-adapter", pipe.unet, embed_dim=1024, vision=VIT_H)
    h, w = args.size
    rng = np.random.default_rng(0)
    mask = np.zeros((h, w), np.uint8)
    mask[:, 2 * w // 3:] = 255
    canvases = [Canvas(rng.integers(0, 255, (h, w, 3), np.uint8), mask, 2 * w // 3, 1.0) for _ in range(args.batch)]
    refs = [Image.fromarray(rng.integers(0, 255, (256, 256, 3), np.uint8)) for _ in range(args.batch)]

    def call(style, part=range(args.batch), pad=args.batch):
        start = time.perf_counter()
        outpaint_batch(pipe, [canvases[i] for i in part], ["a street"] * len(part), ["cartoon"] * len(part),
                       list(part), steps=args.steps, style=style, pad_to=pad)
        return time.perf_counter() - start

    plain = min(call(None) for _ in range(2))
    load_ip_adapter(pipe, str(work / "ip-adapter"), WEIGHT, 0.6)
    one = min(call(refs[0]) for _ in range(2))
    padded = min(sum(call(refs[i], [i]) for i in range(args.batch)) for _ in range(2))  # a padded call per reference
    alone = min(sum(call(refs[i], [i], 1) for i in range(args.batch)) for _ in range(2))  # generate's choice
    print(f"outpaint of {args.batch} canvases, {args.steps} steps at {h}x{w}: no reference, one call {plain:.2f} s; "
          f"one reference, one call {one:.2f} s ({one / plain:.2f}x); a reference per sample, one call per sample "
          f"{alone:.2f} s ({alone / plain:.2f}x; what generate does), padded calls per reference {padded:.2f} s "
          f"({padded / plain:.2f}x)")


def main(argv: list[str] | None = None) -> int:
    from streetsynth.config import parse_size

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=parse_size, default=(64, 128), help="canvas HxW (default 64x128)")
    p.add_argument("--steps", type=int, default=3, help="training steps, and denoising steps per call")
    p.add_argument("--batch-size", type=int, default=1, help="ControlNet training batch")
    p.add_argument("--batch", type=int, default=4, help="canvases per outpaint call")
    p.add_argument("--device", default="cpu")
    p.add_argument("--only", choices=("controlnet", "style"), default=None)
    p.add_argument("--reference", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.reference:
        reference_loop(**json.loads(args.reference))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "controlnet"):
            bench_controlnet(Path(tmp), args)
        if args.only in (None, "style"):
            bench_style(Path(tmp), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
