"""The learned grounding head: it trains, resumes after SIGKILL, beats thresholding where features carry the
mask, and ``ground --head`` uses it and says so in the rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from streetsynth.generators.ground import GroundConfig, class_tokens, head_maps, run_ground
from streetsynth.instances import Instances
from streetsynth.models.load import declare
from streetsynth.models.tiny_controlnet import build_tiny_text2img_pipeline
from streetsynth.repo import load_split
from streetsynth.training.checkpoints import latest_checkpoint
from streetsynth.models.grounding_head import FeatureSpec, load_head
from streetsynth.training.grounding import (LOSSES, GroundingConfig, compare_on, object_items, split_rows,
                                            train_grounding, train_head)
from streetsynth.generators.attention_maps import FeatureExtractor, coarse_masks
from streetsynth.training.grounding_features import open_cache, row_tensors, save_row, spec_settings

PROMPT = "a street with a car and a pedestrian"


def _pipe():
    return declare(build_tiny_text2img_pipeline(0), "streetsynth/tiny-random-text2img", "seed-0")


def _everything(image):
    return np.ones((2, *image.shape[:2]), bool), np.array([0, 1])


@pytest.fixture(scope="module")
def version(tmp_path_factory):
    """A grounded-generation version made by the real producer (tiny pipeline, every candidate kept)."""
    root = tmp_path_factory.mktemp("ground")
    res = run_ground(GroundConfig(out=str(root / "store"), prompts=(PROMPT,), num=6, size=(64, 128), steps=2,
                                  min_area=8, iou_threshold=0.0, sam=None, pipeline=_pipe(), verifier=_everything,
                                  rows_per_shard=2))
    return Path(res["folder"])


@pytest.fixture(scope="module")
def features(version, tmp_path_factory):
    """The feature cache of ``version`` (filled by a first run), shared by the tests below."""
    root = tmp_path_factory.mktemp("features")
    train_grounding(GroundingConfig(data=str(version), out=str(root / "warm"), features=str(root / "cache"),
                                    epochs=1, val_fraction=0.0, pipeline=_pipe(), progress=False))
    return root / "cache"


def test_the_cache_holds_one_mask_per_prompt_object_from_the_rows(version, features):
    rows = load_split(version, "synthetic", "synthetic")
    assert len(rows) == 6
    for row in rows:
        cached = load_file(str(features / "rows" / f"{row['id']}.safetensors"))
        inst = Instances.from_row(row)
        assert cached["classes"].tolist() == [0, 1]  # car, pedestrian: both named by the prompt
        assert cached["attention"].shape[:2] == (2, 1) and cached["features"].shape[0] == 1
        for k, cls in enumerate((0, 1)):
            union = inst.masks[inst.classes == cls].any(axis=0)
            assert np.array_equal(cached["masks"][k].numpy().astype(bool), union[::2, ::2])


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_loss_falls_on_a_fixed_batch(version, features, tmp_path, loss):
    # every object in one batch and nothing held out: each step sees the same batch
    res = train_grounding(GroundingConfig(data=str(version), out=str(tmp_path / "run"), features=str(features),
                                          epochs=40, batch_size=64, lr=3e-3, loss=loss, val_fraction=0.0,
                                          progress=False))
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert res.steps == len(losses) == 40
    assert losses[-1] < 0.85 * losses[0]


def _planted(folder: Path, rows: int, seed: int = 0) -> list[str]:
    """A cache where the masks are known: attention is the object's mask at half weight on a ramp across the
    image plus noise (so no single threshold fits), feature channel 0 is every object's mask plus noise, the other
    channels are noise."""
    rng = np.random.default_rng(seed)
    h, w = 16, 32
    open_cache(folder, spec_settings(FeatureSpec(timesteps=(1,), mask_stride=2), "planted", None, "planted"))
    yy, xx = np.mgrid[:2 * h, :2 * w]
    ramp = np.linspace(0.0, 0.5, w)[None, :]
    ids = []
    for r in range(rows):
        k = int(rng.integers(1, 4))
        masks = np.zeros((k, 2 * h, 2 * w), np.uint8)
        for j in range(k):
            cy, cx = rng.integers(6, 2 * h - 6), rng.integers(8, 2 * w - 8)
            ry, rx = rng.integers(3, 8), rng.integers(3, 10)
            masks[j] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        low = masks.reshape(k, h, 2, w, 2).mean(axis=(2, 4))
        att = 0.5 * low + ramp + rng.normal(0, 0.1, (k, h, w))
        att = (att - att.min(axis=(1, 2), keepdims=True)) / np.ptp(att, axis=(1, 2), keepdims=True)
        feats = rng.normal(0, 1, (1, 8, h, w))
        feats[0, 0] = low.max(axis=0) + rng.normal(0, 0.3, (h, w))
        ids.append(f"row-{r:04d}")
        save_row(folder, ids[-1], row_tensors(torch.tensor(att[:, None], dtype=torch.float32),
                                              torch.tensor(feats, dtype=torch.float32), masks, range(k)))
    return ids


def test_the_head_recovers_planted_masks_better_than_any_attention_threshold(tmp_path):
    folder = tmp_path / "planted"
    ids = _planted(folder, 64)
    res = train_head(GroundingConfig(data="planted", out=str(tmp_path / "run"), epochs=20, batch_size=16,
                                     val_fraction=0.25, progress=False), folder, ids)
    _, held = split_rows(ids, 0.25, 0)
    items = object_items(folder, held)
    assert res.metrics["objects"] == len(items) >= 10
    head = load_head(tmp_path / "run").head
    best = max(compare_on(head, folder, items, t)["threshold_miou"] for t in np.arange(0.1, 1.0, 0.1))
    assert res.metrics["head_miou"] > best + 0.1, (res.metrics, best)


KILL_ARGS = ["--epochs", "400", "--batch-size", "2", "--checkpoint-every", "7", "--val-fraction", "0",
             "--no-progress"]


def _run(version, features, out, env):
    return [sys.executable, "-m", "streetsynth.cli", "train", "grounding", "--data", str(version),
            "--features", str(features), "--out", str(out), *KILL_ARGS]


def _steps(out: Path) -> list[int]:
    path = out / "metrics.jsonl"
    steps = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            steps.append(json.loads(line)["step"])
        except json.JSONDecodeError:
            pass
    return steps


@pytest.mark.slow
def test_killed_training_resumes_with_nothing_lost(version, features, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    clean = subprocess.run(_run(version, features, tmp_path / "clean", env), env=env, capture_output=True,
                           text=True, timeout=600)
    assert clean.returncode == 0, clean.stderr[-3000:]
    total = _steps(tmp_path / "clean")[-1]
    out = tmp_path / "killed"
    proc = subprocess.Popen(_run(version, features, out, env), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not any(s >= 30 for s in _steps(out)):
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = max(_steps(out))
    ckpt = latest_checkpoint(out)
    step = json.loads((ckpt / "trainer.json").read_text())["step"]
    assert step % 7 == 0 and step <= killed_at < total and load_file(str(ckpt / "head.safetensors"))
    resumed = subprocess.run(_run(version, features, out, env), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _steps(out) == list(range(1, total + 1))
    assert json.loads((latest_checkpoint(out) / "trainer.json").read_text())["step"] == total
    a = load_file(str(tmp_path / "clean" / "head" / "head.safetensors"))
    b = load_file(str(out / "head" / "head.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ground_with_a_head_takes_its_masks_and_rows_record_it(version, features, tmp_path):
    trained = train_grounding(GroundingConfig(data=str(version), out=str(tmp_path / "head"), features=str(features),
                                              epochs=5, val_fraction=0.0, progress=False))
    loaded = load_head(tmp_path / "head")
    res = run_ground(GroundConfig(out=str(tmp_path / "store"), prompts=(PROMPT,), num=2, size=(64, 128), steps=2,
                                  min_area=1, iou_threshold=0.0, sam=None, pipeline=_pipe(), verifier=_everything,
                                  head=str(trained.out), rows_per_shard=1))
    rows = load_split(res["folder"], "synthetic", "synthetic")
    assert len(rows) >= 1

    pipe = _pipe()
    extractor = FeatureExtractor(pipe, loaded.spec)
    for row in rows:
        details = json.loads(row["generation"]["method_details"])
        assert details["grounding"] == f"head:{loaded.digest}"
        assert row["generation"]["labeler"].startswith(f"grounding-head:{loaded.digest}")
        inst = Instances.from_row(row)
        assert set(inst.sources) == {"head"}
        # the candidates are exactly the components of the head's probability above 0.5 on the stored image
        maps = head_maps((extractor, loaded), np.asarray(row["image"].convert("RGB")), PROMPT,
                         class_tokens(pipe.tokenizer, PROMPT), row["id"])
        expected = sum(len(coarse_masks(m, 0.5, 1)) for m in maps)
        assert details["candidates"] == expected
