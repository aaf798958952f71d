"""Occluders inpainted inside object boxes: partly hidden pedestrians and vehicles, labelled exactly.

For each sampled object of a real row, a region inside its box (its bottom, a side, or a random
rectangle covering ``share`` of the box) is inpainted with an occluder prompt ("a parked bicycle",
"a trash bin", ...). The model sees a square window around the object resized to its own size;
only the region's pixels come back, so every pixel outside it is the real one, bit for bit.

The occluder's mask is found inside the region (SAM prompted with the region's box, or the pixel
difference to the real image), subtracted from every object's mask, objects left with less than
``drop_below`` of their pixels are dropped, and the occluder becomes an instance itself when its
prompt names one of our classes. Backends: a ``StableDiffusionGLIGENPipeline`` (box-grounded
inpainting through ``gligen_inpaint_image``), or an SD or SDXL inpainting pipeline (read through the
family registry, :mod:`streetsynth.models.inpaint`) with a box mask.

LOCO's *refined* variant first inpaints the object itself ("a pedestrian") inside its own mask, so a
new object fills the labelled silhouette and every pixel outside it stays real, then adds the
occluder on top. Rows record their variant; ``refine="both"`` makes both variants of every object.
With a detector, each sample's *agreement* is the IoU of the detector's best mask of the occluded
object's class with its written mask; a sample below ``iou_threshold`` is retried with the next
seed, up to ``max_attempts``. The card compares the variants' acceptance and agreement.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np
from PIL import Image

from streetsynth import codec
from streetsynth.config import check_fraction
from streetsynth.instances import Instances
from streetsynth.models.load import ModelSpec, load
from streetsynth.schema import CLASS_NAMES, STITCHED
from streetsynth.seeds import derive_seed
from streetsynth.text import percent
from streetsynth.versions import check_out_outside, check_version

from .method_run import (MethodResult, MethodRunOptions, before_after, finish_counts, finish_pairs, method_fingerprint,
                         open_run, source_record, synthetic_row, version_rows)
from .rerender import agreement

METHOD = "occlude"
PLACEMENTS = ("bottom", "side", "random")
MASK_MODES = ("sam", "diff")
#: ``refine`` setting -> the variants made of every chosen object.
REFINE = {"off": ("plain",), "on": ("refined",), "both": ("plain", "refined")}
#: Sample id suffix of a variant (the plain variant keeps the id it always had).
VARIANT_SUFFIX = {"plain": "", "refined": "+refined"}
#: Inpainting families the occluder call fits (SD-style arguments with a negative prompt and strength).
FAMILIES = ("sd-inpaint", "sdxl-inpaint")
#: Occluder prompts; ``text=class`` makes the occluder an instance of that class.
DEFAULT_OCCLUDERS = ("a parked bicycle", "a green trash bin", "a stack of cardboard boxes",
                     "a road sign on a pole=sign", "a pedestrian walking=pedestrian")
DEFAULT_NEGATIVE = "cartoon, drawing, distorted, blurry"
GLIGEN_MODEL = "masterful/gligen-1-4-inpainting-text-box"
CARD = ("Each row is a real scene with an occluder inpainted over part of one object's box "
        "(box-grounded GLIGEN inpainting, or SD / SDXL inpainting with a box mask). Pixels outside the occluder "
        "region are the real ones, bit for bit. The occluder's mask is cut out of every object's mask; "
        "objects left mostly hidden are dropped; an occluder of one of our classes is labelled too. In the "
        "*refined* variant the object itself is first inpainted inside its own mask (a new object in the "
        "labelled silhouette), then occluded; `method_details.variant` says which.")


def parse_occluder(text: str) -> tuple[str, int | None]:
    """``"a road sign=sign"`` -> ("a road sign", class index); no ``=``: not one of our classes."""
    prompt, _, name = text.rpartition("=") if "=" in text else (text, "", "")
    if not name:
        return text.strip(), None
    if name.strip() not in CLASS_NAMES:
        raise ValueError(f"occluder {text!r}: unknown class {name!r}; known: {', '.join(CLASS_NAMES)}")
    return prompt.strip(), CLASS_NAMES.index(name.strip())


def choose_region(box: np.ndarray, placement: str, share: float, rng: np.random.Generator) -> tuple[int, ...]:
    """Integer xyxy region inside ``box`` covering about ``share`` of its area, at least one pixel."""
    x0, y0, x1, y1 = (int(v) for v in np.round(box))
    bw, bh = max(x1 - x0, 1), max(y1 - y0, 1)
    if placement == "bottom":
        h = min(bh, max(1, round(bh * share)))
        return x0, y1 - h, x1, y1
    if placement == "side":
        w = min(bw, max(1, round(bw * share)))
        return (x0, y0, x0 + w, y1) if rng.random() < 0.5 else (x1 - w, y0, x1, y1)
    if placement == "random":
        side = float(np.sqrt(share))
        w, h = min(bw, max(1, round(bw * side))), min(bh, max(1, round(bh * side)))
        rx, ry = x0 + int(rng.integers(0, bw - w + 1)), y0 + int(rng.integers(0, bh - h + 1))
        return rx, ry, rx + w, ry + h
    raise ValueError(f"unknown placement {placement!r}; known: {', '.join(PLACEMENTS)}")


def context_window(region: tuple[int, ...], box: np.ndarray, height: int, width: int,
                   context: float = 2.0) -> tuple[int, int, int]:
    """``(x, y, side)`` of a square window around ``box`` (``context`` times its longer side), inside the image."""
    bx0, by0, bx1, by1 = box
    side = int(min(height, width, max(16, np.ceil(context * max(bx1 - bx0, by1 - by0)))))
    cx, cy = (region[0] + region[2]) / 2, (region[1] + region[3]) / 2
    x = int(np.clip(round(cx - side / 2), 0, width - side))
    y = int(np.clip(round(cy - side / 2), 0, height - side))
    return x, y, side


def is_gligen(pipe) -> bool:
    return type(pipe).__name__.startswith("StableDiffusionGLIGEN")


def model_size(pipe, requested: int | None) -> int:
    """Side of the square the model works on: GLIGEN's own sample size (it centre-crops to it), else
    ``requested``, else the UNet's own (512 for SD, 1024 for SDXL)."""
    if is_gligen(pipe):
        return int(pipe.vae.config.sample_size)
    return int(requested or pipe.unet.config.sample_size * pipe.vae_scale_factor)


def inpaint_region(pipe, image: np.ndarray, box: np.ndarray, region: tuple[int, ...], prompt: str,
                   negative: str, seed: int, steps: int, guidance: float, size: int | None = None,
                   context: float = 2.0, mask: np.ndarray | None = None) -> np.ndarray:
    """``image`` with only ``region`` (or the pixels of ``mask`` inside it) replaced by the model's painting;
    every other pixel is untouched."""
    import torch

    h, w = image.shape[:2]
    x, y, side = context_window(region, box, h, w, context)
    n = model_size(pipe, size)
    crop = cv2.resize(image[y:y + side, x:x + side], (n, n), interpolation=cv2.INTER_AREA)
    s = n / side
    rx0, ry0, rx1, ry1 = region
    r = [(rx0 - x) * s, (ry0 - y) * s, (rx1 - x) * s, (ry1 - y) * s]
    paint = region_mask(region, h, w) if mask is None else mask & region_mask(region, h, w)
    window = paint[y:y + side, x:x + side]
    device = getattr(pipe, "device", torch.device("cpu"))
    gen = torch.Generator(device="cpu" if device.type == "mps" else device).manual_seed(int(seed))
    common = dict(prompt=prompt, negative_prompt=negative, num_inference_steps=steps, guidance_scale=guidance,
                  generator=gen, output_type="np", height=n, width=n)
    with torch.inference_mode():
        if is_gligen(pipe):
            out = pipe(gligen_phrases=[prompt], gligen_boxes=[[v / n for v in r]],
                       gligen_inpaint_image=Image.fromarray(crop), **common).images[0]
        else:
            # every model pixel that touches a painted image pixel is masked (a superset, never fewer)
            model_mask = (cv2.resize(window.astype(np.float32), (n, n), interpolation=cv2.INTER_AREA) > 0)
            out = pipe(image=Image.fromarray(crop), mask_image=Image.fromarray(model_mask.astype(np.uint8) * 255),
                       strength=1.0, **common).images[0]
    out = (np.asarray(out, np.float32) * 255.0).round().clip(0, 255).astype(np.uint8)
    back = cv2.resize(out, (side, side), interpolation=cv2.INTER_CUBIC if side > n else cv2.INTER_AREA)
    result = image.copy()
    result[y:y + side, x:x + side][window] = back[window]
    return result


def region_mask(region: tuple[int, ...], height: int, width: int) -> np.ndarray:
    m = np.zeros((height, width), bool)
    m[region[1]:region[3], region[0]:region[2]] = True
    return m


def occluder_mask(before: np.ndarray, after: np.ndarray, region: tuple[int, ...], mode: str = "diff",
                  diff_threshold: int = 24, predictor=None) -> np.ndarray:
    """The occluder's pixels, always inside ``region``.

    ``diff``: pixels whose largest channel difference to the real image exceeds ``diff_threshold``;
    ``sam``: SAM's mask for the region's box (``predictor`` a ``SamPredictor``), cut to the region.
    """
    h, w = before.shape[:2]
    inside = region_mask(region, h, w)
    if mode == "diff":
        diff = np.abs(after.astype(np.int16) - before.astype(np.int16)).max(axis=2)
        return inside & (diff > diff_threshold)
    if mode == "sam":
        from .label import sam_masks_for_boxes

        return inside & sam_masks_for_boxes(predictor, after, np.asarray([region], np.float32))[0]
    raise ValueError(f"unknown occluder mask mode {mode!r}; known: {', '.join(MASK_MODES)}")


def apply_occluder(inst: Instances, occ: np.ndarray, drop_below: float,
                   occluder_class: int | None, occluder_source: str) -> tuple[Instances, dict[int, float]]:
    """Objects with the occluder's pixels removed, nearly hidden ones dropped, the occluder added.

    Returns the new instances and, per original id, the share of its pixels still visible.
    """
    area = inst.masks.reshape(len(inst), -1).sum(axis=1)
    masks = inst.masks & ~occ[None]
    left = masks.reshape(len(inst), -1).sum(axis=1)
    kept_share = np.where(area > 0, left / np.maximum(area, 1), 0.0)
    keep = kept_share >= drop_below
    classes, ids, scores = inst.classes[keep], inst.ids[keep], inst.scores[keep]
    sources = [s for s, k in zip(inst.sources, keep) if k]
    masks = masks[keep]
    if occluder_class is not None and occ.any():
        new_id = int(inst.ids.max(initial=0)) + 1
        masks = np.concatenate([masks, occ[None]])
        classes, ids = np.append(classes, occluder_class), np.append(ids, new_id)
        scores, sources = np.append(scores, 1.0), sources + [occluder_source]
    out = Instances.from_masks(masks, classes, scores=scores, ids=ids, sources=sources)
    return out, {int(i): float(f) for i, f in zip(inst.ids, kept_share)}


def visible_fraction(mask: np.ndarray, box: np.ndarray) -> float:
    """Share of a box's pixels its mask covers."""
    x0, y0, x1, y1 = (int(v) for v in np.round(box))
    return float(mask[y0:y1, x0:x1].sum()) / max((x1 - x0) * (y1 - y0), 1)


