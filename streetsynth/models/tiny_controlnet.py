"""Tiny random text-to-image and ControlNet pipelines for tests: the real architectures, small configs.

They share the tiny VAE, text encoder, tokenizer and scheduler of the tiny inpainting pipeline
(``streetsynth.models.tiny_inpaint``) and add a 4-channel UNet; the ControlNet is built from that UNet
(``ControlNetModel.from_unet``), as diffusers builds one for training. Fixed seeds: two builds
are identical. Images are noise; they exercise the flow, not the quality.
"""

from __future__ import annotations

import torch

from streetsynth.models.tiny_inpaint import TEXT_DIM, build_tiny_inpaint_pipeline


def build_tiny_unet(seed: int = 0, in_channels: int = 4):
    """A small ``UNet2DConditionModel`` (blocks 32/64, one cross-attention level) under a fixed seed."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=in_channels, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_DIM, attention_head_dim=(2, 4), norm_num_groups=8,
    )


def _shared(seed: int) -> dict:
    base = build_tiny_inpaint_pipeline(seed)
    return dict(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, scheduler=base.scheduler)


def build_tiny_text2img_pipeline(seed: int = 0):
    """A ``StableDiffusionPipeline`` with tiny random parts."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(unet=build_tiny_unet(seed + 3), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False, **_shared(seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_tiny_controlnet_pipeline(seed: int = 0):
    """A ``StableDiffusionControlNetPipeline`` with a tiny random UNet and a ControlNet made from it."""
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    unet = build_tiny_unet(seed + 3)
    torch.manual_seed(seed + 4)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16, 32, 32))
    pipe = StableDiffusionControlNetPipeline(unet=unet, controlnet=controlnet, safety_checker=None,
                                             feature_extractor=None, requires_safety_checker=False, **_shared(seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe
