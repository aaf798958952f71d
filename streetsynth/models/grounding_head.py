"""The grounding head: a small convolutional decoder from denoiser attention and features to object masks.

Trained by ``streetsynth train grounding`` (``streetsynth.training.grounding``) and used by
``ground --head``. A saved head is ``head.safetensors`` beside ``head.json`` (its shape, the
:class:`FeatureSpec` its features were taken with, the model they came from, held-out metrics).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from streetsynth.digest import file_digest
from streetsynth.repo import atomic_write_text

HEAD_DIR = "head"
HEAD_FILE = "head.safetensors"
HEAD_META = "head.json"


@dataclass(frozen=True)
class FeatureSpec:
    """What is extracted per image; stored beside the cache and inside a trained head."""

    timesteps: tuple[int, ...] = (200,)  # noise levels the UNet sees the image at
    blocks: tuple[int, ...] = (-2, -1)  # UNet up blocks whose outputs are kept (negative = from the end)
    mask_stride: int = 2  # masks are stored (and predicted) at the image size divided by this
    seed: int = 0  # noise seeds derive from (seed, row id, timestep)

    def check(self, num_train_timesteps: int, num_blocks: int) -> None:
        if not self.timesteps:
            raise ValueError("--timesteps: give at least one timestep")
        bad = [t for t in self.timesteps if not 0 <= t < num_train_timesteps]
        if bad:
            raise ValueError(f"--timesteps {bad} outside the scheduler's range 0..{num_train_timesteps - 1}")
        if not self.blocks or any(not -num_blocks <= b < num_blocks for b in self.blocks):
            raise ValueError(f"--blocks {list(self.blocks)}: the UNet has {num_blocks} up blocks")
        if self.mask_stride < 1:
            raise ValueError(f"--mask-stride must be >= 1, got {self.mask_stride}")



class GroundingHead(nn.Module):
    """(attention (B, T, h, w), features (B, T*C, h, w)) -> mask logits (B, H, W)."""

    def __init__(self, timesteps: int, channels: int, hidden: int = 32):
        super().__init__()
        self.shape = {"timesteps": timesteps, "channels": channels, "hidden": hidden}
        groups = 8 if hidden % 8 == 0 else 1
        self.reduce = nn.Conv2d(timesteps * channels, hidden, 1)
        self.body = nn.Sequential(
            nn.Conv2d(hidden + timesteps, hidden, 3, padding=1), nn.GroupNorm(groups, hidden), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.GroupNorm(groups, hidden), nn.ReLU())
        self.decode = nn.Sequential(nn.Conv2d(hidden, hidden // 2, 3, padding=1), nn.ReLU(),
                                    nn.Conv2d(hidden // 2, 1, 1))

    def forward(self, attention: torch.Tensor, features: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
        x = self.body(torch.cat([attention, self.reduce(features)], dim=1))
        return self.decode(F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False))[:, 0]


def save_head(head: GroundingHead, folder: Path, meta: dict[str, Any]) -> Path:
    """Write ``head.safetensors`` and ``head.json`` (shape, feature settings, metrics) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / HEAD_FILE
    tmp = folder / f".{HEAD_FILE}.tmp"
    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, str(tmp))
    tmp.replace(path)
    atomic_write_text(folder / HEAD_META, json.dumps({**head.shape, **meta}, indent=2) + "\n")
    return path


@dataclass
class LoadedHead:
    """A trained head with what it needs at inference."""

    head: GroundingHead
    spec: FeatureSpec
    digest: str
    meta: dict[str, Any]

    @property
    def description(self) -> str:
        return f"head:{self.digest}"

    @torch.no_grad()
    def predict(self, attention: torch.Tensor, features: torch.Tensor, out_hw: tuple[int, int]) -> np.ndarray:
        """(K, H, W) probabilities of the objects of one image, from its extracted features."""
        if features.shape[1] != self.head.shape["channels"]:
            raise ValueError(f"the head reads {self.head.shape['channels']} feature channels but the model gives "
                             f"{features.shape[1]}: use the model it was trained with "
                             f"({self.meta['features']['model']})")
        device = next(self.head.parameters()).device
        k = attention.shape[0]
        feats = features.flatten(0, 1)[None].expand(k, -1, -1, -1).to(device)
        return torch.sigmoid(self.head(attention.to(device), feats, out_hw)).cpu().numpy()


def load_head(path: str | Path, device: str = "cpu") -> LoadedHead:
    """A head saved by :func:`train_grounding`: its folder (``OUT/head``), its safetensors file, or ``OUT``."""
    path = Path(path)
    for candidate in (path, path / HEAD_FILE, path / HEAD_DIR / HEAD_FILE):
        if candidate.is_file():
            break
    else:
        raise FileNotFoundError(f"{path}: no {HEAD_FILE} here (train one with `streetsynth train grounding`)")
    meta_path = candidate.with_name(HEAD_META)
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path}: missing beside {candidate.name}")
    meta = json.loads(meta_path.read_text())
    f = meta["features"]
    head = GroundingHead(meta["timesteps"], meta["channels"], meta["hidden"])
    head.load_state_dict(load_file(str(candidate)))
    head.to(device).eval()
    spec = FeatureSpec(tuple(f["timesteps"]), tuple(f["blocks"]), f["mask_stride"], f["seed"])
    return LoadedHead(head, spec, file_digest(candidate), meta)
