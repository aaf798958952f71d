"""Generator overhead: ``run_generation`` beside a plain loop of the same batched pipeline calls.

Both sides outpaint the same realistic 512x1024 street scenes (the sample maker's renderer) with
the same model, batch size, steps and seeds; the plain loop keeps the images in memory. Ours adds
the seam gate, labels, lossless WebP encoding (on a worker thread overlapping the next call), Parquet shards
and the manifest. One-off costs (reading the source, version resolution, info/README, contact
sheet) are timed apart; the per-sample overhead is (ours - one-off - plain) / samples. Also prints
PNG/WebP encoding time and size per image on the same scenes.

    .venv/bin/python benchmarks/generate.py                       # tiny model on the CPU, minutes
    .venv/bin/python benchmarks/generate.py --full-size --device cuda --dtype fp16 --batch-size 4 --num 16
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

from factories_generate import _png, stitched_row  # noqa: E402

import streetsynth.generators.generate as gen  # noqa: E402
from streetsynth import repo  # noqa: E402
from streetsynth.generators.generate import GenerateConfig, run_generation  # noqa: E402
from streetsynth.generators.outpaint import DEFAULT_NEGATIVE, DEFAULT_PROMPT, make_canvas, outpaint_batch  # noqa: E402
from streetsynth.repo import load_split  # noqa: E402
from streetsynth.builders.sample import render_panorama  # noqa: E402
from streetsynth.schema import STITCHED, stitched_features  # noqa: E402
from streetsynth.seeds import derive_seed  # noqa: E402
from streetsynth.models.tiny_inpaint import build_tiny_inpaint_pipeline, build_tiny_tokenizer  # noqa: E402
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


def scene_repo(path: Path, rows: int, height: int, width: int) -> Path:
    """A REAL repo whose images are the sample maker's rendered street scenes."""
    rng = np.random.default_rng(0)
    data = []
    for i in range(rows):
        row = stitched_row(i, rng, height, width, front_x1=int(width * 0.7))
        scene = render_panorama(np.random.default_rng(i), height, width, height * 0.43, i % 4 == 3, 5, 4)[0]
        row["image"] = {"bytes": _png(scene), "path": None}
        data.append(row)
    repo.write_shard(path, STITCHED, "train", 0, data, stitched_features())
    repo.write_info(path, {"kind": "real", "fingerprint": f"scenes-{rows}-{height}x{width}"})
    repo.write_readme(path, default=STITCHED)
    return path


def plain_loop(pipe, rows, batch_size: int, steps: int, guidance: float, seed: int) -> float:
    """The same batched pipeline calls (and paste-back) as ours, images kept in memory; wall seconds."""
    t0 = time.perf_counter()
    canvases = [make_canvas(r) for r in rows]
    for k in range(0, len(rows), batch_size):
        group = canvases[k:k + batch_size]
        n = len(group)
        outpaint_batch(pipe, group, [DEFAULT_PROMPT] * n, [DEFAULT_NEGATIVE] * n,
                       [derive_seed(seed, r["id"], 0) for r in rows[k:k + batch_size]], steps, guidance, 1.0, 8,
                       pad_to=batch_size)
    return time.perf_counter() - t0


def one_off_timers() -> dict[str, float]:
    """Wrap the generator's one-off steps so their seconds add up in the returned dict."""
    spent: dict[str, float] = {}
    for name in ("_process_state", "load_split", "read_info", "resolve_version", "ShardWriter", "write_info",
                 "write_readme", "_contact_sheet", "merge_manifests", "fingerprint"):
        original = getattr(gen, name)

        def wrapped(*a, _f=original, _n=name, **k):
            t = time.perf_counter()
            try:
                return _f(*a, **k)
            finally:
                spent[_n] = spent.get(_n, 0.0) + time.perf_counter() - t

        setattr(gen, name, wrapped)
    return spent