@dataclass
class OccludeConfig(MethodRunOptions):
    """An occlusion run; everything but the injected objects enters the fingerprint."""

    real: str  # real dataset repo (config "stitched")
    out: str  # store of synthetic versions
    model: str = "tiny"  # GLIGEN or inpainting model id/folder; "tiny" = tiny random inpainting pipeline
    revision: str | None = None
    split: str = "train"
    classes: tuple[str, ...] = ("pedestrian", "vehicle")  # classes of objects to occlude
    min_size: int = 16  # shorter box side, pixels
    min_visible: float = 0.3  # mask share of the box an object needs to be chosen
    per_row: int = 1  # objects occluded per real row (one row each)
    num: int | None = None  # at most this many samples
    placement: str = "random"  # bottom, side, random, or "any" (drawn per sample)
    share: float = 0.4  # share of the box area covered by the region
    occluders: tuple[str, ...] = DEFAULT_OCCLUDERS
    negative_prompt: str = DEFAULT_NEGATIVE
    mask_mode: str = "diff"  # how the occluder's mask is found: diff or sam
    diff_threshold: int = 24
    drop_below: float = 0.2  # objects keeping less than this share of their pixels are dropped
    size: int | None = None  # model working size (square) of inpainting pipelines (default: the UNet's own)
    context: float = 2.0  # window side over the box's longer side
    steps: int = 30
    guidance: float = 7.5
    sam: str = "tiny"  # SAM spec for mask_mode "sam"
    refine: str = "off"  # LOCO's refined variant: off (plain only), on (refined only), both
    refine_prompt: str = "a {name}"  # prompt that repaints the object in its mask; {name} = its class
    detector: str | None = None  # Mask R-CNN spec measuring agreement (None: not measured, every sample kept)
    iou_threshold: float = 0.0  # a sample is kept when the occluded object's agreement reaches this
    max_attempts: int = 1  # seeds tried per sample before it is dropped
    sam_model: Any = field(default=None, repr=False)
    verifier: Any = field(default=None, repr=False)  # injected image -> (masks, classes); ``.description``


def load_occluder_pipeline(model: str, revision: str | None, device: str, dtype: str | None):
    """(pipeline, id, revision): GLIGEN when the id names it, else an inpainting pipeline (see
    :func:`streetsynth.models.load.load`, kind ``occluder``)."""
    loaded = load("occluder", ModelSpec(model, revision, device, dtype))
    return loaded.pipeline, loaded.model_id, loaded.revision


def plan_samples(rows, cfg: OccludeConfig) -> list[tuple[int, int, str, str]]:
    """``(row index, object index, sample id, variant)`` of every sample, derived from the run seed only; the
    variants of one object are adjacent."""
    wanted = {CLASS_NAMES.index(c) for c in cfg.classes}
    plan = []
    for r, row in enumerate(rows):
        if row.get("instance_mask") is None or not row["objects"]:
            continue
        inst = Instances.from_row(row)
        if inst.masks is None:
            continue
        sides = np.minimum(inst.boxes[:, 2] - inst.boxes[:, 0], inst.boxes[:, 3] - inst.boxes[:, 1])
        ok = [i for i in range(len(inst)) if inst.classes[i] in wanted and sides[i] >= cfg.min_size
              and visible_fraction(inst.masks[i], inst.boxes[i]) >= cfg.min_visible]
        rng = np.random.default_rng(derive_seed(cfg.seed, row["id"], 0))
        for i in rng.permutation(ok)[:cfg.per_row] if ok else []:
            plan += [(r, int(i), f"{row['id']}#o{int(inst.ids[i])}{VARIANT_SUFFIX[v]}", v) for v in REFINE[cfg.refine]]
    return plan[:cfg.num] if cfg.num is not None else plan


