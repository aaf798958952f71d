"""Inpainting fine-tuning: masks, the 9-channel loss learns, LoRA merges, the output loads and resumes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, StableDiffusionInpaintPipeline

from factories_train import make_real_repo
from streetsynth.repo import load_split, read_info
from streetsynth.models.tiny_inpaint import TEXT_DIM, build_tiny_inpaint_pipeline
from streetsynth.training.inpaint import (InpaintCanvases, InpaintConfig, inpaint_loss, outpaint_mask, random_mask,
                                          train_inpaint)


def test_outpaint_mask_scales_front_x1():
    m = outpaint_mask(64, 128, front_x1=640, source_width=1024)  # 640/1024 of 128 = 80
    assert (m[:, 80:] == 1).all() and (m[:, :80] == 0).all()
    assert outpaint_mask(8, 16, front_x1=0, source_width=16).all()


def test_random_mask_is_seeded_and_partial():
    a = random_mask(64, 128, np.random.default_rng(1))
    b = random_mask(64, 128, np.random.default_rng(1))
    assert np.array_equal(a, b) and 0 < a.mean() < 1


def test_canvases_use_outpainting_mask(tmp_path):
    rows = load_split(make_real_repo(tmp_path / "real", n_train=2, n_val=1), "stitched", "train")
    ds = InpaintCanvases(rows, 64, 128, random_mask_prob=0.0)
    item = ds[("real", 0, 5)]
    assert item["pixel_values"].shape == (3, 64, 128) and -1 <= item["pixel_values"].min() <= item["pixel_values"].max() <= 1
    front_x1 = rows[0]["stitch"]["front_x1"]  # 80 of 128 in the factory
    assert (item["mask"][0, :, front_x1:] == 1).all() and (item["mask"][0, :, :front_x1] == 0).all()
    with pytest.raises(ValueError, match="multiples of 8"):
        InpaintCanvases(rows, 60, 128, 0.5)


def test_nine_channel_loss_decreases_on_a_fixed_batch(tmp_path):
    pipe = build_tiny_inpaint_pipeline(seed=0)
    rows = load_split(make_real_repo(tmp_path / "real", n_train=2, n_val=1), "stitched", "train")
    ds = InpaintCanvases(rows, 64, 128, random_mask_prob=0.0)
    batch = torch.utils.data.default_collate([ds[("real", i, i)] for i in range(2)])
    sched = DDPMScheduler.from_config(pipe.scheduler.config)
    opt = torch.optim.AdamW(pipe.unet.parameters(), lr=2e-3)
    pipe.vae.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)

    def loss_at(step):
        g = torch.Generator().manual_seed(0)  # same noise and timesteps every step
        return inpaint_loss(pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, sched, batch, g)

    first = float(loss_at(0).detach())
    for step in range(8):
        loss = loss_at(step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss_at(9).detach()) < 0.7 * first


def test_lora_run_saves_a_loadable_merged_pipeline_and_resumes(tmp_path):
    real = make_real_repo(tmp_path / "real", n_train=3, n_val=1)
    cfg = InpaintConfig(real=str(real), model="tiny", out=str(tmp_path / "out"), max_steps=2, height=64, width=128,
                        grad_accum=2, checkpoint_every=1, ema=True, lr=1e-2, progress=False)
    first = train_inpaint(cfg)
    assert first.steps == 2 and first.resumed_from is None
    resumed = train_inpaint(InpaintConfig(**{**cfg.__dict__, "max_steps": 3}))
    assert resumed.resumed_from == 2 and resumed.steps == 3
    steps = [json.loads(line)["step"] for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]

    pipe = StableDiffusionInpaintPipeline.from_pretrained(tmp_path / "out")
    assert not any("lora" in n for n, _ in pipe.unet.named_parameters())
    base = build_tiny_inpaint_pipeline(seed=0).unet.state_dict()
    tuned = pipe.unet.state_dict()
    changed = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert changed and all(any(t in k for t in ("to_q", "to_k", "to_v", "to_out")) for k in changed)
    # the adapter alone, in the diffusers format, loads onto the base and gives the merged UNet's output
    lora_pipe = build_tiny_inpaint_pipeline(seed=0)
    args = _unet_inputs()
    before = lora_pipe.unet(*args).sample
    lora_pipe.load_lora_weights(tmp_path / "out" / "lora")
    assert any("lora" in n for n, _ in lora_pipe.unet.named_parameters())
    after = lora_pipe.unet(*args).sample
    assert (after - before).abs().max() > 1e-3
    torch.testing.assert_close(after, pipe.unet(*args).sample, atol=1e-4, rtol=1e-4)
    image = _grey()
    out = pipe("a street", image=image, mask_image=_grey(255), height=64, width=128, num_inference_steps=2,
               generator=torch.Generator().manual_seed(0), output_type="np").images
    assert out.shape == (1, 64, 128, 3)


@torch.no_grad()
def _unet_inputs():
    """A fixed 9-channel latent, timestep and text embedding for the tiny UNet."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(1, 9, 8, 16, generator=g), torch.tensor([10]), torch.randn(1, 77, TEXT_DIM, generator=g)


