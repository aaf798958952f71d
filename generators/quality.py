"""How real a synthetic version looks: FID/KID against the real scenes and CLIP score to its prompts.

Every metric is computed twice: on whole images, and on the *invented region* only (the synthetic
columns right of ``generation.known_width`` against the same columns, right of
``stitch.front_x1``, of the real scenes), so a user sees whether the outpaint, not the kept part,
looks real. Features are extracted once per image set by an injected feature extractor (the
Inception-v3 of torch-fidelity, through torchmetrics, by default) and fed to torchmetrics'
FID and KID; the CLIP score comes from a transformers CLIP model named by id or path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from streetsynth import codec
from streetsynth.config import check_size
from streetsynth.models.features import inception_extractor
from streetsynth.models.load import model_name
from streetsynth.repo import atomic_write_text, load_split, read_info, source_record, write_info
from streetsynth.schema import ROW_SCORES_PATH, STITCHED, SYNTHETIC, SYNTHETIC_SPLIT

@dataclass
class QualityConfig:
    """What to compare and with which models."""

    real: str  # REAL repo (config "stitched")
    synthetic: str  # synthetic version folder (STORE/vX.Y.Z)
    split: str = "train"  # split of the real scenes to compare against
    inception: str | None = None  # path of the Inception weights (default: torch hub's checkpoint cache)
    clip_model: str | None = None  # transformers CLIP id or folder; None skips the CLIP score
    size: tuple[int, int] = (299, 299)  # every image and region is resized to this before the extractor
    max_images: int | None = None  # at most this many images per set (the first ones)
    batch_size: int = 16
    device: str = "cpu"
    feature: Any = field(default=None, repr=False)  # injected extractor: uint8 (N,3,H,W) -> (N,D); .description


class _Features(torch.nn.Module):
    """Identity over precomputed features, so FID and KID share one extraction per image set."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def synthetic_region(row: dict[str, Any], image: np.ndarray) -> np.ndarray:
    """The invented columns of a synthetic image."""
    return image[:, int(row["generation"]["known_width"]):]


def real_region(row: dict[str, Any], image: np.ndarray) -> np.ndarray:
    """The columns of a real scene an outpaint invents: right of ``stitch.front_x1``."""
    x1 = int((row.get("stitch") or {}).get("front_x1") or 0)
    if not 0 < x1 < image.shape[1]:
        raise ValueError(f"real row {row.get('id')!r}: stitch.front_x1={x1} is not inside its width")
    return image[:, x1:]


def features(views: Iterator[tuple[np.ndarray, ...]], extractor, size: tuple[int, int], batch_size: int,
             device: str = "cpu") -> tuple[torch.Tensor, ...]:
    """Per view, (N, D) float64 features of RGB uint8 images, each resized to ``size`` (H, W), in batches.

    Each item holds the views of one decoded image (e.g. the whole image and its invented region),
    so an image is decoded once however many views are measured.
    """
    out: list[list[torch.Tensor]] = []
    batches: list[list[np.ndarray]] = []

    def flush() -> None:
        for k, batch in enumerate(batches):
            x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).to(device)
            with torch.inference_mode():
                out[k].append(extractor(x).reshape(len(batch), -1).double().cpu())
            batch.clear()

    for item in views:
        if not batches:
            out, batches = [[] for _ in item], [[] for _ in item]
        for batch, img in zip(batches, item):
            batch.append(cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA))
        if len(batches[0]) == batch_size:
            flush()
    if batches and batches[0]:
        flush()
    if not out:
        raise ValueError("no images to measure")
    return tuple(torch.cat(o) for o in out)


def fid_kid(real: torch.Tensor, synthetic: torch.Tensor) -> dict[str, float]:
    """FID and KID (mean, std over subsets) between two feature sets."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    if min(len(real), len(synthetic)) < 2:
        raise ValueError(f"FID/KID need at least 2 images per set, got {len(real)} real and {len(synthetic)}")
    dims = real.shape[1]
    fid = FrechetInceptionDistance(feature=_Features(dims))
    kid = KernelInceptionDistance(feature=_Features(dims), subset_size=min(len(real), len(synthetic), 1000),
                                  subsets=50)
    for metric in (fid, kid):
        metric.set_dtype(torch.float64)
        metric.update(real, real=True)
        metric.update(synthetic, real=False)
    kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std)}


def load_clip(model: str, device: str = "cpu"):
    """A transformers CLIP model and processor by id or folder (see :mod:`streetsynth.models.load`)."""
    from streetsynth.models.load import ModelSpec, load

    return load("clip", ModelSpec(model, device=device)).pipeline


def clip_score(items: Iterator[tuple[tuple[np.ndarray, ...], str]], clip, batch_size: int = 16,
               per_item: list[tuple[float, ...]] | None = None) -> tuple[float, ...]:
    """Per view, the CLIP score: mean over items of 100 x max(cosine(image, text), 0), texts truncated to
    the model's length. Each item is (views of one decoded image, its prompt).

    Computed from ``CLIPModel``'s own projected embeddings (torchmetrics' ``CLIPScore`` 1.9 does not
    read transformers 5's feature outputs). ``per_item``, when given, receives each item's per-view scores.
    """
    model, processor = clip
    max_len = model.config.text_config.max_position_embeddings
    totals: list[float] = []
    count = 0
    batch: list[tuple[tuple[np.ndarray, ...], str]] = []

    def flush() -> None:
        nonlocal count
        texts = [t for _, t in batch]
        views = []
        for k in range(len(totals)):
            inputs = processor(text=texts, images=[Image.fromarray(np.ascontiguousarray(v[k])) for v, _ in batch],
                               return_tensors="pt", padding=True, truncation=True, max_length=max_len)
            with torch.inference_mode():
                out = model(**{key: val.to(model.device) for key, val in inputs.items()})
            cos = torch.nn.functional.cosine_similarity(out.image_embeds, out.text_embeds, dim=-1)
            totals[k] += float((100.0 * cos.clamp(min=0)).sum())
            views.append((100.0 * cos.clamp(min=0)).tolist())
        if per_item is not None:
            per_item.extend(zip(*views))
        count += len(batch)
        batch.clear()

    for views, text in items:
        if not totals:
            totals = [0.0] * len(views)
        batch.append((views, text))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if not count:
        raise ValueError("no image-text pairs to score")
    return tuple(t / count for t in totals)


def measure_quality(cfg: QualityConfig) -> dict[str, Any]:
    """The quality block of a synthetic version against the real scenes it came from."""
    check_size(cfg.size)
    for name in ("batch_size", "max_images"):
        if (getattr(cfg, name) or 1) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    extractor = cfg.feature if cfg.feature is not None else inception_extractor(cfg.inception).to(cfg.device)
    clip = load_clip(cfg.clip_model, cfg.device) if cfg.clip_model else None
    synth = load_split(cfg.synthetic, SYNTHETIC, SYNTHETIC_SPLIT)
    real = load_split(cfg.real, STITCHED, cfg.split)
    if cfg.max_images is not None:
        synth, real = (d.select(range(min(cfg.max_images, len(d)))) for d in (synth, real))
    feats = {}
    for name, rows, region in (("real", real, real_region), ("synthetic", synth, synthetic_region)):
        views = ((img, region(r, img)) for r in rows for img in [codec.to_rgb(r["image"], r["id"])])
        feats[name], feats[name + "_region"] = features(views, extractor, cfg.size, cfg.batch_size, cfg.device)
    block: dict[str, Any] = {
        "real": source_record(cfg.real, read_info(cfg.real), split=cfg.split),
        "counts": {"real": len(real), "synthetic": len(synth)},
        "feature_extractor": getattr(extractor, "description", type(extractor).__name__),
        "feature_dims": int(feats["real"].shape[1]), "image_size": list(cfg.size),
        "images": fid_kid(feats["real"], feats["synthetic"]),
        "invented_region": fid_kid(feats["real_region"], feats["synthetic_region"]),
    }
    if clip is not None:
        real_index = {rid: i for i, rid in enumerate(real["id"])}
        synth_views = ((img, synthetic_region(r, img)) for r in synth for img in [codec.to_rgb(r["image"], r["id"])])
        per_row: list[tuple[float, ...]] = []
        whole, region = clip_score(zip(synth_views, (g["prompt"] for g in synth["generation"])), clip, cfg.batch_size,
                                   per_row)
        paired = [(real_index[g["source_id"]], g["prompt"]) for g in synth["generation"]
                  if g["source_id"] in real_index]
        real_views = (((real_region(row, codec.to_rgb(row["image"], row["id"])),), prompt)
                      for i, prompt in paired for row in [real[i]])
        block["clip"] = {"model": model_name(cfg.clip_model), "images": whole, "invented_region": region,
                         "real_region": clip_score(real_views, clip, cfg.batch_size)[0] if paired else None}
        block[ROW_SCORES_KEY] = {rid: {"quality_clip": round(float(v[1]), 4)} for rid, v in zip(synth["id"], per_row)}
    return block


#: Key of a quality block that holds the per-row CLIP scores of the invented region until they are recorded.
ROW_SCORES_KEY = "row_scores"


def record_quality(folder: str | Path, block: dict[str, Any]) -> dict[str, Any]:
    """Put the quality block into the version's ``meta/info.json`` and its per-row CLIP scores of the
    invented region (``quality_clip``, keyed by row id) into the row-score sidecar
    (schema.ROW_SCORES_PATH, read by training filters, preview and the COCO export); returns the new info."""
    block = dict(block)
    per_row = block.pop(ROW_SCORES_KEY, None)
    if per_row:
        path = Path(folder) / ROW_SCORES_PATH
        old = json.loads(path.read_text()) if path.exists() else {}
        merged = {rid: {**old.get(rid, {}), **per_row.get(rid, {})} for rid in {*old, *per_row}}
        atomic_write_text(path, json.dumps(merged, indent=1, sort_keys=True) + "\n")
    info = {**read_info(folder), "quality": block}
    write_info(folder, info)
    return info


def format_quality(block: dict[str, Any]) -> str:
    """One line: FID, KID and CLIP score of whole images and of the invented region."""
    img, reg = block["images"], block["invented_region"]
    line = (f"FID {img['fid']:.2f} (invented region {reg['fid']:.2f}), KID {img['kid_mean']:.4f} "
            f"(invented region {reg['kid_mean']:.4f})")
    clip = block.get("clip")
    if clip:
        real = "n/a" if clip["real_region"] is None else f"{clip['real_region']:.2f}"
        line += f", CLIP {clip['images']:.2f} (invented region {clip['invented_region']:.2f}, real region {real})"
    return line + f"; {block['counts']['synthetic']} synthetic vs {block['counts']['real']} real images"


def quality_lines(folders: list[str | Path]) -> list[str]:
    """``<version>: <quality>`` for each synthetic version folder that has a quality block."""
    lines = []
    for folder in folders:
        info = read_info(folder)
        if info.get("quality"):
            lines.append(f"{info.get('version') or folder} quality: {format_quality(info['quality'])}")
    return lines
