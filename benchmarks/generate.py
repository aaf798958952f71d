"""Generation throughput: our batched, gated, streamed path beside a plain loop, same model and settings.

Prints samples/s of ``run_generation`` (batched pipeline calls, seam gate, labels carried, Parquet
shards, manifest) and of a plain loop that calls the pipeline once per image and keeps the images in
memory, and for ours the share of wall time spent outside the pipeline call.

    .venv/bin/python benchmarks/generate.py                       # tiny model on the CPU, a minute
    .venv/bin/python benchmarks/generate.py --full-size --device cuda --dtype fp16 --size 512x1024
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from factories_generate import make_real_repo  # noqa: E402

from streetsynth.generators.generate import GenerateConfig, run_generation  # noqa: E402
from streetsynth.generators.outpaint import DEFAULT_NEGATIVE, DEFAULT_PROMPT, make_canvas, paste_known  # noqa: E402
from streetsynth.repo import load_split  # noqa: E402
from streetsynth.seeds import derive_seed  # noqa: E402
from streetsynth.tiny.inpaint import build_tiny_inpaint_pipeline, build_tiny_tokenizer  # noqa: E402
from streetsynth.models.inpaint import injected  # noqa: E402


def full_size_pipeline(seed: int = 0):
    """SD-2-inpainting-sized UNet and VAE (random weights) with a small 1024-wide text encoder."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(in_channels=9, out_channels=4, cross_attention_dim=1024,
                                attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
                                block_out_channels=(320, 640, 1280, 1280), sample_size=64)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        layers_per_block=2, sample_size=512)
    tok = build_tiny_tokenizer()
    text = CLIPTextModel(CLIPTextConfig(hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
                                        num_hidden_layers=2, vocab_size=len(tok), max_position_embeddings=77,
                                        bos_token_id=len(tok) - 2, eos_token_id=len(tok) - 1, pad_token_id=len(tok) - 1))
    pipe = StableDiffusionInpaintPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tok,
                                          scheduler=DDIMScheduler(), safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def timed(pipe):
    """The pipeline, with the seconds spent inside its ``__call__`` added up in ``pipe._seconds``."""
    original = type(pipe).__call__

    @functools.wraps(original)
    def call(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            self._seconds += time.perf_counter() - t0

    pipe.__class__ = type(f"Timed{type(pipe).__name__}", (type(pipe),), {"__call__": call})
    pipe._seconds = 0.0
    return pipe


def plain_loop(pipe, rows, steps: int, guidance: float, seed: int) -> float:
    """One pipeline call per image, known pixels pasted back; returns wall seconds."""
    from PIL import Image

    t0 = time.perf_counter()
    for row in rows:
        c = make_canvas(row)
        h, w = c.image.shape[:2]
        out = pipe(prompt=DEFAULT_PROMPT, negative_prompt=DEFAULT_NEGATIVE, image=Image.fromarray(c.image),
                   mask_image=Image.fromarray(c.mask), height=h, width=w, num_inference_steps=steps,
                   guidance_scale=guidance, generator=torch.Generator(pipe.device).manual_seed(derive_seed(seed, row["id"])),
                   output_type="np").images[0]
        paste_known((out * 255).round().astype(np.uint8), c)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num", type=int, default=16, help="samples")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--size", default="64x128", help="HxW of the real scenes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32")
    p.add_argument("--full-size", action="store_true", help="SD-2-inpainting-sized UNet/VAE, random weights")
    args = p.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    pipe = full_size_pipeline() if args.full_size else build_tiny_inpaint_pipeline()
    pipe = timed(pipe.to(args.device) if dtype == torch.float32 else pipe.to(args.device, dtype))
    with tempfile.TemporaryDirectory() as tmp:
        real = make_real_repo(Path(tmp) / "real", rows=args.num, height=h, width=w)
        rows = list(load_split(real, "stitched", "train"))
        plain_loop(pipe, rows[:1], args.steps, 7.5, 0)  # warm-up
        t_plain = plain_loop(pipe, rows, args.steps, 7.5, 0)
        pipe._seconds = 0.0
        t0 = time.perf_counter()
        res = run_generation(GenerateConfig(real=str(real), out=str(Path(tmp) / "store"),
                                            pipeline=injected(pipe, "benchmark-random-weights", "seed-0"),
                                            batch_size=args.batch_size, steps=args.steps, seam_threshold=1e9,
                                            rows_per_shard=8, device=args.device, progress=False))
        t_ours = time.perf_counter() - t0
    model = "full-size (SD-2-inpainting UNet/VAE, random)" if args.full_size else "tiny random"
    print(f"model {model}, {args.num} samples {h}x{w}, {args.steps} steps, device {args.device} {args.dtype}")
    print(f"plain loop (1 image per call):         {args.num / t_plain:8.2f} samples/s")
    print(f"streetsynth generate (batch {args.batch_size}, written): {res.counts['accepted'] / t_ours:8.2f} samples/s"
          f"  ({t_plain / t_ours:.2f}x the plain loop)")
    print(f"share of our wall time outside the pipeline call: {1 - pipe._seconds / t_ours:.1%}")


if __name__ == "__main__":
    main()
