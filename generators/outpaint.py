"""Outpainting a stitched scene: keep the FRONT part, invent the FRONT_RIGHT part with diffusion.

A :class:`Canvas` holds the known pixels on the left, a mask that is white (255) where pixels are
invented, and the known width. :func:`outpaint_batch` runs an injected diffusers inpainting
pipeline of any family in :mod:`streetsynth.models.inpaint` (SD 1.5 / 2, SDXL, SD3, FLUX Fill)
on several canvases in one call with one ``torch.Generator`` per sample, then pastes the known
pixels back exactly. The VAE round trip shifts colours slightly, so a narrow band just inside the
invented region carries the difference between the known edge and the generated edge, fading to
zero: the paste leaves no step.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from streetsynth.config import Size, check_size
from streetsynth.models.inpaint import call_kwargs

DEFAULT_PROMPT = "street view scenery, buildings, plants and trees, pedestrians, front right"
DEFAULT_NEGATIVE = "3d, cartoon, animated, distorted, unrealistic, disfigured, drawing, painting"
#: Canvas sides are multiples of this unless the model family asks for more (FLUX, SD3: 16).
LATENT_FACTOR = 8


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


def canvas_size(height: int, width: int, size: Size | None = None, multiple: int = LATENT_FACTOR) -> Size:
    """(H, W) of the canvas: ``size`` if given, else the source, rounded down to ``multiple``."""
    h, w = size if size is not None else (height, width)
    return check_size(((h // multiple) * multiple, (w // multiple) * multiple), multiple, what="canvas")


def make_canvas(row: dict[str, Any], size: Size | None = None,
                invent_fraction: float | None = None, multiple: int = LATENT_FACTOR) -> Canvas:
    """The canvas of a stitched row (``row["image"]`` a PIL image or an RGB array), sides a ``multiple``."""
    img = row["image"]
    rgb = np.asarray(img.convert("RGB") if isinstance(img, Image.Image) else img, dtype=np.uint8)
    src_h, src_w = rgb.shape[:2]
    h, w = canvas_size(src_h, src_w, size, multiple)
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


def outpaint_batch(pipe, canvases: list[Canvas], prompts: list[str], negative_prompts: list[str] | None,
                   seeds: list[int], steps: int = 30, guidance_scale: float = 7.5, strength: float | None = 1.0,
                   feather: int = 8, pad_to: int | None = None, max_sequence_length: int | None = None,
                   allow_drop: Collection[str] = (), style: Image.Image | None = None) -> list[np.ndarray]:
    """Outpaint same-sized canvases in ONE pipeline call; returns RGB uint8 composites.

    ``pad_to`` repeats the last canvas so every call has the same batch size: a sample's pixels
    then do not depend on how many others share its call (matmul kernels vary with batch shape).
    An argument the pipeline does not take (FLUX Fill has no negative prompt) is an error unless
    it is ``None`` or named in ``allow_drop``. ``style`` steers every sample of the call through the
    IP-Adapter loaded into ``pipe`` (diffusers repeats one reference over a call's batch, so samples with
    different references need separate calls).
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
        negative_prompt=None if negative_prompts is None else [negative_prompts[i] for i in idx],
        image=[Image.fromarray(canvases[i].image) for i in idx],
        mask_image=[Image.fromarray(canvases[i].mask) for i in idx],
        height=h, width=w, num_inference_steps=steps, guidance_scale=guidance_scale, strength=strength,
        generator=generators, output_type="np", max_sequence_length=max_sequence_length,
        ip_adapter_image=style,
    )
    with torch.inference_mode():
        images = pipe(**call_kwargs(pipe, kwargs, allow_drop)).images
    images = (np.asarray(images[:n], dtype=np.float32) * 255.0).round().clip(0, 255).astype(np.uint8)
    return [paste_known(img, c, feather) for img, c in zip(images, canvases)]
