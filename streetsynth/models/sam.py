"""Segment Anything models: a tiny random one for tests and a loader for the real checkpoints.

The tiny SAM has a 2-block, 64-wide ViT image encoder and segment-anything's real prompt encoder
and mask decoder, so ``SamPredictor`` and ``SamAutomaticMaskGenerator`` run on it unchanged.
Real checkpoints are read with ``torch.load(weights_only=True)`` or safetensors, never unpickled.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import torch

from streetsynth.digest import file_digest

SAM_TYPES = ("vit_h", "vit_l", "vit_b")


def _build_module():
    """``segment_anything.build_sam`` the module (its package ``__init__`` shadows it with a function)."""
    import segment_anything  # noqa: F401 - registers the submodule

    return sys.modules["segment_anything.build_sam"]


def build_tiny_sam(seed: int = 0):
    """A seeded random SAM with a small ViT encoder (embed 64, depth 2, 2 heads), in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = _build_module()._build_sam(encoder_embed_dim=64, encoder_depth=2, encoder_num_heads=2,
                                         encoder_global_attn_indexes=[1])
    return sam.eval()


def build_constant_sam(full: bool):
    """A tiny SAM whose every mask is the whole image (``full``) or empty, whatever the prompt.

    Its decoder's last upscaling layer and hypernetwork heads are zeroed with a constant bias, so
    the mask logits are one positive (or negative) number everywhere: a SAM with known answers for
    tests of what the callers do with its masks (clipping to the box, empty masks).
    """
    sam = build_tiny_sam(0)
    decoder = sam.mask_decoder
    with torch.no_grad():
        last = decoder.output_upscaling[3]
        last.weight.zero_()
        last.bias.fill_(1.0)
        for mlp in decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.zero_()
            mlp.layers[-1].bias.fill_(1.0 if full else -1.0)
    return sam.eval()


def parse_sam_spec(spec: str) -> tuple[str, Path | None]:
    """``(type, path)`` from ``"tiny"``, ``"vit_b:PATH"`` or a path whose file name names the type."""
    if spec == "tiny":
        return "tiny", None
    m = re.match(r"^(vit_[hlb]):(.+)$", spec)
    if m:
        return m.group(1), Path(m.group(2))
    found = re.search(r"vit_([hlb])", Path(spec).name)
    if not found:
        raise ValueError(f"cannot tell the SAM type from {spec!r}; write it as vit_h:PATH, vit_l:PATH or vit_b:PATH")
    return f"vit_{found.group(1)}", Path(spec)


def load_sam(spec: str, device: str = "cpu"):
    """``(sam in eval mode, description)`` for ``"tiny"`` or a real checkpoint (see :func:`parse_sam_spec`)."""
    kind, path = parse_sam_spec(spec)
    if path is None:
        return build_tiny_sam(0).to(device), "sam:tiny(seed=0)"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such SAM checkpoint")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling refusal is reported the same way
            raise ValueError(f"{path}: not a plain SAM state dict loadable with weights_only=True ({exc})") from exc
    sam = _build_module().sam_model_registry[kind](checkpoint=None)
    try:
        sam.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit SAM {kind}: {str(exc).splitlines()[0]}") from exc
    return sam.eval().to(device), f"sam:{kind}:{path.name}@{file_digest(path)}"