def _grey(value: int = 128):
    """A flat grey 128x64 image (255 = a mask over everything)."""
    from PIL import Image

    return Image.new("RGB", (128, 64), (value, value, value))


def test_full_fine_tuning_changes_more_than_attention(tmp_path):
    real = make_real_repo(tmp_path / "real", n_train=2, n_val=1)
    cfg = InpaintConfig(real=str(real), model="tiny", out=str(tmp_path / "out"), max_steps=1, height=64, width=128,
                        lora=False, lr=1e-3, progress=False)
    train_inpaint(cfg)
    pipe = StableDiffusionInpaintPipeline.from_pretrained(tmp_path / "out")
    base = build_tiny_inpaint_pipeline(seed=0).unet.state_dict()
    changed = [k for k, v in pipe.unet.state_dict().items() if not torch.equal(base[k], v)]
    assert any("conv_in" in k for k in changed)
    assert not (tmp_path / "out" / "lora").exists()


def test_cli_inpaint_tiny(tmp_path, capsys):
    from streetsynth.cli import main

    real = make_real_repo(tmp_path / "real", n_train=2, n_val=1)
    rc = main(["train", "inpaint", "--real", str(real), "--model", "tiny", "--out", str(tmp_path / "out"),
               "--steps", "1", "--resolution", "64x128", "--no-progress"])
    assert rc == 0 and "trained 1 steps" in capsys.readouterr().out
    trained_on = json.loads((tmp_path / "out" / "training.json").read_text())["dataset"]
    assert trained_on["fingerprint"] == read_info(real)["fingerprint"]
    assert main(["train", "inpaint", "--real", str(real), "--model", "tiny", "--out", str(tmp_path / "o2"),
                 "--resolution", "60x128"]) == 2
    assert "multiples of 8" in capsys.readouterr().err


def test_rerun_after_finishing_writes_the_same_tokenizer_and_lora_metadata(tmp_path):
    from safetensors import safe_open

    real = make_real_repo(tmp_path / "real", n_train=2, n_val=1)
    cfg = InpaintConfig(real=str(real), model="tiny", out=str(tmp_path / "out"), max_steps=1, height=64, width=128,
                        progress=False)
    train_inpaint(cfg)
    tokenizer = (tmp_path / "out" / "tokenizer" / "tokenizer.json").read_bytes()
    lora = next((tmp_path / "out" / "lora").glob("*.safetensors"))
    with safe_open(str(lora), "pt") as f:
        meta = f.metadata()
    assert json.loads(tokenizer)["truncation"] is not None
    assert train_inpaint(cfg).steps == 1  # finished: trains nothing, writes the pipeline again
    assert (tmp_path / "out" / "tokenizer" / "tokenizer.json").read_bytes() == tokenizer
    with safe_open(str(lora), "pt") as f:
        assert f.metadata() == meta
    config = json.loads(meta["lora_adapter_metadata"])
    targets = [v for k, v in config.items() if k.endswith("target_modules")]
    assert targets and all(v == sorted(v) for v in targets)
