"""Denoiser features for the grounding head, extracted from finished images and cached per row.

Grounding is decoupled from generation: any image (a synthetic row, or a freshly generated one in
``ground --head``) is encoded with the VAE, noised to each chosen timestep with a seed derived from
its id, and passed once through the UNet with its prompt. Per timestep we keep

- the cross-attention of each object's prompt tokens (:class:`~streetsynth.generators.attention_maps.AttentionStore`,
  min-max normalised like the thresholded method; an object with several tokens takes their maximum);
- the outputs of chosen UNet up blocks, resampled to the latent grid.

An object is a class the prompt names (one mask per object token group: the union of the row's
instances of that class, empty when the class is named but absent). A row whose masks include a
class its prompt does not name gets that class's word appended to the prompt.

Cache layout (``FEATURES``)::

    settings.json            what was extracted (model, timesteps, blocks, mask stride, seed)
    rows/<id>.safetensors    attention (K, T, h, w) fp16, features (T, C, h, w) fp16,
                             masks (K, Hm, Wm) uint8, classes (K,) int64; written to a temporary
                             name and renamed, so a present file is complete
    manifest.json            the rows, written when every row is cached

A killed extraction resumes: rows already present are skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from streetsynth.generators.attention_maps import FeatureExtractor
from streetsynth.models.grounding_head import FeatureSpec

from streetsynth.repo import atomic_write_text, fsync_dir

SETTINGS_FILE = "settings.json"
MANIFEST_FILE = "manifest.json"
ROWS_DIR = "rows"
#: The word appended to a prompt for a class it does not name, per class index.
CLASS_WORD = {0: "car", 1: "pedestrian", 2: "cyclist", 3: "sign"}


def prompt_objects(tokenizer, prompt: str, classes) -> tuple[str, dict[int, list[int]]]:
    """The prompt (with words appended for mask classes it does not name) and class -> token positions."""
    from streetsynth.generators.ground import class_tokens

    text = prompt
    for cls in sorted(set(int(c) for c in classes) - set(class_tokens(tokenizer, prompt))):
        text = f"{text}, a {CLASS_WORD[cls]}"
    return text, class_tokens(tokenizer, text)


def target_masks(masks: np.ndarray | None, classes, objects: dict[int, list[int]], size: tuple[int, int],
                 stride: int) -> np.ndarray:
    """(K, H/stride, W/stride) uint8: per object class, the union of the row's instance masks of that class."""
    h, w = size[0] // stride, size[1] // stride
    out = np.zeros((len(objects), h, w), np.uint8)
    if masks is None or not len(masks):
        return out
    classes = np.asarray(classes)
    for k, cls in enumerate(objects):
        union = masks[classes == cls].any(axis=0).astype(np.uint8)
        out[k] = union[::stride, ::stride][:h, :w] if stride > 1 else union
    return out


def save_row(folder: Path, sid: str, tensors: dict[str, torch.Tensor]) -> Path:
    """Write one row's tensors durably under ``rows/<id>.safetensors`` (temporary name, fsync, rename)."""
    rows = folder / ROWS_DIR
    rows.mkdir(parents=True, exist_ok=True)
    final = rows / f"{sid}.safetensors"
    tmp = rows / f".{sid}.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(final)
    fsync_dir(rows)
    return final


def row_tensors(attention: torch.Tensor, features: torch.Tensor, masks: np.ndarray, classes) -> dict[str, torch.Tensor]:
    """The cached form of one row."""
    return {"attention": attention.half(), "features": features.half(), "masks": torch.from_numpy(masks),
            "classes": torch.as_tensor(list(classes), dtype=torch.int64)}


def open_cache(folder: str | Path, settings: dict[str, Any]) -> Path:
    """Create (or reopen, checking its settings) a feature cache folder."""
    folder = Path(folder)
    path = folder / SETTINGS_FILE
    if path.exists():
        old = json.loads(path.read_text())
        if old != settings:
            changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise ValueError(f"{folder}: a feature cache of other settings ({', '.join(changed)} differ); "
                             "use another --features folder")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return folder


def cached_ids(folder: str | Path) -> set[str]:
    rows = Path(folder) / ROWS_DIR
    return {p.name.removesuffix(".safetensors") for p in rows.glob("*.safetensors")} if rows.exists() else set()


def finish_cache(folder: Path, ids: list[str], counts: dict[str, int]) -> None:
    atomic_write_text(folder / MANIFEST_FILE, json.dumps({"rows": sorted(ids), "counts": counts}, indent=2) + "\n")


def load_row(folder: str | Path, sid: str) -> dict[str, torch.Tensor]:
    return load_file(str(Path(folder) / ROWS_DIR / f"{sid}.safetensors"))


def cache_rows(data: str | Path, folder: str | Path, spec: FeatureSpec, load_model, max_rows: int | None = None,
               progress: bool = False) -> list[str]:
    """Cache every row of a synthetic version with masks (resuming); the ids cached, sorted.

    ``load_model()`` returns the text-to-image model (a ``LoadedModel``); it is called only when a row
    is missing, so a complete cache trains without the diffusion model.
    """
    from tqdm.auto import tqdm

    from streetsynth.instances import Instances
    from streetsynth.repo import load_split

    rows = load_split(data, "synthetic", "synthetic")
    ids = list(rows["id"])[:max_rows]
    folder = Path(folder)
    done = cached_ids(folder)
    todo = [i for i, sid in enumerate(ids) if sid not in done]
    extractor, skipped = None, 0
    for i in tqdm(todo, desc="features", disable=not progress):
        row = rows[i]
        inst = Instances.from_row(row)
        if len(inst) and inst.masks is None:
            skipped += 1
            continue
        if extractor is None:
            extractor = FeatureExtractor(load_model().pipeline, spec)
        text, objects = prompt_objects(extractor.pipe.tokenizer, row["generation"]["prompt"] or "", inst.classes)
        image = np.asarray(row["image"].convert("RGB"))
        if image.shape[0] % 8 or image.shape[1] % 8:
            raise ValueError(f"{data}: row {row['id']} is {image.shape[1]}x{image.shape[0]}; sides must be "
                             "multiples of 8")
        attention, features = extractor(image, text, list(objects.values()), row["id"])
        masks = target_masks(inst.masks, inst.classes, objects, image.shape[:2], spec.mask_stride)
        save_row(folder, row["id"], row_tensors(attention, features, masks, objects))
    cached = sorted(cached_ids(folder) & set(ids))
    finish_cache(folder, cached, {"rows": len(ids), "cached": len(cached), "skipped_no_masks": skipped})
    return cached


def spec_settings(spec: FeatureSpec, model_id: str, revision: str | None, data: str) -> dict[str, Any]:
    """What a cache's ``settings.json`` holds."""
    return {**asdict(spec), "timesteps": list(spec.timesteps), "blocks": list(spec.blocks),
            "model": [model_id, revision], "data": str(data)}
