"""Tiny random inpainting pipelines of every family, for tests and benchmarks: the one home of tiny models'
shared parts (the byte tokenizer, the text width) and of the SD, SDXL, SD3 and FLUX Fill builders.

Every component is built from a small config under a fixed seed, so two builds are identical. Each
keeps its family's shape contract (SD's 9-channel UNet input and 8x smaller latent, SDXL's two text
encoders and time ids, SD3's MMDiT over a 16-channel latent with CLIP x2 + T5, FLUX Fill's packed
latents with a 2x2 patch and the mask channels) at a size that runs 2 steps on a 64x128 canvas in
about a second on a CPU, producing noise-like images.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

#: Hidden size of the tiny text encoder; the UNet cross-attends to it.
TEXT_DIM = 32


def _byte_vocab() -> dict[str, int]:
    """A CLIP BPE vocab of single byte-characters (plain and word-final) plus the special tokens."""
    from tokenizers.pre_tokenizers import ByteLevel

    chars = sorted(ByteLevel.alphabet())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(tokens)}


def build_tiny_tokenizer():
    """A ``CLIPTokenizer`` from a vocab.json/merges.txt written to a temporary folder."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = Path(tmp) / "vocab.json", Path(tmp) / "merges.txt"
        vocab.write_text(json.dumps(_byte_vocab()))
        merges.write_text("#version: 0.2\n")
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=77)


def build_tiny_inpaint_pipeline(seed: int = 0):
    """A ``StableDiffusionInpaintPipeline`` with tiny random UNet, VAE and text encoder."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=9,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=(2, 4),
        norm_num_groups=8,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=64,
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=len(tokenizer) - 2,
            eos_token_id=len(tokenizer) - 1,
            pad_token_id=len(tokenizer) - 1,
            hidden_size=TEXT_DIM,
            intermediate_size=37,
            layer_norm_eps=1e-5,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    )
    pipe = StableDiffusionInpaintPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_inpaint_pipeline(path: str | Path, seed: int = 0) -> Path:
    """Save the tiny pipeline (safetensors) so ``from_pretrained(path)`` and ``--model path`` load it."""
    path = Path(path)
    build_tiny_inpaint_pipeline(seed).save_pretrained(path, safe_serialization=True)
    return path


def build_tiny_t5_tokenizer():
    """A T5 tokenizer (Unigram over single byte-characters) built in memory."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    pieces += [(c, -2.0) for c in sorted(ByteLevel.alphabet())]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def _clip(tokenizer, seed: int, with_projection: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = CLIPTextConfig(
        bos_token_id=len(tokenizer) - 2, eos_token_id=len(tokenizer) - 1, pad_token_id=len(tokenizer) - 1,
        hidden_size=TEXT_DIM, intermediate_size=37, layer_norm_eps=1e-5, num_attention_heads=4,
        num_hidden_layers=2, vocab_size=len(tokenizer), max_position_embeddings=77, projection_dim=TEXT_DIM,
    )
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def _t5(tokenizer, seed: int):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    return T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=TEXT_DIM, d_kv=8, d_ff=37, num_layers=2,
                                   num_heads=4, relative_attention_num_buckets=8, pad_token_id=0,
                                   eos_token_id=1, decoder_start_token_id=0))


def _vae(seed: int, latent_channels: int, **kw):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(block_out_channels=(8, 8, 16, 16), in_channels=3, out_channels=3,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         latent_channels=latent_channels, layers_per_block=1, norm_num_groups=4, sample_size=64,
                         **kw)


def build_sd(seed: int = 0):
    """SD 1.5 / 2 inpainting: 9-channel UNet, one CLIP text encoder."""
    return build_tiny_inpaint_pipeline(seed)


def build_sdxl(seed: int = 0):
    """SDXL inpainting: 9-channel UNet with text-time embeddings, CLIP + CLIP-with-projection."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline, UNet2DConditionModel

    tok, tok2 = build_tiny_tokenizer(), build_tiny_tokenizer()
    torch.manual_seed(seed)
    time_dim = 8
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=9, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=time_dim, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * time_dim + TEXT_DIM, cross_attention_dim=2 * TEXT_DIM,
        norm_num_groups=8,
    )
    pipe = StableDiffusionXLInpaintPipeline(
        vae=_vae(seed + 1, 4), text_encoder=_clip(tok, seed + 2, False), text_encoder_2=_clip(tok2, seed + 3, True),
        tokenizer=tok, tokenizer_2=tok2, unet=unet,
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                         steps_offset=1, timestep_spacing="leading"),
        requires_aesthetics_score=False, force_zeros_for_empty_prompt=True, add_watermarker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_sd3(seed: int = 0):
    """SD3 / 3.5 inpainting: MMDiT over a 16-channel latent, CLIP x2 (with projection) + T5."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3InpaintPipeline

    tok, tok2, tok3 = build_tiny_tokenizer(), build_tiny_tokenizer(), build_tiny_t5_tokenizer()
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=2, in_channels=16, out_channels=16, num_layers=1, attention_head_dim=8,
        num_attention_heads=4, joint_attention_dim=TEXT_DIM, caption_projection_dim=32,
        pooled_projection_dim=2 * TEXT_DIM, pos_embed_max_size=32,
    )
    pipe = StableDiffusion3InpaintPipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(seed + 1, 16, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609,
                 scaling_factor=1.5035),
        text_encoder=_clip(tok, seed + 2, True), tokenizer=tok, text_encoder_2=_clip(tok2, seed + 3, True),
        tokenizer_2=tok2, text_encoder_3=_t5(tok3, seed + 4), tokenizer_3=tok3,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_flux_fill(seed: int = 0):
    """FLUX.1 Fill: a Flux transformer over packed latents + masked-image latents + the packed mask."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxFillPipeline, FluxTransformer2DModel

    tok, tok2 = build_tiny_tokenizer(), build_tiny_t5_tokenizer()
    latent = 4
    vae = _vae(seed + 1, latent, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1159,
               scaling_factor=0.3611)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=2 * 4 * latent + 4 * factor * factor, out_channels=4 * latent, num_layers=1,
        num_single_layers=1, attention_head_dim=16, num_attention_heads=2, joint_attention_dim=TEXT_DIM,
        pooled_projection_dim=TEXT_DIM, guidance_embeds=True, axes_dims_rope=(4, 4, 8),
    )
    pipe = FluxFillPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=_clip(tok, seed + 2, False),
        tokenizer=tok, text_encoder_2=_t5(tok2, seed + 3), tokenizer_2=tok2, transformer=transformer,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


BUILDERS = {"sd-inpaint": build_sd, "sdxl-inpaint": build_sdxl, "sd3-inpaint": build_sd3,
            "flux-fill": build_flux_fill}
