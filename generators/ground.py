"""Grounded generation: new street scenes from text, with masks from the generator's own attention.

A text-to-image pipeline runs with :class:`~streetsynth.generators.attention_maps.AttentionStore`
installed, watching the prompt tokens of our class words ("car", "pedestrian", ...). Their
cross-attention, averaged over steps and layers, gives a coarse map per class; its connected
components are the instances; SAM prompted with each component's box sharpens them (cut to the
component's dilated area); an instance is kept when Mask R-CNN's best mask of its class agrees
(IoU >= a threshold). Rows with no kept instance are dropped.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import cv2
import numpy as np

from streetsynth.cards.contact_sheet import Tile
from streetsynth.instances import Instances, boxes_from_masks
from streetsynth.schema import CLASS_NAMES
from streetsynth.seeds import derive_seed

from .attention_maps import AttentionStore, coarse_masks
from .method_run import MethodRunOptions, finish_run, open_run, synthetic_row
from .rerender import MaskDetector, agreement

METHOD = "ground"
BASE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
#: Words of a prompt that name one of our classes.
CLASS_WORDS: dict[str, int] = {
    **dict.fromkeys(("car", "cars", "vehicle", "vehicles", "truck", "trucks", "bus", "van"), 0),
    **dict.fromkeys(("pedestrian", "pedestrians", "person", "people", "man", "woman"), 1),
    **dict.fromkeys(("cyclist", "cyclists"), 2),
    **dict.fromkeys(("sign", "signs"), 3),
}
DEFAULT_PROMPTS = ("a city street with parked cars and a pedestrian crossing",
                   "a busy street with cars, a bus and people on the sidewalk")
DEFAULT_NEGATIVE = "cartoon, drawing, distorted, blurry"
CARD = ("Each row is a street scene generated from text. Masks come from the generator itself: the UNet's "
        "cross-attention for the class words of the prompt, averaged over steps and layers, split into connected "
        "components, sharpened with SAM prompted by each component's box, and kept only where Mask R-CNN's mask "
        "of the same class agrees.")


def class_tokens(tokenizer, prompt: str) -> dict[int, list[int]]:
    """Class index -> positions of the tokens of its words in the prompt's token sequence."""
    ids = tokenizer(prompt).input_ids
    out: dict[int, list[int]] = {}
    for word in dict.fromkeys(re.findall(r"[a-z]+", prompt.lower())):
        if word not in CLASS_WORDS:
            continue
        piece = tokenizer(word, add_special_tokens=False).input_ids
        for start in range(len(ids) - len(piece) + 1):
            if ids[start:start + len(piece)] == piece:
                out.setdefault(CLASS_WORDS[word], []).extend(range(start, start + len(piece)))
    return out


def refine_with_sam(predictor, image: np.ndarray, coarse: np.ndarray, grow: int = 7) -> np.ndarray:
    """SAM's mask for each coarse mask's box (one batched call), cut to the coarse mask dilated by ``grow``
    pixels; a coarse mask SAM leaves empty is kept as it was."""
    if predictor is None or not len(coarse):
        return coarse
    from .label import sam_masks_for_boxes

    sam = sam_masks_for_boxes(predictor, image, boxes_from_masks(coarse))
    kernel = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
    out = []
    for m, s in zip(coarse, sam):
        fine = s & cv2.dilate(m.astype(np.uint8), kernel).astype(bool)
        out.append(fine if fine.any() else m)
    return np.stack(out)


@dataclass
class GroundConfig(MethodRunOptions):
    """A grounded-generation run; everything but the injected objects enters the fingerprint."""

    out: str
    prompts: tuple[str, ...] = DEFAULT_PROMPTS
    num: int = 8
    model: str = "tiny"  # text-to-image model id/folder; "tiny" = tiny random pipeline
    revision: str | None = None
    negative_prompt: str = DEFAULT_NEGATIVE
    size: tuple[int, int] = (512, 1024)
    steps: int = 30
    guidance: float = 7.5
    threshold: float = 0.5  # attention share of its maximum that counts as inside
    min_area: int = 64  # smallest instance, pixels
    iou_threshold: float = 0.5  # Mask R-CNN agreement needed to keep an instance
    detector: str = "tiny"
    sam: str | None = "tiny"  # None: keep the coarse attention masks
    verifier: Callable | None = field(default=None, repr=False)
    sam_model: Any = field(default=None, repr=False)


def load_text2img_pipeline(model: str, revision: str | None, device: str, dtype: str | None):
    """(pipeline, id, revision) of ``StableDiffusionPipeline`` (or the tiny one)."""
    from streetsynth.models.inpaint import resolve_dtype, weights_revision

    if model == "tiny":
        from streetsynth.models.tiny_controlnet import build_tiny_text2img_pipeline

        return build_tiny_text2img_pipeline(0).to(device), "streetsynth/tiny-random-text2img", "seed-0"
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(model, revision=revision,
                                                   dtype=resolve_dtype(dtype, device)).to(device)
    pipe.safety_checker = None
    pipe.set_progress_bar_config(disable=True)
    return pipe, model, weights_revision(model, revision)


