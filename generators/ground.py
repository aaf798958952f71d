"""Grounded generation: new street scenes from text, with masks from the generator's own attention.

A text-to-image pipeline runs with :class:`~streetsynth.generators.attention_maps.AttentionStore`
installed, watching the prompt tokens of our class words ("car", "pedestrian", ...). Their
cross-attention, averaged over steps and layers, gives a coarse map per class; its connected
components are the instances; SAM prompted with each component's box sharpens them (cut to the
component's dilated area); an instance is kept when Mask R-CNN's best mask of its class agrees
(IoU >= a threshold). Rows with no kept instance are dropped.

With ``head`` (a grounding head trained by ``streetsynth train grounding``) the coarse map of each
class is the head's mask probability instead of thresholded raw attention: the finished image is
re-noised at the head's timesteps and its attention and UNet features are read exactly as in
training. Rows record which (``method_details.grounding``: ``head:<digest>`` or ``attention-threshold``).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import cv2
import numpy as np

from streetsynth.config import DEFAULT_SIZE, Size, check_fraction, check_size
from streetsynth.contact_sheet import Tile
from streetsynth.instances import Instances, boxes_from_masks
from streetsynth.models.load import ModelSpec, load
from streetsynth.schema import CLASS_NAMES
from streetsynth.seeds import derive_seed
from streetsynth.versions import check_version

from .attention_maps import AttentionStore, coarse_masks
from .method_run import (MethodResult, MethodRunOptions, finish_counts, finish_pairs, method_fingerprint, open_run,
                         row_tile, synthetic_row, version_rows)
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
    size: Size = DEFAULT_SIZE
    steps: int = 30
    guidance: float = 7.5
    threshold: float = 0.5  # attention share of its maximum that counts as inside
    min_area: int = 64  # smallest instance, pixels
    iou_threshold: float = 0.5  # Mask R-CNN agreement needed to keep an instance
    detector: str = "tiny"
    sam: str | None = "tiny"  # None: keep the coarse attention masks
    head: str | None = None  # trained grounding head (folder or head.safetensors); None: threshold attention
    verifier: Callable | None = field(default=None, repr=False)
    sam_model: Any = field(default=None, repr=False)


def load_text2img_pipeline(model: str, revision: str | None, device: str, dtype: str | None):
    """(pipeline, id, revision) of ``StableDiffusionPipeline`` (or the tiny one); see
    :func:`streetsynth.models.load.load`, kind ``text2img``."""
    loaded = load("text2img", ModelSpec(model, revision, device, dtype))
    return loaded.pipeline, loaded.model_id, loaded.revision


def check_config(cfg: GroundConfig) -> None:
    """Refuse bad settings with a message naming the option, before any model is loaded or folder made."""
    if not cfg.prompts:
        raise ValueError("give at least one prompt")
    for name in ("num", "rows_per_shard"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    check_size(cfg.size, 8)
    check_fraction(cfg.iou_threshold, "--iou-threshold")
    check_fraction(cfg.threshold, "--threshold")
    check_version(cfg.version)


def class_maps(store: AttentionStore, tokens: dict[int, list[int]], latent_hw, size) -> list[np.ndarray]:
    """Per class of ``tokens``, the (H, W) maximum of its tokens' aggregated attention."""
    maps = store.maps(latent_hw, size)[0]
    out, pos = [], 0
    for ts in tokens.values():
        out.append(maps[pos:pos + len(ts)].max(axis=0))
        pos += len(ts)
    return out


