"""Image feature extractors for the quality metrics: torch-fidelity's Inception-v3, or a tiny random one.

The Inception weights are a pickled file from outside, so they are loaded only after their sha256
prefix matches the published one and ``torch.load(weights_only=True)`` accepts them (tensors only).
"""

from __future__ import annotations

from pathlib import Path

import torch

from streetsynth.digest import file_digest

#: The Inception-v3 weights torch-fidelity (and torchmetrics' FID) use, and where they come from.
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
INCEPTION_SHA256_PREFIX = "6726825d"


def inception_weights(path: str | Path | None = None) -> Path:
    """The Inception weights file, checked (sha256 prefix, tensors only); says exactly what is missing."""
    target = Path(path) if path else Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if not target.exists():
        raise FileNotFoundError(f"FID/KID need the Inception-v3 weights {INCEPTION_FILE} ({INCEPTION_URL}); "
                                f"no file at {target}: download it there or pass --inception PATH")
    digest = file_digest(target, 64)
    if not digest.startswith(INCEPTION_SHA256_PREFIX):
        raise ValueError(f"{target}: not {INCEPTION_FILE} (sha256 {digest[:8]}, expected "
                         f"{INCEPTION_SHA256_PREFIX}...)")
    torch.load(target, map_location="cpu", weights_only=True)  # refuses anything but tensors
    return target


def inception_extractor(path: str | Path | None = None) -> torch.nn.Module:
    """torchmetrics' Inception-v3 (2048 pool features) on uint8 images, from the checked weights."""
    from torchmetrics.image.fid import NoTrainInceptionV3

    net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                             feature_extractor_weights_path=str(inception_weights(path)))
    net.description = f"inception-v3 ({INCEPTION_FILE})"
    return net


class TinyFeatures(torch.nn.Module):
    """A fixed random conv net: uint8 (N, 3, H, W) -> (N, 8) pooled responses. Shows the flow, not realism."""

    description = "tiny-random-conv (NOT Inception: the numbers only show the flow)"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.AdaptiveAvgPool2d(1))
        self.num_features = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 100.0 * self.net(x.float() / 255.0).flatten(1)  # responses of about Inception's magnitude
