"""A tiny random IP-Adapter for tests, written in the layout ``pipe.load_ip_adapter`` reads.

``write_tiny_ip_adapter(folder, unet)`` writes ``folder/models/ip-adapter.safetensors`` (the image
projection and one key/value projection pair per cross-attention layer of ``unet``, numbered as
diffusers numbers them) and ``folder/models/image_encoder/`` (a small
``CLIPVisionModelWithProjection``). Fixed seed: two writes are identical.
"""

from __future__ import annotations

from pathlib import Path

import torch

WEIGHT = "models/ip-adapter.safetensors"
#: Image tokens the IP-Adapter adds per image (diffusers' plain IP-Adapter uses 4).
TOKENS = 4


def _hidden_size(unet, name: str) -> int:
    """The channel width of the block an attention processor sits in (as diffusers' loader reads it)."""
    channels = unet.config.block_out_channels
    if name.startswith("mid_block"):
        return channels[-1]
    block = int(name.split(".")[1])
    return list(reversed(channels))[block] if name.startswith("up_blocks") else channels[block]


def write_tiny_ip_adapter(folder: str | Path, unet, seed: int = 0, embed_dim: int = 16,
                          vision: dict | None = None) -> Path:
    """Write a random IP-Adapter fitting ``unet`` under ``folder``; returns ``folder``. ``vision`` replaces the
    small image encoder's ``CLIPVisionConfig`` (benchmarks: ViT-H/14 for h94/IP-Adapter's real size)."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    folder = Path(folder)
    cross = unet.config.cross_attention_dim
    g = torch.Generator().manual_seed(seed)
    tensors = {"image_proj.proj.weight": torch.randn(TOKENS * cross, embed_dim, generator=g) * 0.1,
               "image_proj.proj.bias": torch.zeros(TOKENS * cross),
               "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        hidden = _hidden_size(unet, name)
        tensors[f"ip_adapter.{key}.to_k_ip.weight"] = torch.randn(hidden, cross, generator=g) * 0.1
        tensors[f"ip_adapter.{key}.to_v_ip.weight"] = torch.randn(hidden, cross, generator=g) * 0.1
        key += 2
    (folder / WEIGHT).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / WEIGHT))
    torch.manual_seed(seed)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**(vision or dict(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32,
        patch_size=8)), projection_dim=embed_dim))
    encoder.save_pretrained(folder / "models" / "image_encoder")
    return folder
