"""How real a synthetic version looks: FID/KID against the real scenes, CLIP score to its prompts, and how
diverse it is: LPIPS between samples of the same source row and across rows.

Every metric is computed twice: on whole images, and on the *invented region* only (the synthetic
columns right of ``generation.known_width`` against the same columns, right of
``stitch.front_x1``, of the real scenes), so a user sees whether the outpaint, not the kept part,
looks real. Features are extracted once per image set by an injected feature extractor (the
Inception-v3 of torch-fidelity, through torchmetrics, by default) and fed to torchmetrics'
FID and KID; the CLIP score comes from a transformers CLIP model named by id or path. Diversity is the
mean pairwise LPIPS (:mod:`streetsynth.models.lpips`) among the samples made from one source row (a
generator that ignores its seed scores 0) and among samples of different rows, with the real scenes'
across-row figure beside it for scale.
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
from streetsynth.models.lpips import load_lpips, pairwise
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
    lpips: str | None = "alex"  # LPIPS backbone for diversity: alex or vgg; None skips diversity
    lpips_backbone: str | None = None  # torchvision backbone weights (default: torch hub's checkpoints/)
    lpips_linear: str | None = None  # LPIPS v0.1 linear layers file (default: the copy torchmetrics ships)
    lpips_size: tuple[int, int] = (128, 256)  # (H, W) images and regions are resized to for LPIPS
    lpips_max_rows: int = 64  # source rows (one sample each) whose pairs give the across-row figures
    feature: Any = field(default=None, repr=False)  # injected extractor: uint8 (N,3,H,W) -> (N,D); .description
    lpips_model: Any = field(default=None, repr=False)  # injected LPIPS (``.embed``, ``.description``)


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


def _mean(pairs: list[torch.Tensor]) -> tuple[float | None, int]:
    values = torch.cat(pairs) if pairs else torch.zeros(0)
    return (float(values.mean()) if len(values) else None), len(values)


def diversity(synth, real, lpips, cfg: QualityConfig) -> dict[str, Any]:
    """Mean pairwise LPIPS per view (whole image, invented region): among samples of one source row, among
    first samples of different rows, and among real scenes (at most ``lpips_max_rows`` each)."""
    groups: dict[str, list[int]] = {}
    for i, gen in enumerate(synth["generation"]):
        groups.setdefault(gen["source_id"], []).append(i)

    def embed(rows, region) -> tuple[torch.Tensor, ...]:
        views = ((img, region(r, img)) for r in rows for img in [codec.to_rgb(r["image"], r["id"])])
        return features(views, lpips.embed, cfg.lpips_size, cfg.batch_size, cfg.device)

    within: list[list[torch.Tensor]] = [[], []]
    repeated = [idx for idx in groups.values() if len(idx) >= 2]
    for idx in repeated:
        for k, emb in enumerate(embed(synth.select(idx), synthetic_region)):
            within[k].append(pairwise(emb))
    firsts = [idx[0] for idx in groups.values()][:cfg.lpips_max_rows]
    across = embed(synth.select(firsts), synthetic_region) if len(firsts) >= 2 else (None, None)
    n_real = min(len(real), cfg.lpips_max_rows)
    real_emb = embed(real.select(range(n_real)), real_region) if n_real >= 2 else (None, None)
    views = {}
    for k, view in enumerate(("images", "invented_region")):
        w, a, r = _mean(within[k]), _mean([pairwise(across[k])] if across[k] is not None else []), \
            _mean([pairwise(real_emb[k])] if real_emb[k] is not None else [])
        views[view] = {"within_rows": w[0], "within_pairs": w[1], "across_rows": a[0], "across_pairs": a[1],
                       "real_across_rows": r[0], "real_pairs": r[1]}
    return {"model": getattr(lpips, "description", type(lpips).__name__), "image_size": list(cfg.lpips_size),
            "source_rows_with_several_samples": len(repeated), **views}


def measure_quality(cfg: QualityConfig) -> dict[str, Any]:
    """The quality block of a synthetic version against the real scenes it came from."""
    check_size(cfg.size)
    if min(check_size(cfg.lpips_size, what="--lpips-size")) < 32:
        raise ValueError(f"--lpips-size {cfg.lpips_size[0]}x{cfg.lpips_size[1]}: LPIPS needs sides of at least 32")
    for name in ("batch_size", "max_images", "lpips_max_rows"):
        if (getattr(cfg, name) or 1) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    extractor = cfg.feature if cfg.feature is not None else inception_extractor(cfg.inception).to(cfg.device)
    clip = load_clip(cfg.clip_model, cfg.device) if cfg.clip_model else None
    lpips = cfg.lpips_model if cfg.lpips_model is not None or cfg.lpips is None else \
        load_lpips(cfg.lpips, cfg.lpips_backbone, cfg.lpips_linear)
    lpips = lpips.to(cfg.device) if lpips is not None else None
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
    if lpips is not None:
        block["lpips"] = diversity(synth, real, lpips, cfg)
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
    lp = block.get("lpips")
    if lp:
        reg = lp["invented_region"]
        line += (f", LPIPS diversity of the invented region {_num(reg['within_rows'])} within rows, "
                 f"{_num(reg['across_rows'])} across rows (real {_num(reg['real_across_rows'])})")
    return line + f"; {block['counts']['synthetic']} synthetic vs {block['counts']['real']} real images"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def quality_lines(folders: list[str | Path]) -> list[str]:
    """``<version>: <quality>`` for each synthetic version folder that has a quality block."""
    lines = []
    for folder in folders:
        info = read_info(folder)
        if info.get("quality"):
            lines.append(f"{info.get('version') or folder} quality: {format_quality(info['quality'])}")
    return lines
