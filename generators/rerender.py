"""Layout-preserving re-rendering: a real scene's labels, a new appearance from a ControlNet.

Each real row's layout is drawn in the colours the ControlNet was trained on: the streetsynth
palette (``layout_palette``) for a ControlNet from ``streetsynth train controlnet`` (condition
``layout``, the default when the ControlNet folder names that palette), or ADE20K's palette for
``lllyasviel/control_v11p_sd15_seg`` (condition ``seg``: person, car, signboard and the stuff
classes ADE20K shares with Waymo). Both draw the stuff classes (road, sky, ...) where the row has a
``semantic_mask``, the instances on top. Or its edges are taken (Canny, for an edge ControlNet). A prompt adds a condition phrase ("at night",
"in heavy rain", ...) to the row's caption, and ``StableDiffusionControlNetPipeline`` renders a
new scene with the real layout. The labels are known before generation; verification keeps an
instance only when the detector's best mask of its class on the new image has IoU >= a threshold
with it, and drops the row when too few survive. Kept labels are the real ones, exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
from PIL import Image

from streetsynth import codec
from streetsynth.config import check_fraction, check_size
from streetsynth.digest import file_digest
from streetsynth.instances import Instances
from streetsynth.models.load import ModelSpec, load
from streetsynth.schema import CLASS_NAMES, STITCHED
from streetsynth.seeds import derive_seed
from streetsynth.versions import check_out_outside, check_version

from .layout_palette import PALETTE_FILE, PALETTE_NAME, draw_layout, row_semantic
from .style_reference import IP_ADAPTER, IP_ADAPTER_WEIGHT, StyleImages, adapter_name, load_ip_adapter
from .method_run import (MethodResult, MethodRunOptions, before_after, finish_counts, finish_pairs, method_fingerprint,
                         open_run, source_record, synthetic_row, version_rows)

METHOD = "rerender"
CONTROLNET_SEG = "lllyasviel/control_v11p_sd15_seg"
BASE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
CONDITIONS = ("layout", "seg", "edges")
#: The weights file of a ControlNet folder (what its digest is taken of).
CONTROLNET_WEIGHTS = "diffusion_pytorch_model.safetensors"
#: ADE20K palette colours of the ADE classes ours map to: person (12), car (20), signboard (43).
ADE20K_COLORS: dict[int, tuple[int, int, int]] = {
    CLASS_NAMES.index("vehicle"): (0, 102, 200),
    CLASS_NAMES.index("pedestrian"): (150, 5, 61),
    CLASS_NAMES.index("cyclist"): (150, 5, 61),
    CLASS_NAMES.index("sign"): (255, 5, 153),
}
#: ADE20K colours of the Waymo stuff types ADE20K has: building, sky, tree, road, sidewalk, earth.
ADE20K_STUFF: dict[int, tuple[int, int, int]] = {19: (180, 120, 120), 25: (6, 230, 230), 24: (4, 200, 3),
                                                 20: (140, 140, 140), 21: (140, 140, 140), 22: (140, 140, 140),
                                                 23: (235, 255, 7), 26: (120, 120, 70)}
DEFAULT_PHRASES = ("at night", "in heavy rain", "in snow", "at dusk", "on a foggy morning", "in Tokyo",
                   "in Paris", "in San Francisco")
DEFAULT_NEGATIVE = "cartoon, drawing, distorted, blurry"
CARD = ("Each row keeps a real scene's layout and labels and gets a new appearance (weather, time of day, "
        "city) from a ControlNet conditioned on the scene layout (instances over road, sky and the other stuff "
        "classes where the frame has panoptic labels; the streetsynth palette for a ControlNet trained on the real "
        "scenes, ADE20K's for a public segmentation ControlNet) or on edges. A detector "
        "checks each instance on the new image: an instance is kept when the detector's best mask of its class "
        "overlaps it with IoU at or above the threshold; rows with too few kept instances are dropped. "
        "`method_details.agreement` holds each instance's IoU.")


def seg_condition(inst: Instances, semantic: np.ndarray | None = None) -> np.ndarray:
    """The layout as an RGB segmentation map in ADE20K colours: stuff from ``semantic`` (Waymo types) where
    given, the instances on top, black elsewhere."""
    stuff = np.zeros((256, 3), np.uint8)
    for seg, colour in ADE20K_STUFF.items():
        stuff[seg] = colour
    out = stuff[semantic] if semantic is not None else np.zeros((inst.height, inst.width, 3), np.uint8)
    if inst.masks is None or len(inst) == 0:
        return out
    lut = np.zeros((int(inst.ids.max(initial=0)) + 1, 3), np.uint8)
    for i, c in zip(inst.ids, inst.classes):
        lut[i] = ADE20K_COLORS[int(c)]
    ids = inst.id_mask()
    return np.where((ids > 0)[..., None], lut[ids], out)


def controlnet_record(controlnet: str) -> dict[str, Any]:
    """Which ControlNet: its folder name or id, the digest of its weights (local folders) and the palette it
    was trained on (``layout_palette.json`` beside a ``streetsynth train controlnet`` output), or None."""
    import json

    path = Path(controlnet)
    weights = path / CONTROLNET_WEIGHTS
    palette = path / PALETTE_FILE
    return {"name": path.name if path.is_dir() else controlnet,
            "digest": file_digest(weights) if weights.is_file() else None,
            "palette": json.loads(palette.read_text())["name"] if palette.is_file() else None}


def resolve_condition(condition: str | None, controlnet: dict[str, Any]) -> str:
    """The condition asked for, else ``layout`` for a ControlNet trained on the streetsynth palette, else ``seg``."""
    if condition is not None:
        return condition
    return "layout" if controlnet.get("palette") == PALETTE_NAME else "seg"


def edge_condition(image: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """Canny edges as a 3-channel image, as edge ControlNets expect."""
    edges = cv2.Canny(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), low, high)
    return np.repeat(edges[:, :, None], 3, axis=2)


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(Na, Nb)`` IoU of two boolean mask stacks."""
    from .label import intersections

    inter = intersections(a, b)
    area_a, area_b = a.reshape(len(a), -1).sum(1), b.reshape(len(b), -1).sum(1)
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / np.maximum(union, 1)


def agreement(inst: Instances, pred_masks: np.ndarray, pred_classes: np.ndarray) -> np.ndarray:
    """Per instance, the IoU of the best predicted mask of the same class (0 when there is none)."""
    if len(inst) == 0 or len(pred_masks) == 0:
        return np.zeros(len(inst), np.float64)
    iou = mask_iou(inst.masks, np.asarray(pred_masks, bool))
    same = inst.classes[:, None] == np.asarray(pred_classes)[None, :]
    return np.where(same, iou, 0.0).max(axis=1)


class MaskDetector:
    """Image -> (masks, classes) of our classes, from a torchvision Mask R-CNN spec (see ``load_detector``)."""

    def __init__(self, spec: str = "tiny", device: str = "cpu", score_threshold: float = 0.5,
                 mask_threshold: float = 0.5) -> None:
        from streetsynth.models.detector import load_detector

        self.model, cmap, self.description = load_detector(spec, device=device)
        self.lut = np.full(max(cmap) + 1, -1, np.int64)
        self.lut[list(cmap)] = list(cmap.values())
        self.device, self.score_threshold, self.mask_threshold = device, score_threshold, mask_threshold

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).to(self.device, torch.float32) / 255.0
        with torch.no_grad():
            out = self.model([x])[0]
        labels = out["labels"].cpu().numpy()
        classes = np.where(labels < len(self.lut), self.lut[np.minimum(labels, len(self.lut) - 1)], -1)
        keep = (classes >= 0) & (out["scores"].cpu().numpy() >= self.score_threshold)
        masks = (out["masks"][:, 0] >= self.mask_threshold).cpu().numpy()
        return masks[keep], classes[keep]


@dataclass
class RerenderConfig(MethodRunOptions):
    """A re-rendering run; everything but the injected objects enters the fingerprint."""

    real: str
    out: str
    model: str = "tiny"  # SD base id/folder; "tiny" = tiny random ControlNet pipeline
    controlnet: str = CONTROLNET_SEG  # ControlNet id/folder; with "tiny", a local folder replaces the random one
    revision: str | None = None
    split: str = "train"
    condition: str | None = None  # layout (streetsynth palette), seg (ADE20K colours) or edges (Canny);
    # None: layout for a ControlNet trained by `train controlnet`, else seg
    phrases: tuple[str, ...] = DEFAULT_PHRASES
    prompt_source: str = "caption"  # caption: "<caption>, <phrase>"; default: "a street scene, <phrase>"
    negative_prompt: str = DEFAULT_NEGATIVE
    size: tuple[int, int] | None = None  # generation (H, W), multiples of 8; default the source rounded down
    steps: int = 30
    guidance: float = 7.5
    conditioning_scale: float = 1.0
    iou_threshold: float = 0.5  # an instance is kept when its best predicted mask reaches this IoU
    min_kept: int = 1  # rows with fewer kept instances are dropped
    num: int | None = None
    detector: str = "tiny"  # detector spec for verification
    style_image: str | None = None  # a reference image, or a folder of them (one drawn per row), via IP-Adapter
    style_scale: float = 0.6  # IP-Adapter scale: how strongly the reference steers the image
    ip_adapter: str = IP_ADAPTER  # IP-Adapter Hub id or local folder
    ip_adapter_weight: str = IP_ADAPTER_WEIGHT  # its weight file inside (image_encoder/ beside it)
    verifier: Callable | None = field(default=None, repr=False)  # image -> (masks, classes)


def load_controlnet_pipeline(model: str, controlnet: str, revision: str | None, device: str, dtype: str | None):
    """(pipeline, id, revision) of ``StableDiffusionControlNetPipeline`` (or the tiny one); see
    :func:`streetsynth.models.load.load`, kind ``controlnet``."""
    loaded = load("controlnet", ModelSpec(model, revision, device, dtype, {"controlnet": controlnet}))
    return loaded.pipeline, loaded.model_id, loaded.revision


def render(pipe, condition: np.ndarray, prompt: str, negative: str, seed: int, steps: int, guidance: float,
           conditioning_scale: float, size: tuple[int, int], style: Image.Image | None = None) -> np.ndarray:
    """One ControlNet image at ``size`` (H, W), returned at the condition's own size (RGB uint8); ``style`` is
    the IP-Adapter reference image (the adapter must be loaded)."""
    import torch

    h, w = condition.shape[:2]
    gh, gw = size
    cond = cv2.resize(condition, (gw, gh), interpolation=cv2.INTER_NEAREST) if (gh, gw) != (h, w) else condition
    device = getattr(pipe, "device", torch.device("cpu"))
    gen = torch.Generator(device="cpu" if device.type == "mps" else device).manual_seed(int(seed))
    extra = {} if style is None else {"ip_adapter_image": style}
    with torch.inference_mode():
        out = pipe(prompt=prompt, negative_prompt=negative, image=Image.fromarray(cond), height=gh, width=gw,
                   num_inference_steps=steps, guidance_scale=guidance, controlnet_conditioning_scale=conditioning_scale,
                   generator=gen, output_type="np", **extra).images[0]
    out = (np.asarray(out, np.float32) * 255.0).round().clip(0, 255).astype(np.uint8)
    return cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC) if (gh, gw) != (h, w) else out


def check_config(cfg: RerenderConfig) -> None:
    """Refuse bad settings with a message naming the option, before any model is loaded or folder made."""
    if cfg.condition is not None and cfg.condition not in CONDITIONS:
        raise ValueError(f"unknown condition {cfg.condition!r}; known: {', '.join(CONDITIONS)}")
    if cfg.prompt_source not in ("caption", "default"):
        raise ValueError(f"unknown prompt source {cfg.prompt_source!r}; known: caption, default")
    if not cfg.phrases:
        raise ValueError("give at least one condition phrase")
    check_fraction(cfg.iou_threshold, "--iou-threshold")
    for name in ("num", "rows_per_shard"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if cfg.size is not None:
        check_size(cfg.size, 8)
    check_version(cfg.version)
    check_out_outside(cfg.out, cfg.real)


def condition_image(condition: str, row: dict[str, Any], inst: Instances, image: np.ndarray) -> np.ndarray:
    """The conditioning image of a row: its layout (our palette or ADE20K's) or its edges."""
    if condition == "edges":
        return edge_condition(image)
    semantic = row_semantic(row)
    return draw_layout(inst, semantic) if condition == "layout" else seg_condition(inst, semantic)


def _rerender_one(cfg: RerenderConfig, row: dict[str, Any], sid: str, pipe, verifier, styles: StyleImages | None):
    """One sample: (image, kept instances, details, prompt), or None when too few instances survive."""
    image = codec.to_rgb(row["image"], row["id"])
    inst = Instances.from_row(row)
    h, w = image.shape[:2]
    seed = derive_seed(cfg.seed, sid, 0)
    phrase = cfg.phrases[int(np.random.default_rng(seed).integers(len(cfg.phrases)))]
    base = (row.get("caption") or "a street scene") if cfg.prompt_source == "caption" else "a street scene"
    prompt = f"{base}, {phrase}"
    cond = condition_image(cfg.condition, row, inst, image)
    size = cfg.size or ((h // 8) * 8, (w // 8) * 8)
    style = styles.pick(cfg.seed, sid) if styles is not None else None
    out = render(pipe, cond, prompt, cfg.negative_prompt, seed, cfg.steps, cfg.guidance, cfg.conditioning_scale, size,
                 None if style is None else style.image)
    iou = agreement(inst, *verifier(out))
    keep = iou >= cfg.iou_threshold
    if keep.sum() < cfg.min_kept:
        return None
    details = {"source_id": row["id"], "condition": cfg.condition, "phrase": phrase, "seed": seed,
               "stuff_drawn": cfg.condition != "edges" and row.get("semantic_mask") is not None,
               "iou_threshold": cfg.iou_threshold, "size": list(size),
               "agreement": {str(int(i)): round(float(v), 6) for i, v in zip(inst.ids, iou)},
               "dropped_ids": [int(i) for i in inst.ids[~keep]], "style": None if style is None else style.record}
    return out, inst.select(keep), details, prompt


def _load_model(cfg: RerenderConfig):
    """The ControlNet pipeline; with the tiny base, a local ControlNet folder (``train controlnet --model tiny``)
    replaces its random ControlNet, so a trained tiny one runs end to end."""
    model = load("controlnet", ModelSpec(cfg.model, cfg.revision, cfg.device, cfg.dtype,
                                         {"controlnet": cfg.controlnet}, model=cfg.pipeline))
    if cfg.pipeline is None and cfg.model == "tiny" and Path(cfg.controlnet).is_dir():
        from diffusers import ControlNetModel

        trained = ControlNetModel.from_pretrained(cfg.controlnet).to(cfg.device)
        model.pipeline.register_modules(controlnet=trained)
        model = replace(model, model_id=f"{model.model_id}+{Path(cfg.controlnet).name}",
                        revision=f"{model.revision}+{file_digest(Path(cfg.controlnet) / CONTROLNET_WEIGHTS)}")
    return model


def run_rerender(cfg: RerenderConfig) -> MethodResult:
    """Write (or resume) a re-rendered version."""
    from streetsynth.repo import load_split, read_info

    check_config(cfg)
    cn = controlnet_record(cfg.controlnet)
    cfg = replace(cfg, condition=resolve_condition(cfg.condition, cn))
    styles = StyleImages(cfg.style_image, cfg.style_scale) if cfg.style_image else None
    model = _load_model(cfg)
    if styles is not None:
        load_ip_adapter(model.pipeline, cfg.ip_adapter, cfg.ip_adapter_weight, cfg.style_scale)
    verifier = cfg.verifier or MaskDetector(cfg.detector, cfg.device)
    verifier_desc = getattr(verifier, "description", "injected")
    source = load_split(cfg.real, STITCHED, cfg.split)
    real_info = read_info(cfg.real)
    settings = {k: v for k, v in asdict(cfg).items()
                if k not in ("real", "out", "device", "dtype", "version", "pipeline", "verifier", "sheet_samples")}
    settings["controlnet"] = cn["name"]  # a folder's name, never the machine's path
    settings["style_image"] = None if styles is None else styles.record()
    settings["ip_adapter"] = adapter_name(cfg.ip_adapter)
    fp = method_fingerprint(METHOD, {"source_fingerprint": real_info.get("fingerprint"), "split": cfg.split,
                                     "model": [model.model_id, model.revision], "verifier": verifier_desc,
                                     "controlnet": cn, "settings": settings})
    run = open_run(METHOD, cfg.out, fp, cfg.version, cfg.rows_per_shard)
    done = run.done()
    for r in range(len(source) if cfg.num is None else min(cfg.num, len(source))):
        row = source[r]
        sid = f"{row['id']}#rerender"
        if sid in done:
            continue
        if Instances.from_row(row).masks is None:
            run.writer.add(sid, None, attempts=0, rejected=0)
            continue
        made = _rerender_one(cfg, row, sid, model.pipeline, verifier, styles)
        if made is None:
            run.writer.add(sid, None, attempts=1, rejected=1)
            continue
        out, kept, details, prompt = made
        details["controlnet"] = cn
        gen = {"source_id": row["id"], "model_id": model.model_id, "model_revision": model.revision,
               "prompt": prompt, "negative_prompt": cfg.negative_prompt, "seed": details["seed"], "steps": cfg.steps,
               "guidance_scale": cfg.guidance, "attempts": 1, "labeler": f"source-labels-verified:{verifier_desc}"}
        run.writer.add(sid, synthetic_row(sid, out, kept, gen, METHOD, details, row), attempts=1, rejected=0)
    manifest, counts = finish_counts(run, f"rows without instance masks, or fewer than --min-kept {cfg.min_kept} "
                                          f"instances at --iou-threshold {cfg.iou_threshold}")
    pair = before_after(source, "real", lambda row, d: f"{d['phrase']}: kept {len(row['objects'] or [])}")
    info = {"source": source_record(cfg.real, real_info, split=cfg.split),
            "model": {"id": model.model_id, "revision": model.revision}, "controlnet": cn, "verifier": verifier_desc,
            "settings": settings, "counts": counts}
    return finish_pairs(run, info, CARD, version_rows(run, manifest, cfg.sheet_samples), pair)
