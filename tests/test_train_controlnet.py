"""Layout ControlNet training: the palette draws stuff and things, the loss learns, a killed run resumes
to the same weights, LoRA merges into a loadable ControlNet."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import torch
from diffusers import ControlNetModel, DDPMScheduler

from factories_generate import make_real_repo
from streetsynth.generators.layout_palette import (LAYOUT_COLORS, LAYOUT_NAMES, SEGMENTATION_TO_STUFF, draw_layout,
                                                   row_layout, segmentation_lut)
from streetsynth.instances import Instances
from streetsynth.repo import load_split
from streetsynth.schema import CLASS_NAMES, SEG_BUILDING, SEG_ROAD, SEG_SKY
from streetsynth.training.controlnet import (PALETTE_FILE, ControlNetConfig, LayoutPairs, controlnet_loss, layout_rows,
                                             load_base, make_trainable, train_controlnet)


def _panoptic_row(rows):
    return next(r for r in rows if r["semantic_mask"] is not None)


def test_palette_is_distinct_and_covers_the_stuff_classes():
    colours = [LAYOUT_COLORS[n] for n in LAYOUT_NAMES]
    assert len(set(colours)) == len(colours) and (0, 0, 0) not in colours
    lut = segmentation_lut()
    for seg, name in SEGMENTATION_TO_STUFF.items():
        assert tuple(lut[seg]) == LAYOUT_COLORS[name]
    assert {"road", "sidewalk", "building", "vegetation", "sky"} <= set(LAYOUT_NAMES)


def test_real_rows_carry_stuff_and_the_layout_draws_it_under_the_instances(tmp_path):
    rows = load_split(make_real_repo(tmp_path / "real", rows=2), "stitched", "train")
    row = _panoptic_row(rows)
    sem = np.asarray(row["semantic_mask"])
    assert {SEG_ROAD, SEG_SKY, SEG_BUILDING} <= set(np.unique(sem).tolist())  # the sample maker paints these
    layout = row_layout(row)
    inst = Instances.from_row(row)
    ids = inst.id_mask()
    for seg, name in ((SEG_ROAD, "road"), (SEG_SKY, "sky"), (SEG_BUILDING, "building")):
        where = (sem == seg) & (ids == 0)
        assert where.any() and (layout[where] == LAYOUT_COLORS[name]).all()
    for i, c in zip(inst.ids, inst.classes):
        assert (layout[ids == i] == LAYOUT_COLORS[CLASS_NAMES[int(c)]]).all()
    # a row without panoptic labels draws its instances only: black elsewhere
    no_sem = draw_layout(inst)
    assert (no_sem[ids == 0] == 0).all()


def test_layout_dropout_gives_the_empty_layout(tmp_path):
    rows = layout_rows(load_split(make_real_repo(tmp_path / "real", rows=2), "stitched", "train"))
    assert len(rows) >= 1 and all(r["instance_mask"] is not None or r["semantic_mask"] is not None for r in rows)
    kept = LayoutPairs(rows, 64, 128, 0.0)[("real", 0, 3)]
    dropped = LayoutPairs(rows, 64, 128, 1.0)[("real", 0, 3)]
    assert kept["layout"].shape == (3, 64, 128) and kept["layout"].max() > 0 and dropped["layout"].max() == 0
    assert torch.equal(kept["pixel_values"], dropped["pixel_values"])


def test_loss_falls_on_a_fixed_batch(tmp_path):
    rows = layout_rows(load_split(make_real_repo(tmp_path / "real", rows=2), "stitched", "train"))
    pairs = LayoutPairs(rows, 64, 128, 0.0)
    batch = torch.utils.data.default_collate([pairs[("real", i, i)] for i in range(len(rows))])
    cfg = ControlNetConfig(real="unused", model="tiny", out="unused")
    pipe, cn = load_base(cfg)
    opt = torch.optim.AdamW(make_trainable(cn, cfg), lr=2e-3)
    sched = DDPMScheduler.from_config(pipe.scheduler.config)
    for m in (pipe.unet, pipe.vae, pipe.text_encoder):
        m.requires_grad_(False)

    def loss():
        g = torch.Generator().manual_seed(0)  # same noise and timesteps every step
        return controlnet_loss(cn, pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, sched, batch, g)

    first = float(loss().detach())
    for _ in range(8):
        value = loss()
        opt.zero_grad()
        value.backward()
        opt.step()
    assert float(loss().detach()) < 0.85 * first  # measured 1.124 -> 0.815


KILLED_RUN = """
import os, signal, sys
from streetsynth.training import controlnet as tc

