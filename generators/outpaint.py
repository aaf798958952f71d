"""Outpainting a stitched scene: keep the FRONT part, invent the FRONT_RIGHT part with diffusion.

A :class:`Canvas` holds the known pixels on the left, a mask that is white (255) where pixels are
invented, and the known width. :func:`outpaint_batch` runs an injected diffusers inpainting
pipeline (SD 1.5 / SD 2 / SDXL inpainting, or the tiny one) on several canvases in one call with
one ``torch.Generator`` per sample, then pastes the known pixels back exactly. The VAE round trip
shifts colours slightly, so a narrow band just inside the invented region carries the difference
between the known edge and the generated edge, fading to zero: the paste leaves no step.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

DEFAULT_PROMPT = "street view scenery, buildings, plants and trees, pedestrians, front right"
DEFAULT_NEGATIVE = "3d, cartoon, animated, distorted, unrealistic, disfigured, drawing, painting"
#: Model name that builds the tiny random pipeline instead of loading weights.
TINY_MODEL = "tiny"
#: The latent is 8x smaller than the image, so canvas sides are multiples of this.
LATENT_FACTOR = 8
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Canvas:
    """An image to outpaint: known pixels in ``[:, :known_width]``, mask 255 where invented."""

    image: np.ndarray  # (H, W, 3) uint8; the invented region holds the known part's mean colour
    mask: np.ndarray  # (H, W) uint8, 255 where pixels are invented
    known_width: int  # columns [0, known_width) are kept exactly
    scale: float  # canvas width / source width (to carry labels across)


def known_width_for(row: dict[str, Any], canvas_width: int, invent_fraction: float | None = None) -> int:
    """Columns kept from the source: left of ``stitch.front_x1`` (scaled), or ``1 - invent_fraction``."""
    if invent_fraction is not None:
        if not 0.0 < invent_fraction < 1.0:
            raise ValueError(f"invent_fraction must lie in (0, 1), got {invent_fraction}")
        return int(round(canvas_width * (1.0 - invent_fraction)))
    src_w = int(row.get("width") or 0)
    x1 = int((row.get("stitch") or {}).get("front_x1") or 0)
    if src_w <= 0 or not 0 < x1 < src_w:
        raise ValueError(f"row {row.get('id')!r}: stitch.front_x1={x1} is not inside the image width {src_w}; "
                         "pass an invent fraction instead")
    return int(round(x1 * canvas_width / src_w))


def canvas_size(height: int, width: int, size: tuple[int, int] | None = None) -> tuple[int, int]:
    """(H, W) of the canvas: ``size`` if given, else the source rounded down to multiples of 8."""
    h, w = size if size is not None else (height, width)
    h, w = (h // LATENT_FACTOR) * LATENT_FACTOR, (w // LATENT_FACTOR) * LATENT_FACTOR
    if h < LATENT_FACTOR or w < 2 * LATENT_FACTOR:
        raise ValueError(f"canvas {h}x{w} is too small (at least 8x16)")
    return h, w


def make_canvas(row: dict[str, Any], size: tuple[int, int] | None = None,
                invent_fraction: float | None = None) -> Canvas:
    """The canvas of a stitched row (``row["image"]`` a PIL image or an RGB array)."""
    img = row["image"]
    rgb = np.asarray(img.convert("RGB") if isinstance(img, Image.Image) else img, dtype=np.uint8)
    src_h, src_w = rgb.shape[:2]
    h, w = canvas_size(src_h, src_w, size)
    if (h, w) != (src_h, src_w):
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    kw = known_width_for({**row, "width": row.get("width") or src_w}, w, invent_fraction)
    if not 0 < kw < w:
        raise ValueError(f"row {row.get('id')!r}: known width {kw} leaves nothing to keep or invent in {w} columns")
    image = rgb.copy()
    image[:, kw:] = rgb[:, :kw].reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[:, kw:] = 255
    return Canvas(image=image, mask=mask, known_width=kw, scale=w / src_w)


def paste_known(generated: np.ndarray, canvas: Canvas, feather: int = 8) -> np.ndarray:
    """``generated`` with the known pixels put back bit for bit and the edge difference feathered.

    In the ``feather`` columns right of the known edge, the generated pixels get the per-row colour
    difference (known - generated, over the last 2 known columns, smoothed vertically) added with
    a weight falling linearly from 1 to 0. Outside that band the generated pixels are untouched.
    """
    out = generated.astype(np.float32)
    kw, w = canvas.known_width, generated.shape[1]
    band = min(feather, w - kw)
    if band > 0:
        cols = slice(max(0, kw - 2), kw)
        diff = canvas.image[:, cols].astype(np.float32).mean(axis=1) - out[:, cols].mean(axis=1)
        diff = cv2.GaussianBlur(diff[:, None, :], (1, 5), 0)[:, 0, :]
        weight = 1.0 - (np.arange(band, dtype=np.float32) + 1.0) / (band + 1.0)
        out[:, kw:kw + band] += weight[None, :, None] * diff[:, None, :]
    out = np.clip(out.round(), 0, 255).astype(np.uint8)
    out[:, :kw] = canvas.image[:, :kw]
    return out


def _call_kwargs(pipe, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Only the keyword arguments this pipeline's ``__call__`` accepts (SD and SDXL differ)."""
    params = inspect.signature(pipe.__call__).parameters
    return {k: v for k, v in kwargs.items() if k in params}