def encoders(images: list[np.ndarray]) -> None:
    """ms and kB per image of the PNG/WebP settings considered, on the same scenes."""
    import io

    import cv2
    from PIL import Image

    def pil(fmt, **kw):
        def enc(a):
            buf = io.BytesIO()
            Image.fromarray(a).save(buf, format=fmt, **kw)
            return buf.getvalue()
        return enc

    options = {"PNG, PIL default level 6": pil("PNG"), "PNG, PIL compress_level=1": pil("PNG", compress_level=1),
               "PNG, OpenCV level 1": lambda a: cv2.imencode(".png", a[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])[1],
               "WebP lossless, method 0 (ours)": pil("WEBP", lossless=True, method=0, quality=0)}
    for name, enc in options.items():
        t = time.perf_counter()
        sizes = [len(enc(a)) for a in images]
        print(f"  {name:28s} {(time.perf_counter() - t) / len(images) * 1e3:7.1f} ms  {np.mean(sizes) / 1e3:7.0f} kB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num", type=int, default=4, help="samples")
    p.add_argument("--batch-size", type=int, default=2, help="canvases per pipeline call, both sides")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--size", default="512x1024", help="HxW of the real scenes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32")
    p.add_argument("--full-size", action="store_true", help="SD-2-inpainting-sized UNet/VAE, random weights")
    p.add_argument("--attention", default=None, help="diffusers attention backend for the UNet, e.g. native, flash")
    p.add_argument("--compile", action="store_true", help="torch.compile the UNet (both sides)")
    args = p.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    pipe = full_size_pipeline() if args.full_size else build_tiny_inpaint_pipeline()
    pipe = pipe.to(args.device) if dtype == torch.float32 else pipe.to(args.device, dtype)
    if args.attention:
        pipe.unet.set_attention_backend(args.attention)
    if args.compile:
        pipe.unet = torch.compile(pipe.unet)
    pipe = timed(pipe)
    with tempfile.TemporaryDirectory() as tmp:
        real = scene_repo(Path(tmp) / "real", args.num, h, w)
        rows = list(load_split(real, "stitched", "train"))
        plain_loop(pipe, rows[:args.batch_size], args.batch_size, args.steps, 7.5, 0)  # warm-up at the batch shape
        t_plain = plain_loop(pipe, rows, args.batch_size, args.steps, 7.5, 0)
        spent = one_off_timers()
        pipe._seconds = 0.0
        t0 = time.perf_counter()
        res = run_generation(GenerateConfig(real=str(real), out=str(Path(tmp) / "store"),
                                            pipeline=injected(pipe, "benchmark-random-weights", "seed-0"),
                                            batch_size=args.batch_size, steps=args.steps, seam_threshold=1e9,
                                            rows_per_shard=8, device=args.device, progress=False))
        t_ours = time.perf_counter() - t0
        scenes = [np.asarray(r["image"].convert("RGB")) for r in rows]
    n = res.counts["accepted"]
    one_off = sum(spent.values())
    overhead = (t_ours - one_off - t_plain) / n
    model = "full-size (SD-2-inpainting UNet/VAE, random)" if args.full_size else "tiny random"
    print(f"model {model}, {n} samples {h}x{w}, batch {args.batch_size} both sides, {args.steps} steps, "
          f"device {args.device} {args.dtype}, attention {args.attention or 'default'}, compile {args.compile}")
    print(f"plain loop of the same pipeline calls: {t_plain / n * 1e3:9.0f} ms per sample")
    print(f"streetsynth generate, written:         {t_ours / n * 1e3:9.0f} ms per sample "
          f"({t_plain / t_ours:.2f}x the plain loop's throughput, one-off costs included)")
    print(f"  one-off costs, apart: {one_off * 1e3:.0f} ms in all ("
          + ", ".join(f"{k} {v * 1e3:.0f}" for k, v in sorted(spent.items())) + ")")
    inside = pipe._seconds / n
    outside = (t_ours - one_off) / n - inside
    print(f"  per sample: {inside * 1e3:.0f} ms inside pipeline calls, {outside * 1e3:.0f} ms outside them "
          f"(one-off costs excluded) = {outside / inside:.1%} of the pipeline's time")
    print(f"  per-sample overhead against the plain loop: {overhead * 1e3:.0f} ms = {overhead / (t_plain / n):.1%} "
          f"(noisy on a shared machine: both sides' pipeline times vary)")
    print("PNG/WebP encoding of these scenes, per image:")
    encoders(scenes)


if __name__ == "__main__":
    main()