def head_maps(grounder, image: np.ndarray, prompt: str, tokens: dict[int, list[int]], sid: str) -> list[np.ndarray]:
    """Per class of ``tokens``, the (H, W) mask probability of the grounding head."""
    import torch
    import torch.nn.functional as F

    extractor, loaded = grounder
    attention, features = extractor(image, prompt, list(tokens.values()), sid)
    h, w = image.shape[:2]
    stride = loaded.spec.mask_stride
    probs = torch.from_numpy(loaded.predict(attention, features, (h // stride, w // stride)))
    return list(F.interpolate(probs[None], size=(h, w), mode="bilinear", align_corners=False)[0].numpy())


def _ground_one(cfg: GroundConfig, pipe, store: AttentionStore, predictor, sid: str, prompt: str, grounder=None):
    """One sample: (image, candidate instances, class tokens, seed)."""
    import torch

    h, w = cfg.size
    tokens = class_tokens(pipe.tokenizer, prompt)
    if not tokens:
        raise ValueError(f"prompt {prompt!r} names none of our classes ({', '.join(sorted(CLASS_WORDS))})")
    if grounder is None:
        store.reset([t for ts in tokens.values() for t in ts], conditional_half=cfg.guidance > 1.0)
    else:
        store.tokens = None
    seed = derive_seed(cfg.seed, sid, 0)
    gen = torch.Generator(device=pipe.device).manual_seed(seed)
    with torch.inference_mode():
        out = pipe(prompt=prompt, negative_prompt=cfg.negative_prompt, height=h, width=w,
                   num_inference_steps=cfg.steps, guidance_scale=cfg.guidance, generator=gen,
                   output_type="np").images[0]
    image = (np.asarray(out, np.float32) * 255.0).round().clip(0, 255).astype(np.uint8)
    if grounder is None:
        scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        maps = class_maps(store, tokens, (h // scale, w // scale), (h, w))
        threshold, source = cfg.threshold, "attention"
    else:
        maps, threshold, source = head_maps(grounder, image, prompt, tokens, sid), 0.5, "head"
    masks, classes = [], []
    for cls, class_map in zip(tokens, maps):
        found = refine_with_sam(predictor, image, coarse_masks(class_map, threshold, cfg.min_area))
        masks += list(found)
        classes += [cls] * len(found)
    inst = Instances.from_masks(np.stack(masks) if masks else np.zeros((0, h, w), bool), classes,
                                sources=[f"{source}+sam" if predictor else source] * len(masks))
    return image, inst, tokens, seed


def load_grounder(cfg: GroundConfig, pipe, store: AttentionStore):
    """(feature extractor, loaded head) for ``cfg.head``, or None to threshold attention."""
    if cfg.head is None:
        return None
    from streetsynth.models.grounding_head import load_head

    from .attention_maps import FeatureExtractor

    loaded = load_head(cfg.head, cfg.device)
    return FeatureExtractor(pipe, loaded.spec, store), loaded


def run_ground(cfg: GroundConfig) -> MethodResult:
    """Write (or resume) a grounded-generation version."""
    check_config(cfg)
    model = load("text2img", ModelSpec(cfg.model, cfg.revision, cfg.device, cfg.dtype, model=cfg.pipeline))
    pipe = model.pipeline
    verifier = cfg.verifier or MaskDetector(cfg.detector, cfg.device)
    predictor, sam_desc = None, None
    if cfg.sam is not None:
        from segment_anything import SamPredictor

        sam = load("sam", ModelSpec(cfg.sam, device=cfg.device, model=cfg.sam_model))
        predictor, sam_desc = SamPredictor(sam.pipeline), sam.model_id
    settings = {k: v for k, v in asdict(cfg).items() if k not in
                ("out", "device", "dtype", "version", "pipeline", "verifier", "sam_model", "sheet_samples", "head")}
    store = AttentionStore()
    store.install(pipe.unet)
    grounder = load_grounder(cfg, pipe, store)
    grounding = grounder[1].description if grounder else "attention-threshold"
    fp = method_fingerprint(METHOD, {"model": [model.model_id, model.revision], "sam": sam_desc,
                                     "verifier": getattr(verifier, "description", "injected"), "settings": settings,
                                     **({"grounding": grounding} if grounder else {})})
    run = open_run(METHOD, cfg.out, fp, cfg.version, cfg.rows_per_shard)
    done = run.done()
    for i in range(cfg.num):
        sid = f"ground-{i:05d}"
        if sid in done:
            continue
        prompt = cfg.prompts[i % len(cfg.prompts)]
        image, inst, tokens, seed = _ground_one(cfg, pipe, store, predictor, sid, prompt, grounder)
        iou = agreement(inst, *verifier(image))
        keep = iou >= cfg.iou_threshold
        if not keep.any():
            run.writer.add(sid, None, attempts=1, rejected=1)
            continue
        details = {"seed": seed, "class_tokens": {CLASS_NAMES[c]: t for c, t in tokens.items()},
                   "candidates": len(inst), "agreement": [round(float(v), 6) for v in iou],
                   "threshold": cfg.threshold, "iou_threshold": cfg.iou_threshold, "grounding": grounding}
        gen_row = {"model_id": model.model_id, "model_revision": model.revision, "prompt": prompt,
                   "negative_prompt": cfg.negative_prompt, "seed": seed, "steps": cfg.steps,
                   "guidance_scale": cfg.guidance, "attempts": 1,
                   "labeler": f"{'grounding-' + grounding if grounder else 'cross-attention'}+{sam_desc or 'none'}"
                              "+agreement"}
        run.writer.add(sid, synthetic_row(sid, image, inst.select(keep), gen_row, METHOD, details, predictor=predictor),
                       attempts=1, rejected=0)
    manifest, counts = finish_counts(run, f"no instance of any sample reached --iou-threshold {cfg.iou_threshold}")

    def pair(written: dict[str, Any]) -> tuple[Tile, Tile]:
        d = json.loads(written["generation"]["method_details"])
        plain = row_tile(written, f"{written['id']}: {d['candidates']} candidates")
        return Tile(plain.image, plain.title), row_tile(written, f"{written['id']} kept")

    info = {"model": {"id": model.model_id, "revision": model.revision}, "settings": settings, "counts": counts,
            "grounding": grounding}
    card = CARD if grounder is None else CARD + (
        f" Here the coarse map of each class word is not thresholded attention but the mask of a learned grounding "
        f"head ({grounding}) reading the UNet's attention and features of the finished image.")
    return finish_pairs(run, info, card, version_rows(run, manifest, cfg.sheet_samples), pair)
