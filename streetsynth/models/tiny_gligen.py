"""A tiny random GLIGEN pipeline (box-grounded, ``gligen_inpaint_image``) for tests.

The UNet carries GLIGEN's gated self-attention and box/phrase projection
(``attention_type="gated"``); VAE, text encoder, tokenizer and scheduler are the tiny inpainting
pipeline's. It serves only ``gligen_inpaint_image`` calls (the UNet input has the 9 inpainting
channels). GLIGEN centre-crops its inpainting image to the VAE's ``sample_size`` (64 here).
"""

from __future__ import annotations

import torch

from streetsynth.models.tiny_inpaint import TEXT_DIM, build_tiny_inpaint_pipeline


def build_tiny_gligen_pipeline(seed: int = 0):
    """A ``StableDiffusionGLIGENPipeline`` with tiny random parts under fixed seeds."""
    from diffusers import StableDiffusionGLIGENPipeline, UNet2DConditionModel

    base = build_tiny_inpaint_pipeline(seed)
    torch.manual_seed(seed + 5)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_DIM, attention_head_dim=(2, 4), norm_num_groups=8, attention_type="gated",
    )
    # The pipeline draws 4-channel latents (config ``in_channels``) and, when inpainting, feeds the UNet
    # those plus the masked image latent and the box mask: 9 channels into ``conv_in``.
    unet.conv_in = torch.nn.Conv2d(9, unet.conv_in.out_channels, kernel_size=3, padding=1)
    pipe = StableDiffusionGLIGENPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
                                         unet=unet, scheduler=base.scheduler, safety_checker=None,
                                         feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe
