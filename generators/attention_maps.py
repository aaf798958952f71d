"""Cross-attention maps of chosen prompt tokens, captured through diffusers attention processors.

:class:`AttentionStore` installs a :class:`StoringProcessor` on every attention layer of a UNet
(``unet.set_attn_processor``; the pipeline itself is not forked). Each cross-attention call adds
its softmax probabilities for the watched tokens, averaged over heads, to a running sum per
spatial resolution; self-attention passes straight through. :func:`aggregate` turns the sums into
one map per token at the image size (each resolution upsampled, resolutions averaged), and
:func:`coarse_masks` thresholds and splits them into connected components.

:class:`FeatureExtractor` reads a finished image the way the grounding head learns from it: VAE
latents noised to each timestep of a :class:`~streetsynth.models.grounding_head.FeatureSpec`, one UNet
pass with the prompt, the objects' attention and the chosen up blocks' outputs on the latent grid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from streetsynth.seeds import derive_seed

if TYPE_CHECKING:
    from streetsynth.models.grounding_head import FeatureSpec


class StoringProcessor:
    """Runs attention with diffusers' default processor and records cross-attention of watched tokens."""

    def __init__(self, store: "AttentionStore") -> None:
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.store, self.inner = store, AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        if encoder_hidden_states is not None and self.store.tokens is not None and hidden_states.ndim == 3:
            self.store.record(attn, hidden_states, encoder_hidden_states)
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)


class AttentionStore:
    """Running sums of watched tokens' cross-attention per resolution, over layers and steps."""

    def __init__(self) -> None:
        self.tokens: list[int] | None = None
        self.conditional_half = True
        self.sums: dict[int, torch.Tensor] = {}
        self.counts: dict[int, int] = {}

    def install(self, unet) -> None:
        unet.set_attn_processor(StoringProcessor(self))

    def reset(self, tokens: list[int], conditional_half: bool) -> None:
        """Watch ``tokens`` (positions in the prompt's token sequence); with CFG keep the conditional half."""
        self.tokens, self.conditional_half = list(tokens), conditional_half
        self.sums, self.counts = {}, {}

    @torch.no_grad()
    def record(self, attn, hidden_states, encoder_hidden_states) -> None:
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        probs = attn.get_attention_scores(query, key, None)  # (B * heads, HW, T)
        batch = hidden_states.shape[0]
        probs = probs.reshape(batch, attn.heads, probs.shape[1], probs.shape[2]).mean(dim=1)
        if self.conditional_half and batch > 1:
            probs = probs[batch // 2:]
        watched = probs[:, :, self.tokens].transpose(1, 2).float()  # (B, K, HW), summed on the device
        hw = watched.shape[-1]
        self.sums[hw] = self.sums[hw] + watched if hw in self.sums else watched
        self.counts[hw] = self.counts.get(hw, 0) + 1

    def maps(self, latent_hw: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
        return aggregate({hw: (s / self.counts[hw]).cpu().numpy() for hw, s in self.sums.items()}, latent_hw, out_hw)


def grid_of(hw: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """The (h, w) grid of ``hw`` tokens with the latent's aspect ratio."""
    lh, lw = latent_hw
    factor = round(np.sqrt(lh * lw / hw))
    h, w = -(-lh // factor), -(-lw // factor)
    if h * w != hw:
        raise ValueError(f"{hw} attention tokens do not form a grid with the latent's shape {latent_hw}")
    return h, w


def aggregate(per_resolution: dict[int, np.ndarray], latent_hw: tuple[int, int],
              out_hw: tuple[int, int]) -> np.ndarray:
    """``(B, K, H, W)`` maps in [0, 1]: each resolution's mean maps (B, K, HW) upsampled, then averaged.

    Each map is min-max normalised per sample and token, so a token's strongest region reads 1.
    Upsampling is nearest-neighbour: a map stays blocky at its layer's grid (SAM sharpens edges
    later) and a region on that grid keeps its exact shape, corners included.
    """
    if not per_resolution:
        raise ValueError("no cross-attention was recorded")
    ups = []
    for hw, maps in per_resolution.items():
        b, k, _ = maps.shape
        grid = torch.from_numpy(np.ascontiguousarray(maps, np.float32)).reshape(b, k, *grid_of(hw, latent_hw))
        ups.append(F.interpolate(grid, size=out_hw, mode="nearest"))
    mean = torch.stack(ups).mean(dim=0)
    lo = mean.amin(dim=(2, 3), keepdim=True)
    hi = mean.amax(dim=(2, 3), keepdim=True)
    return ((mean - lo) / (hi - lo).clamp_min(1e-12)).numpy()


def coarse_masks(attention: np.ndarray, threshold: float = 0.5, min_area: int = 16) -> np.ndarray:
    """Connected components (N, H, W) bool of one (H, W) map above ``threshold``, at least ``min_area`` pixels."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats((attention > threshold).astype(np.uint8), connectivity=8)
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area]
    return labels[None] == np.asarray(keep, np.int32)[:, None, None] if keep else \
        np.zeros((0, *attention.shape), bool)


class FeatureExtractor:
    """Attention of object tokens and UNet block outputs of one image at the spec's timesteps."""

    def __init__(self, pipe, spec: FeatureSpec, store=None):
        from diffusers import DDPMScheduler

        self.pipe, self.spec = pipe, spec
        self.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        spec.check(self.scheduler.config.num_train_timesteps, len(pipe.unet.up_blocks))
        if store is None:
            store = AttentionStore()
            store.install(pipe.unet)
        self.store = store
        self.captured: dict[int, torch.Tensor] = {}
        self.active = False  # hooks record only inside __call__
        n = len(pipe.unet.up_blocks)
        self.blocks = [b % n for b in spec.blocks]
        for b in self.blocks:
            pipe.unet.up_blocks[b].register_forward_hook(self._hook(b))

    def _hook(self, index: int):
        def keep(module, inputs, output):
            if self.active:
                self.captured[index] = output[0] if isinstance(output, tuple) else output
        return keep

    @torch.no_grad()
    def __call__(self, image: np.ndarray, text: str, objects: list[list[int]],
                 key: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(attention (K, T, h, w), features (T, C, h, w)) float32 on the CPU for an (H, W, 3) uint8 image."""
        pipe, device = self.pipe, self.pipe.device
        vae, unet = pipe.vae, pipe.unet
        pixels = torch.from_numpy(np.array(image, np.uint8)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        latents = vae.encode(pixels.to(device, vae.dtype)).latent_dist.mean * vae.config.scaling_factor
        ids = pipe.tokenizer(text, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(device)
        text_emb = pipe.text_encoder(ids)[0]
        hw = tuple(latents.shape[-2:])
        flat = [t for group in objects for t in group]
        attention, features = [], []
        self.active = True
        try:
            for t in self.spec.timesteps:
                gen = torch.Generator().manual_seed(derive_seed(self.spec.seed, key, t))
                noise = torch.randn(latents.shape, generator=gen).to(device, latents.dtype)
                timestep = torch.tensor([t], device=device)
                noisy = self.scheduler.add_noise(latents, noise, timestep)
                self.store.reset(flat, conditional_half=False)
                self.captured = {}
                unet(noisy, timestep, text_emb)
                maps = torch.from_numpy(self.store.maps(hw, hw)[0])
                per_object, pos = [], 0
                for group in objects:
                    per_object.append(maps[pos:pos + len(group)].amax(dim=0))
                    pos += len(group)
                attention.append(torch.stack(per_object) if per_object else torch.zeros(0, *hw))
                features.append(torch.cat([F.interpolate(self.captured[b].float(), size=hw, mode="bilinear")[0]
                                           for b in self.blocks]).cpu())
        finally:
            self.active = False
            self.store.tokens = None
        return torch.stack(attention, dim=1), torch.stack(features)