def outpaint_batch(pipe, canvases: list[Canvas], prompts: list[str], negative_prompts: list[str],
                   seeds: list[int], steps: int = 30, guidance_scale: float = 7.5, strength: float = 1.0,
                   feather: int = 8, pad_to: int | None = None) -> list[np.ndarray]:
    """Outpaint same-sized canvases in ONE pipeline call; returns RGB uint8 composites.

    ``pad_to`` repeats the last canvas so every call has the same batch size: a sample's pixels
    then do not depend on how many others share its call (matmul kernels vary with batch shape).
    """
    n = len(canvases)
    if n == 0:
        return []
    shapes = {c.image.shape for c in canvases}
    if len(shapes) != 1:
        raise ValueError(f"outpaint_batch needs canvases of one size, got {sorted(shapes)}")
    pad = max(0, (pad_to or n) - n)
    idx = list(range(n)) + [n - 1] * pad
    h, w = canvases[0].image.shape[:2]
    device = getattr(pipe, "device", torch.device("cpu"))
    gen_device = "cpu" if device.type == "mps" else device
    generators = [torch.Generator(device=gen_device).manual_seed(int(seeds[i])) for i in idx]
    kwargs = dict(
        prompt=[prompts[i] for i in idx],
        negative_prompt=[negative_prompts[i] for i in idx],
        image=[Image.fromarray(canvases[i].image) for i in idx],
        mask_image=[Image.fromarray(canvases[i].mask) for i in idx],
        height=h, width=w, num_inference_steps=steps, guidance_scale=guidance_scale, strength=strength,
        generator=generators, output_type="np",
    )
    with torch.inference_mode():
        images = pipe(**_call_kwargs(pipe, kwargs)).images
    images = (np.asarray(images[:n], dtype=np.float32) * 255.0).round().clip(0, 255).astype(np.uint8)
    return [paste_known(img, c, feather) for img, c in zip(images, canvases)]


def weights_hash(folder: str | Path) -> str:
    """sha256 (16 hex) over the relative paths and bytes of a local model folder's files."""
    digest = hashlib.sha256()
    folder = Path(folder)
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(path.relative_to(folder).as_posix().encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def resolve_dtype(dtype: str | None, device: str) -> torch.dtype:
    """fp16 on CUDA and fp32 elsewhere unless ``dtype`` (fp32/fp16/bf16) says otherwise."""
    if dtype is None:
        return torch.float16 if str(device).startswith("cuda") else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def load_inpaint_pipeline(model_id_or_path: str, revision: str | None = None, device: str = "cpu",
                          dtype: str | None = None, attention: str | None = None,
                          compile_unet: bool = False) -> tuple[Any, str, str]:
    """(pipeline, model_id, revision) for a Hub id, a local folder, or ``"tiny"``.

    The revision is the requested one, the commit of the cached snapshot, or for a local folder a
    hash of its weights, so provenance names exactly what made a row. ``attention`` is a diffusers
    attention backend name (e.g. ``"native"``, ``"flash"``); ``compile_unet`` wraps the UNet in
    ``torch.compile``.
    """
    torch_dtype = resolve_dtype(dtype, device)
    if model_id_or_path == TINY_MODEL:
        from streetsynth.tiny.inpaint import build_tiny_inpaint_pipeline

        pipe, model_id, rev = build_tiny_inpaint_pipeline(seed=0), "streetsynth/tiny-random-inpaint", "seed-0"
    else:
        from diffusers import AutoPipelineForInpainting

        local = Path(model_id_or_path)
        if local.exists():
            if not (local / "model_index.json").exists():
                raise FileNotFoundError(f"{local}: not a diffusers pipeline folder (no model_index.json)")
            model_id, rev = str(local.resolve()), "sha256:" + weights_hash(local)
        else:
            model_id, rev = model_id_or_path, revision or _cached_commit(model_id_or_path, revision) or "main"
        pipe = AutoPipelineForInpainting.from_pretrained(str(model_id_or_path), revision=revision, dtype=torch_dtype)
        if getattr(pipe, "safety_checker", None) is not None:
            pipe.safety_checker = None  # street scenes; a blacked-out image would be a silent bad row
    pipe = pipe.to(device) if pipe.unet.dtype == torch_dtype else pipe.to(device=device, dtype=torch_dtype)
    pipe.set_progress_bar_config(disable=True)
    if attention:
        pipe.unet.set_attention_backend(attention)
    if compile_unet:
        pipe.unet = torch.compile(pipe.unet)
    return pipe, model_id, rev


def _cached_commit(repo_id: str, revision: str | None) -> str | None:
    """Commit hash of the locally cached snapshot of a Hub model, if one is cached."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True)).name
    except Exception:  # not cached: from_pretrained will say why it cannot load
        return None