calls = 0
real_loss = tc.controlnet_loss

def loss(*a, **k):
    global calls
    calls += 1
    if calls == int(sys.argv[3]):  # in the middle of an optimizer step, after the checkpoint before it
        os.kill(os.getpid(), signal.SIGKILL)
    return real_loss(*a, **k)

tc.controlnet_loss = loss
cfg = tc.ControlNetConfig(real=sys.argv[1], model="tiny", out=sys.argv[2], max_steps=6, grad_accum=2, height=64,
                          width=128, lr=1e-3, checkpoint_every=2, layout_dropout=0.5, progress=False, lora=True,
                          lora_rank=4)
print(tc.train_controlnet(cfg).steps)
"""


def test_kill_9_then_resume_gives_the_uninterrupted_run(tmp_path):
    real = make_real_repo(tmp_path / "real", rows=3)
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(KILLED_RUN))

    def run(out, kill_at):
        return subprocess.run([sys.executable, str(script), str(real), str(out), str(kill_at)], capture_output=True,
                              text=True, timeout=600)

    straight = run(tmp_path / "straight", 0)
    assert straight.returncode == 0, straight.stderr[-3000:]
    killed = run(tmp_path / "killed", 10)  # micro-step 10 = step 5, after the step-4 checkpoint
    assert killed.returncode == -signal.SIGKILL
    records = [json.loads(x)["step"] for x in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert records == [1, 2, 3, 4]
    resumed = run(tmp_path / "killed", 0)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = [json.loads(x)["step"] for x in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert records == [1, 2, 3, 4, 5, 6]
    a = ControlNetModel.from_pretrained(tmp_path / "straight").state_dict()
    b = ControlNetModel.from_pretrained(tmp_path / "killed").state_dict()
    base = load_base(ControlNetConfig(real="", model="tiny", out=""))[1].state_dict()
    assert any(not torch.equal(a[k], base[k]) for k in ("controlnet_mid_block.weight",))  # it trained
    assert not any("lora" in k for k in a)  # merged
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)
    palette = json.loads((tmp_path / "killed" / PALETTE_FILE).read_text())
    assert palette["colors"]["road"] == list(LAYOUT_COLORS["road"])


def test_cli_trains_a_tiny_controlnet(tmp_path, capsys):
    from streetsynth.cli import main

    real = make_real_repo(tmp_path / "real", rows=2)
    assert main(["train", "controlnet", "--real", str(real), "--model", "tiny", "--out", str(tmp_path / "cn"),
                 "--steps", "2", "--resolution", "64x128", "--no-progress", "--cpu"]) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    record = json.loads((tmp_path / "cn" / "training.json").read_text())
    assert record["steps"] == 2 and record["palette"] == "streetsynth-layout-v1" and not record["config"]["lora"]
    assert isinstance(ControlNetModel.from_pretrained(tmp_path / "cn"), ControlNetModel)


def test_a_base_saved_to_a_local_folder_trains_through_the_real_loading_path(tmp_path, capsys):
    """``--model FOLDER``: the base loads with ``StableDiffusionPipeline.from_pretrained`` (as a Hub model would),
    the ControlNet starts as a copy of its UNet's encoder, and the result loads back."""
    from streetsynth.cli import main
    from streetsynth.models.tiny_controlnet import build_tiny_text2img_pipeline

    real = make_real_repo(tmp_path / "real", rows=2)
    build_tiny_text2img_pipeline(0).save_pretrained(tmp_path / "base", safe_serialization=True)
    assert main(["train", "controlnet", "--real", str(real), "--model", str(tmp_path / "base"), "--out",
                 str(tmp_path / "cn"), "--steps", "1", "--resolution", "64x128", "--no-progress", "--cpu"]) == 0
    trained = ControlNetModel.from_pretrained(tmp_path / "cn")
    start = ControlNetModel.from_unet(build_tiny_text2img_pipeline(0).unet)
    assert tuple(trained.config.block_out_channels) == tuple(start.config.block_out_channels)
    moved = [not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), start.state_dict().values())]
    assert any(moved)  # it trained from the base UNet's encoder
    assert json.loads((tmp_path / "cn" / "training.json").read_text())["steps"] == 1
