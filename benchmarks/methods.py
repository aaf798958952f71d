"""Images per second of occlude, rerender and ground, side by side in one run with the same settings.

Real-size architectures (SD 1.5 UNet, VAE and CLIP ViT-L text encoder; a ControlNet made from the
UNet; GLIGEN's gated UNet) with random weights, built from configs: nothing is downloaded. The
verifier is a stub that returns no masks, so the figures are the generation methods' own cost
(the detector's is in benchmarks/label.py). Also prints the cost of capturing cross-attention
(ground's pipeline with and without the storing processors).

    python benchmarks/methods.py --device cuda --size 512x1024 --steps 30 --num 4   # on a GPU
    python benchmarks/methods.py --tiny                                               # smoke run on a CPU
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def full_size_parts(device, dtype):
    """SD 1.5-shaped UNet (4 and 9 input channels), VAE, text encoder, tokenizer, scheduler; random weights."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from streetsynth.models.tiny_inpaint import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    unet_cfg = dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)
    text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                                        num_hidden_layers=12, vocab_size=len(tok), max_position_embeddings=77,
                                        bos_token_id=len(tok) - 2, eos_token_id=len(tok) - 1,
                                        pad_token_id=len(tok) - 1))
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4,
                        sample_size=512)
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    common = dict(vae=vae, text_encoder=text, tokenizer=tok, scheduler=sched)
    return common, (lambda **kw: UNet2DConditionModel(**{**unet_cfg, **kw}))


def build(kind: str, tiny: bool, device: str, dtype):
    import diffusers as d

    if tiny:
        from streetsynth.models.tiny_controlnet import build_tiny_controlnet_pipeline, build_tiny_text2img_pipeline
        from streetsynth.models.tiny_gligen import build_tiny_gligen_pipeline
        from streetsynth.models.tiny_inpaint import build_tiny_inpaint_pipeline

        pipe = {"inpaint": build_tiny_inpaint_pipeline, "gligen": build_tiny_gligen_pipeline,
                "controlnet": build_tiny_controlnet_pipeline, "text2img": build_tiny_text2img_pipeline}[kind](0)
    else:
        common, unet = full_size_parts(device, dtype)
        none = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        if kind == "inpaint":
            pipe = d.StableDiffusionInpaintPipeline(unet=unet(in_channels=9), **common, **none)
        elif kind == "gligen":
            u = unet(attention_type="gated")
            u.conv_in = torch.nn.Conv2d(9, u.conv_in.out_channels, 3, padding=1)
            pipe = d.StableDiffusionGLIGENPipeline(unet=u, **common, **none)
        elif kind == "controlnet":
            u = unet()
            pipe = d.StableDiffusionControlNetPipeline(unet=u, controlnet=d.ControlNetModel.from_unet(u), **common,
                                                       **none)
        else:
            pipe = d.StableDiffusionPipeline(unet=unet(), **common, **none)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device=device, dtype=dtype)


def no_masks(image):
    return np.zeros((0, *image.shape[:2]), bool), np.zeros(0, np.int64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", default="512x1024")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--num", type=int, default=4)
    ap.add_argument("--tiny", action="store_true", help="tiny models at 64x128, 2 steps: a smoke run")
    a = ap.parse_args()
    from factories_generate import make_real_repo

    from streetsynth.generators.ground import GroundConfig, run_ground
    from streetsynth.generators.occlude import OccludeConfig, run_occlude
    from streetsynth.generators.rerender import RerenderConfig, run_rerender

    h, w = (64, 128) if a.tiny else tuple(int(v) for v in a.size.split("x"))
    steps = 2 if a.tiny else a.steps
    dtype = torch.float16 if a.device.startswith("cuda") else torch.float32
    tmp = Path(tempfile.mkdtemp())
    real = make_real_repo(tmp / "real", rows=a.num, height=h, width=w)
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    results = {}

    def timed(name, fn, n):
        fn(warm=True)
        sync()
        t = time.perf_counter()
        fn(warm=False)
        sync()
        results[name] = n / (time.perf_counter() - t)
        print(f"{name:28s} {results[name]:8.3f} images/s", flush=True)

    for backend in ("inpaint", "gligen"):
        pipe = build(backend, a.tiny, a.device, dtype)
        timed(f"occlude ({backend}, 512 crop)", lambda warm, p=pipe, b=backend: run_occlude(OccludeConfig(
            real=str(real), out=str(tmp / f"occ-{b}-{warm}"), classes=("pedestrian",), min_size=4,
            num=1 if warm else a.num, size=64 if a.tiny else 512, steps=steps, device=a.device, pipeline=p)), a.num)
        del pipe
    pipe = build("controlnet", a.tiny, a.device, dtype)
    timed(f"rerender ({h}x{w})", lambda warm: run_rerender(RerenderConfig(
        real=str(real), out=str(tmp / f"rr-{warm}"), num=1 if warm else a.num, steps=steps, min_kept=0,
        device=a.device, pipeline=pipe, verifier=no_masks)), a.num)
    del pipe
    pipe = build("text2img", a.tiny, a.device, dtype)
    gen = torch.Generator(device=a.device)

    def plain(warm):
        for _ in range(1 if warm else a.num):
            pipe(prompt="a street with a car", height=h, width=w, num_inference_steps=steps,
                 generator=gen.manual_seed(0), output_type="np")

    timed(f"text-to-image alone ({h}x{w})", plain, a.num)
    timed(f"ground ({h}x{w})", lambda warm: run_ground(GroundConfig(
        out=str(tmp / f"gr-{warm}"), prompts=("a street with a car and a pedestrian",), num=1 if warm else a.num,
        size=(h, w), steps=steps, sam=None, iou_threshold=0.0, min_area=8, device=a.device, pipeline=pipe,
        verifier=no_masks)), a.num)
    ratio = results[f"ground ({h}x{w})"] / results[f"text-to-image alone ({h}x{w})"]
    print(f"ground / text-to-image alone: {ratio:.2f}x (attention capture, masks and writing)")


if __name__ == "__main__":
    main()
