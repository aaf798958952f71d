"""Outpainting throughput and peak GPU memory per model family, real-size architectures, random weights.

Builds each family's pipeline from its published architecture (random weights, no download): the
SD-2-inpainting UNet, the SDXL-inpainting UNet with CLIP-L + OpenCLIP-bigG, the SD3.5-medium MMDiT
with CLIP-L/G + T5-XXL, the FLUX.1-Fill transformer with CLIP-L + T5-XXL, and times
``outpaint_batch`` (the generator's own call, with the family's guidance and sequence length) at
one canvas size, printing images/s and peak allocated memory side by side in one run.

    .venv/bin/python benchmarks/families.py --device cuda --dtype bf16 --size 512x1024 --steps 20
    .venv/bin/python benchmarks/families.py --families sd-inpaint --device cpu --dtype fp32 --size 64x128 --steps 2
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
import torch

from streetsynth.generators.outpaint import DEFAULT_NEGATIVE, DEFAULT_PROMPT, Canvas, outpaint_batch
from streetsynth.models.inpaint import FAMILIES, injected
from streetsynth.models.tiny_inpaint import build_tiny_t5_tokenizer
from streetsynth.models.tiny_inpaint import build_tiny_tokenizer

CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
              projection_dim=768)
CLIP_H = dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23,
              projection_dim=1024, hidden_act="gelu")
CLIP_G = dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32,
              projection_dim=1280, hidden_act="gelu")
T5_XXL = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, feed_forward_proj="gated-gelu",
              vocab_size=32128)


def _clip(cfg, projection: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tok = build_tiny_tokenizer()
    model = (CLIPTextModelWithProjection if projection else CLIPTextModel)(CLIPTextConfig(
        vocab_size=49408, max_position_embeddings=77, bos_token_id=len(tok) - 2, eos_token_id=len(tok) - 1,
        pad_token_id=len(tok) - 1, **cfg))
    return model, tok


def _t5():
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(**T5_XXL)), build_tiny_t5_tokenizer()


def _cpu(scheduler_class, **kw):
    """A scheduler built on the CPU (its sigmas live there) whatever the device context."""
    with torch.device("cpu"):
        return scheduler_class(**kw)


def _vae(latent: int, **kw):
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(128, 256, 512, 512), latent_channels=latent, layers_per_block=2,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         sample_size=1024, **kw)


def sd2():
    from diffusers import DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel

    unet = UNet2DConditionModel(in_channels=9, out_channels=4, cross_attention_dim=1024,
                                attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
                                block_out_channels=(320, 640, 1280, 1280), sample_size=64)
    text, tok = _clip(CLIP_H, False)
    return StableDiffusionInpaintPipeline(unet=unet, vae=_vae(4), text_encoder=text, tokenizer=tok,
                                          scheduler=_cpu(DDIMScheduler), safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)


def sdxl():
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline, UNet2DConditionModel

    unet = UNet2DConditionModel(
        in_channels=9, out_channels=4, sample_size=128, block_out_channels=(320, 640, 1280),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=6 * 256 + 1280)
    (text, tok), (text2, tok2) = _clip(CLIP_L, False), _clip(CLIP_G, True)
    return StableDiffusionXLInpaintPipeline(vae=_vae(4), text_encoder=text, text_encoder_2=text2, tokenizer=tok,
                                            tokenizer_2=tok2, unet=unet, scheduler=_cpu(EulerDiscreteScheduler),
                                            requires_aesthetics_score=False, add_watermarker=False)


def sd3():
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3InpaintPipeline

    transformer = SD3Transformer2DModel(
        sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=24, attention_head_dim=64,
        num_attention_heads=24, joint_attention_dim=4096, caption_projection_dim=1536, pooled_projection_dim=2048,
        pos_embed_max_size=384, dual_attention_layers=tuple(range(13)), qk_norm="rms_norm")
    (text, tok), (text2, tok2), (text3, tok3) = _clip(CLIP_L, True), _clip(CLIP_G, True), _t5()
    return StableDiffusion3InpaintPipeline(
        transformer=transformer, scheduler=_cpu(FlowMatchEulerDiscreteScheduler, shift=3.0),
        vae=_vae(16, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035),
        text_encoder=text, tokenizer=tok, text_encoder_2=text2, tokenizer_2=tok2, text_encoder_3=text3,
        tokenizer_3=tok3)


def flux_fill():
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxFillPipeline, FluxTransformer2DModel

    transformer = FluxTransformer2DModel(patch_size=1, in_channels=384, out_channels=64, num_layers=19,
                                         num_single_layers=38, attention_head_dim=128, num_attention_heads=24,
                                         joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                                         axes_dims_rope=(16, 56, 56))
    (text, tok), (text2, tok2) = _clip(CLIP_L, False), _t5()
    return FluxFillPipeline(
        scheduler=_cpu(FlowMatchEulerDiscreteScheduler, shift=3.0, use_dynamic_shifting=True), transformer=transformer,
        vae=_vae(16, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611),
        text_encoder=text, tokenizer=tok, text_encoder_2=text2, tokenizer_2=tok2)


BUILDERS = {"sd-inpaint": sd2, "sdxl-inpaint": sdxl, "sd3-inpaint": sd3, "flux-fill": flux_fill}


def canvas(h: int, w: int) -> Canvas:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    kw = int(w * 0.6)
    mask[:, kw:] = 255
    return Canvas(image, mask, kw, 1.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    p.add_argument("--size", default="512x1024")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2, help="timed calls after one warm-up call")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), default="bf16")
    args = p.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    cuda = args.device.startswith("cuda")
    print(f"{args.size}, {args.steps} steps, batch {args.batch}, {args.dtype} on {args.device}; random weights")
    for name in args.families:
        fam = FAMILIES[name]
        try:
            torch.set_default_dtype(dtype)
            with torch.device(args.device):
                pipe = BUILDERS[name]()
            torch.set_default_dtype(torch.float32)
            pipe = pipe.to(device=args.device, dtype=dtype)
            pipe.set_progress_bar_config(disable=True)
            model = injected(pipe, f"benchmark-random-{name}", "random-weights")
            params = sum(x.numel() for x in model.denoiser.parameters()) / 1e9
            c = canvas(h, w)
            call = lambda: outpaint_batch(  # noqa: E731
                model.pipeline, [c] * args.batch, [DEFAULT_PROMPT] * args.batch,
                [DEFAULT_NEGATIVE] * args.batch if fam.negative_prompt else None, list(range(args.batch)),
                args.steps, fam.default_guidance, 1.0, max_sequence_length=fam.max_sequence_length)
            call()
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            for _ in range(args.repeats):
                call()
            if cuda:
                torch.cuda.synchronize()
            rate = args.repeats * args.batch / (time.perf_counter() - t0)
            peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
            print(f"{name:13s} denoiser {params:5.2f} B params: {rate:7.3f} images/s, peak {peak:6.1f} GiB")
        except torch.OutOfMemoryError:
            print(f"{name:13s} out of memory at this size and dtype")
        finally:
            torch.set_default_dtype(torch.float32)
            pipe = model = None
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
