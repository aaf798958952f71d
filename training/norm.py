"""Batch-norm statistics recomputed by the recipe before every evaluation.

A backbone trained from scratch with batch norm (the tiny detector's ``mobilenet_v3_small`` has
momentum 0.01) evaluates with running statistics that after a few hundred steps are still mostly
their initial values: measured on rendered scenes, that halves AP. torchvision's pretrained
detectors freeze their backbone statistics instead (``FrozenBatchNorm2d``, not touched here).
So before each evaluation, and before the checkpoint that follows an epoch, every trainable
batch-norm layer's statistics are reset and re-estimated as an equal-weight average over a fixed
set of training images (the same images every time): evaluation then depends only on the weights,
never on how many forward passes happened before it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

#: The seed of the proposal sampling inside the statistics passes (fixed: same statistics every time).
NORM_SEED = 20261203


def norm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-norm layers that keep running statistics (FrozenBatchNorm2d is not one of them)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute_norm_stats(model: nn.Module, batches: Iterable[tuple[list[torch.Tensor], list[dict]]],
                         device: torch.device | str = "cpu") -> int:
    """Reset every batch-norm layer's statistics and re-estimate them on ``batches`` (train-mode
    forward passes of the whole detector, so the FPN and head layers see what they see in training);
    returns the number of images used (0 when the model has no such layer)."""
    layers = norm_layers(model)
    if not layers:
        return 0
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every batch counts the same
    was_training = model.training
    model.train()
    seen = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(NORM_SEED)
        for images, targets in batches:
            model([i.to(device) for i in images], [{k: v.to(device) for k, v in t.items()} for t in targets])
            seen += len(images)
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    model.train(was_training)
    return seen