def check_config(cfg: OccludeConfig) -> None:
    """Refuse bad settings with a message naming the option, before any model is loaded or folder made."""
    if cfg.placement not in PLACEMENTS + ("any",):
        raise ValueError(f"unknown placement {cfg.placement!r}; known: {', '.join(PLACEMENTS)}, any")
    if cfg.mask_mode not in MASK_MODES:
        raise ValueError(f"unknown mask mode {cfg.mask_mode!r}; known: {', '.join(MASK_MODES)}")
    if cfg.refine not in REFINE:
        raise ValueError(f"unknown refine setting {cfg.refine!r}; known: {', '.join(REFINE)}")
    if "{name}" not in cfg.refine_prompt:
        raise ValueError(f"--refine-prompt {cfg.refine_prompt!r} must contain {{name}} (the object's class)")
    check_fraction(cfg.iou_threshold, "--iou-threshold")
    if cfg.iou_threshold > 0 and cfg.detector is None and cfg.verifier is None:
        raise ValueError("--iou-threshold needs --detector (agreement is measured by a detector)")
    if not 0.0 < cfg.share <= 1.0:
        raise ValueError(f"share must lie in (0, 1], got {cfg.share}")
    for name in ("per_row", "num", "rows_per_shard", "max_attempts"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    check_version(cfg.version)
    check_out_outside(cfg.out, cfg.real)


def _refine(cfg: OccludeConfig, image: np.ndarray, inst: Instances, obj: int, sid: str, attempt: int, pipe
            ) -> tuple[np.ndarray, dict[str, Any]]:
    """The object repainted inside its own mask (its box is the model's region); what was done."""
    x0, y0, x1, y1 = (int(v) for v in np.round(inst.boxes[obj]))
    seed = derive_seed(cfg.seed, sid + "/refine", attempt)
    prompt = cfg.refine_prompt.format(name=CLASS_NAMES[inst.classes[obj]])
    out = inpaint_region(pipe, image, inst.boxes[obj], (x0, y0, x1, y1), prompt, cfg.negative_prompt, seed,
                         cfg.steps, cfg.guidance, cfg.size, cfg.context, mask=inst.masks[obj])
    return out, {"refine_prompt": prompt, "refine_seed": seed, "refined_pixels": int(inst.masks[obj].sum())}


def _occlude_one(cfg: OccludeConfig, row: dict[str, Any], obj: int, sid: str, variant: str, attempt: int, pipe,
                 predictor, occluders, backend: str) -> tuple[np.ndarray, Instances, dict[str, Any], str]:
    """One attempt at a sample: the occluded image, its instances, the method details and the prompt used."""
    real = codec.to_rgb(row["image"], row["id"])
    inst = Instances.from_row(row)
    seed = derive_seed(cfg.seed, sid, attempt)
    rng = np.random.default_rng(seed)
    placement = cfg.placement if cfg.placement != "any" else PLACEMENTS[int(rng.integers(len(PLACEMENTS)))]
    region = choose_region(inst.boxes[obj], placement, cfg.share, rng)
    prompt, occ_class = occluders[int(rng.integers(len(occluders)))]
    image, refined = _refine(cfg, real, inst, obj, sid, attempt, pipe) if variant == "refined" else (real, {})
    after = inpaint_region(pipe, image, inst.boxes[obj], region, prompt, cfg.negative_prompt, seed,
                           cfg.steps, cfg.guidance, cfg.size, cfg.context)
    occ = occluder_mask(image, after, region, cfg.mask_mode, cfg.diff_threshold, predictor)
    new, shares = apply_occluder(inst, occ, cfg.drop_below, occ_class, f"occluder:{backend}")
    target = int(inst.ids[obj])
    kept = new.masks[new.ids == target]
    details = {
        "source_id": row["id"], "object_id": target, "object_class": CLASS_NAMES[inst.classes[obj]],
        "variant": variant, "region": list(region), "placement": placement, "share": cfg.share, "backend": backend,
        "prompt": prompt, "occluder_class": None if occ_class is None else CLASS_NAMES[occ_class],
        "seed": seed, "attempt": attempt, "mask_mode": cfg.mask_mode, "occluder_pixels": int(occ.sum()),
        "visible_before": visible_fraction(inst.masks[obj], inst.boxes[obj]),
        "visible_after": visible_fraction(kept[0], inst.boxes[obj]) if len(kept) else 0.0,
        "kept_share": shares, "dropped_ids": sorted(set(map(int, inst.ids)) - set(map(int, new.ids))), **refined,
    }
    return after, new, details, prompt


def measure_agreement(details: dict[str, Any], image: np.ndarray, inst: Instances, verifier) -> bool:
    """Record the detector's agreement with every written object and the occluded one's in ``details``;
    whether the occluded one is verified (a hidden, dropped object has nothing to disagree with)."""
    iou = agreement(inst, *verifier(image))
    details["agreement"] = {str(int(i)): round(float(v), 6) for i, v in zip(inst.ids, iou)}
    target = details["agreement"].get(str(details["object_id"]))
    details["target_agreement"] = target
    return target is None or target >= details["iou_threshold"]


def variant_stats(run, manifest: dict[str, Any], max_attempts: int) -> dict[str, dict[str, Any]]:
    """Per variant, over the whole version: samples, accepted, attempts, acceptance and mean agreement."""
    import pyarrow.parquet as pq

    stats = {v: {"samples": 0, "accepted": 0, "attempts": 0, "agreement": []} for v in VARIANT_SUFFIX}
    for shard in manifest.get("shards", []):
        for sid in shard["failed"]:
            s = stats["refined" if sid.endswith(VARIANT_SUFFIX["refined"]) else "plain"]
            s["samples"], s["attempts"] = s["samples"] + 1, s["attempts"] + max_attempts
        if not shard["path"]:
            continue
        for gen in pq.read_table(run.folder / shard["path"], columns=["generation"]).column(0).to_pylist():
            d = json.loads(gen["method_details"])
            s = stats[d.get("variant", "plain")]
            s["samples"], s["accepted"] = s["samples"] + 1, s["accepted"] + 1
            s["attempts"] += gen["attempts"]
            if d.get("target_agreement") is not None:
                s["agreement"].append(d["target_agreement"])
    out = {}
    for variant, s in stats.items():
        if s["samples"]:
            agree = s.pop("agreement")
            out[variant] = {**s, "acceptance_rate": s["accepted"] / s["samples"],
                            "mean_agreement": float(np.mean(agree)) if agree else None, "measured": len(agree)}
    return out


def variants_card(stats: dict[str, dict[str, Any]], verifier: str | None, threshold: float) -> str:
    """The card's comparison of the variants."""
    how = (f"agreement is the IoU of `{verifier}`'s best mask of the occluded object's class with its written "
           f"mask; samples below {threshold:g} were retried with new seeds" if verifier else
           "no detector measured agreement (pass --detector), so every sample was kept")
    lines = [f"### Variants\n\nPer variant over the whole version; {how}.\n",
             "| variant | samples | accepted | attempts | acceptance | mean agreement (measured) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for variant, s in stats.items():
        agree = "n/a" if s["mean_agreement"] is None else f"{s['mean_agreement']:.3f}"
        lines.append(f"| {variant} | {s['samples']} | {s['accepted']} | {s['attempts']} | "
                     f"{percent(s['acceptance_rate'])} | {agree} ({s['measured']}) |")
    return "\n".join(lines)


def run_occlude(cfg: OccludeConfig) -> MethodResult:
    """Write (or resume) an occlusion version."""
    from streetsynth.repo import load_split, read_info

    check_config(cfg)
    occluders = [parse_occluder(t) for t in cfg.occluders]
    model = load("occluder", ModelSpec(cfg.model, cfg.revision, cfg.device, cfg.dtype, model=cfg.pipeline))
    pipe = model.pipeline
    if not is_gligen(pipe) and model.family.name not in FAMILIES:
        raise ValueError(f"{model.model_id}: occlude runs GLIGEN or the {', '.join(FAMILIES)} families, not "
                         f"{model.family.name}")
    backend = "gligen" if is_gligen(pipe) else model.family.name
    predictor, sam_desc = None, None
    if cfg.mask_mode == "sam":
        from segment_anything import SamPredictor

        sam = load("sam", ModelSpec(cfg.sam, device=cfg.device, model=cfg.sam_model))
        predictor, sam_desc = SamPredictor(sam.pipeline), sam.model_id
    verifier = cfg.verifier
    if verifier is None and cfg.detector is not None:
        from .rerender import MaskDetector

        verifier = MaskDetector(cfg.detector, cfg.device)
    verifier_desc = None if verifier is None else getattr(verifier, "description", "injected")
    source = load_split(cfg.real, STITCHED, cfg.split)
    real_info = read_info(cfg.real)
    injected_or_local = ("real", "out", "device", "dtype", "version", "pipeline", "sam_model", "verifier", "sheet_samples")
    settings = {k: v for k, v in asdict(cfg).items() if k not in injected_or_local}
    fp = method_fingerprint(METHOD, {"source_fingerprint": real_info.get("fingerprint"), "split": cfg.split,
                                     "model": [model.model_id, model.revision], "sam": sam_desc,
                                     "verifier": verifier_desc, "settings": settings})
    plan = plan_samples(source, cfg)
    if not plan:
        raise ValueError(f"{cfg.real}: no object to occlude (classes {', '.join(cfg.classes)}, --min-size "
                         f"{cfg.min_size}, --min-visible {cfg.min_visible}, rows with instance masks only)")
    run = open_run(METHOD, cfg.out, fp, cfg.version, cfg.rows_per_shard)
    done = run.done()
    for r, obj, sid, variant in plan:
        if sid in done:
            continue
        row = source[r]
        for attempt in range(cfg.max_attempts):
            after, new, details, prompt = _occlude_one(cfg, row, obj, sid, variant, attempt, pipe, predictor,
                                                       occluders, backend)
            details["iou_threshold"] = cfg.iou_threshold
            if verifier is None or measure_agreement(details, after, new, verifier):
                break
        else:
            run.writer.add(sid, None, attempts=cfg.max_attempts, rejected=cfg.max_attempts)
            continue
        gen = {"source_id": row["id"], "model_id": model.model_id, "model_revision": model.revision,
               "prompt": prompt, "negative_prompt": cfg.negative_prompt, "seed": details["seed"], "steps": cfg.steps,
               "guidance_scale": cfg.guidance, "strength": 1.0, "attempts": attempt + 1,
               "labeler": f"source-labels-minus-occluder:{cfg.mask_mode}"}
        run.writer.add(sid, synthetic_row(sid, after, new, gen, METHOD, details, row, predictor=predictor),
                       attempts=attempt + 1, rejected=attempt)
    manifest, counts = finish_counts(run, f"no sample's occluded object reached --iou-threshold {cfg.iou_threshold} "
                                          f"in {cfg.max_attempts} attempts")
    variants = variant_stats(run, manifest, cfg.max_attempts)
    pair = before_after(source, "before", lambda row, d: f"{row['id']}: {d['prompt']} ({d['placement']}, "
                                                         f"{d.get('variant', 'plain')})")
    info = {"source": source_record(cfg.real, real_info, split=cfg.split),
            "model": {"id": model.model_id, "revision": model.revision, "backend": backend},
            "verifier": verifier_desc, "variants": variants, "settings": settings, "counts": counts}
    card = CARD + "\n\n" + variants_card(variants, verifier_desc, cfg.iou_threshold)
    return finish_pairs(run, info, card, version_rows(run, manifest, cfg.sheet_samples), pair)