def run_ground(cfg: GroundConfig) -> dict[str, Any]:
    """Write (or resume) a grounded-generation version; returns folder, tag, resumed and counts."""
    import torch

    if not cfg.prompts:
        raise ValueError("give at least one prompt")
    h, w = cfg.size
    if h % 8 or w % 8:
        raise ValueError(f"size {h}x{w}: both sides must be multiples of 8")
    if cfg.pipeline is not None:
        pipe = cfg.pipeline
        model_id, model_rev = getattr(pipe, "_streetsynth_model", (cfg.model, cfg.revision or "injected"))
    else:
        pipe, model_id, model_rev = load_text2img_pipeline(cfg.model, cfg.revision, cfg.device, cfg.dtype)
    verifier = cfg.verifier or MaskDetector(cfg.detector, cfg.device)
    predictor, sam_desc = None, None
    if cfg.sam is not None:
        from segment_anything import SamPredictor

        sam, sam_desc = (cfg.sam_model, "injected") if cfg.sam_model is not None else _load_sam(cfg)
        predictor = SamPredictor(sam)
    settings = {k: v for k, v in asdict(cfg).items()
                if k not in ("out", "device", "dtype", "version", "pipeline", "verifier", "sam_model", "sheet_samples")}
    run = open_run(METHOD, cfg.out, {"model": [model_id, model_rev], "sam": sam_desc,
                                     "verifier": getattr(verifier, "description", "injected"), "settings": settings},
                   cfg.version, cfg.rows_per_shard)
    store = AttentionStore()
    store.install(pipe.unet)
    scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    done, pairs = run.done(), []
    for i in range(cfg.num):
        sid = f"ground-{i:05d}"
        if sid in done:
            continue
        prompt = cfg.prompts[i % len(cfg.prompts)]
        tokens = class_tokens(pipe.tokenizer, prompt)
        if not tokens:
            raise ValueError(f"prompt {prompt!r} names none of our classes ({', '.join(sorted(CLASS_WORDS))})")
        flat = [t for ts in tokens.values() for t in ts]
        store.reset(flat, conditional_half=cfg.guidance > 1.0)
        seed = derive_seed(cfg.seed, sid, 0)
        gen = torch.Generator(device=pipe.device).manual_seed(seed)
        with torch.inference_mode():
            out = pipe(prompt=prompt, negative_prompt=cfg.negative_prompt, height=h, width=w,
                       num_inference_steps=cfg.steps, guidance_scale=cfg.guidance, generator=gen,
                       output_type="np").images[0]
        image = (np.asarray(out, np.float32) * 255.0).round().clip(0, 255).astype(np.uint8)
        maps = store.maps((h // scale, w // scale), (h, w))[0]
        masks, classes, pos = [], [], 0
        for cls, ts in tokens.items():
            class_map = maps[pos:pos + len(ts)].max(axis=0)
            pos += len(ts)
            found = refine_with_sam(predictor, image, coarse_masks(class_map, cfg.threshold, cfg.min_area))
            masks += list(found)
            classes += [cls] * len(found)
        inst = Instances.from_masks(np.stack(masks) if masks else np.zeros((0, h, w), bool), classes,
                                    sources=["attention+sam" if predictor else "attention"] * len(masks))
        iou = agreement(inst, *verifier(image))
        keep = iou >= cfg.iou_threshold
        if not keep.any():
            run.writer.add(sid, None, attempts=1, rejected=1)
            continue
        kept = inst.select(keep)
        details = {"seed": seed, "class_tokens": {CLASS_NAMES[c]: t for c, t in tokens.items()},
                   "candidates": len(inst), "agreement": [round(float(v), 6) for v in iou],
                   "threshold": cfg.threshold, "iou_threshold": cfg.iou_threshold}
        gen_row = {"model_id": model_id, "model_revision": model_rev, "prompt": prompt,
                   "negative_prompt": cfg.negative_prompt, "seed": seed, "steps": cfg.steps,
                   "guidance_scale": cfg.guidance, "attempts": 1,
                   "labeler": f"cross-attention+{sam_desc or 'none'}+agreement"}
        run.writer.add(sid, synthetic_row(sid, image, kept, gen_row, METHOD, details), attempts=1, rejected=0)
        if len(pairs) < cfg.sheet_samples:
            pairs.append((Tile(image, f"{sid} candidates", inst), Tile(image, f"{sid} kept", kept)))
    counts = finish_run(run, {"model": {"id": model_id, "revision": model_rev}, "settings": settings}, CARD, pairs)
    return {"folder": run.folder, "tag": run.tag, "resumed": run.resumed, "counts": counts}


def _load_sam(cfg: GroundConfig):
    from streetsynth.models.sam import load_sam

    return load_sam(cfg.sam, device=cfg.device)
