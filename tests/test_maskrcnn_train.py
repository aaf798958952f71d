"""Mask R-CNN training: learns on a fixed batch, stops on NaN, checkpoints, resumes, runs on 2 processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from factories_train import make_real_repo, make_synthetic_repo, scene_row
from streetsynth.repo import read_info
from streetsynth.training.data import augment, build_augmentation, row_to_sample
from streetsynth.training.checkpoints import latest_checkpoint
from streetsynth.training.maskrcnn import NonFiniteLossError, TrainConfig, read_metrics, train_maskrcnn, training_step

TINY = dict(arch="tiny", min_size=192, max_size=384, batch_size=2, warmup_steps=1, lr=0.01, progress=False)


def _tiny_model():
    from streetsynth.models.detector import build_maskrcnn

    torch.manual_seed(0)
    return build_maskrcnn(arch="tiny", num_classes=5, weights=None, weights_backbone=None, min_size=64, max_size=128)


@pytest.fixture
def repos(tmp_path):
    return make_real_repo(tmp_path / "real", n_train=4, n_val=2), make_synthetic_repo(tmp_path / "syn")


def test_few_steps_reduce_loss_on_fixed_batch():
    model = _tiny_model()
    model.train()
    batch = [augment(*row_to_sample(scene_row(i)), build_augmentation("none"), 0) for i in range(2)]
    images, targets = [b[0] for b in batch], [b[1] for b in batch]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    losses = []
    for step in range(12):
        torch.manual_seed(step)
        losses.append(training_step(model, images, targets, optimizer, step=step)["loss"])
    assert losses[-1] < 0.75 * losses[0], losses


class _NaNModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, images, targets=None):
        return {"loss_classifier": self.w * float("nan")}


def test_non_finite_loss_stops_with_clear_error(repos, tmp_path):
    real, _ = repos
    cfg = TrainConfig(real=str(real), out=str(tmp_path / "out"), eval_each_epoch=False, **TINY)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss nan at step 0 \(loss_classifier=nan\)"):
        train_maskrcnn(cfg, model=_NaNModel())


def test_run_checkpoints_evaluates_and_records_datasets(repos, tmp_path):
    real, syn = repos
    cfg = TrainConfig(real=str(real), synthetic=[str(syn)], mix="real=1,synthetic=0.5", out=str(tmp_path / "out"),
                      epochs=2, steps_per_epoch=2, **TINY)
    result = train_maskrcnn(cfg)
    assert result.steps == 4 and result.resumed_from is None
    records = read_metrics(cfg.out)
    assert [r["step"] for r in records if r["type"] == "train"] == [1, 2, 3, 4]
    evals = [r for r in records if r["type"] == "eval"]
    assert [e["epoch"] for e in evals] == [1, 2] and all(0.0 <= e["box_AP"] <= 1.0 for e in evals)
    assert json.loads((Path(cfg.out) / "eval.json").read_text())["images"] == 2
    ckpt = latest_checkpoint(cfg.out)
    trainer = json.loads((ckpt / "trainer.json").read_text())
    assert trainer["step"] == 4
    assert [d["fingerprint"] for d in trainer["datasets"]] == [read_info(r)["fingerprint"] for r in (real, syn)]
    from streetsynth.models.detector import load_detector

    model, class_map, _ = load_detector(str(result.model_dir))
    assert class_map == {1: 0, 2: 1, 3: 2, 4: 3}
    saved = load_file(str(result.model_dir / "model.safetensors"))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in saved.items())


def test_resume_continues_from_its_step_and_matches_uninterrupted(repos, tmp_path):
    real, syn = repos
    common = dict(real=str(real), synthetic=[str(syn)], mix="real=1,synthetic=1", steps_per_epoch=2,
                  eval_each_epoch=False, augment="hflip", **TINY)
    train_maskrcnn(TrainConfig(out=str(tmp_path / "full"), epochs=2, **common))
    shutil.copytree(tmp_path / "full", tmp_path / "cut")
    # A run cut after its first epoch: only the step-2 checkpoint survived.
    shutil.rmtree(latest_checkpoint(tmp_path / "cut"))
    shutil.rmtree(tmp_path / "cut" / "model")
    resumed = train_maskrcnn(TrainConfig(out=str(tmp_path / "cut"), epochs=2, **common))
    assert resumed.resumed_from == 2 and resumed.steps == 4
    steps = [r["step"] for r in read_metrics(tmp_path / "cut") if r["type"] == "train"]
    assert steps == [1, 2, 3, 4]
    a = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)
    with pytest.raises(ValueError, match="other settings"):
        train_maskrcnn(TrainConfig(out=str(tmp_path / "cut"), epochs=2, **{**common, "mix": "real=1"}))


def test_mix_needing_missing_synthetic_is_refused(repos, tmp_path):
    real, _ = repos
    with pytest.raises(ValueError, match="no synthetic repo"):
        train_maskrcnn(TrainConfig(real=str(real), out=str(tmp_path / "o"), mix="synthetic=1", **TINY))


def test_unlabelled_synthetic_version_is_refused(tmp_path):
    from streetsynth.generators.generate import CARRIED_LABELER

    real = make_real_repo(tmp_path / "real")
    syn = make_synthetic_repo(tmp_path / "syn", labeler=CARRIED_LABELER)
    cfg = TrainConfig(real=str(real), synthetic=[str(syn)], mix="real=1,synthetic=1", out=str(tmp_path / "o"), **TINY)
    with pytest.raises(ValueError, match=r"synthetic version v0\.1\.0 .* without a labeler.*--detector and --sam"):
        train_maskrcnn(cfg)


def test_default_policy_drops_half_labelled_frames_and_says_so(tmp_path, capsys):
    real = make_real_repo(tmp_path / "real", n_train=3, unmasked_rows={0: (1,)})
    cfg = TrainConfig(real=str(real), out=str(tmp_path / "o"), steps_per_epoch=1, eval_each_epoch=False, **TINY)
    train_maskrcnn(cfg)
    printed = capsys.readouterr().out
    assert "real: 3 rows, 1 with unmasked objects (1 objects); policy drop-row: dropped 1 rows" in printed
    only_partial = make_real_repo(tmp_path / "real2", n_train=1, unmasked_rows={0: (0,)})
    with pytest.raises(ValueError, match="box-fill"):
        train_maskrcnn(TrainConfig(real=str(only_partial), out=str(tmp_path / "o2"), **TINY))


TWO_PROCESS_SCRIPT = """
import json, sys
from streetsynth.training.maskrcnn import TrainConfig, train_maskrcnn
from accelerate import PartialState
cfg = TrainConfig(real=sys.argv[1], synthetic=[sys.argv[2]], mix="real=1,synthetic=1", out=sys.argv[3], epochs=1,
                  steps_per_epoch=2, arch="tiny", min_size=192, max_size=384, batch_size=1, warmup_steps=1,
                  lr=0.01, progress=False, eval_each_epoch=True, cpu=True)
r = train_maskrcnn(cfg)
rank = PartialState().process_index
with open(f"{sys.argv[3]}-rank{rank}.json", "w") as fh:
    json.dump({"rank": rank, "steps": r.steps}, fh)
"""


def test_two_process_cpu_run_under_accelerate(repos, tmp_path):
    real, syn = repos
    script = tmp_path / "run2.py"
    script.write_text(textwrap.dedent(TWO_PROCESS_SCRIPT))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    # accelerate launch --cpu always starts one process; torchrun starts two, and Accelerator picks
    # up their environment (gloo on the CPU).
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                           str(script), str(real), str(syn), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"out-rank{i}.json").read_text()) for i in (0, 1)]
    assert ranks == [{"rank": 0, "steps": 2}, {"rank": 1, "steps": 2}]
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["num_processes"] == 2 and run["steps"] == 2
    assert [r["step"] for r in read_metrics(tmp_path / "out") if r["type"] == "train"] == [1, 2]


def test_compare_gives_every_mix_equal_compute_and_reports_seed_spread(tmp_path):
    from streetsynth.training.compare import comparison_table, compare_mixes, format_comparison

    # 4 real rows and 3 synthetic: a pass over real+synthetic would take 7/4 of the real-only steps.
    real = make_real_repo(tmp_path / "real", n_train=4, n_val=2)
    syn = make_synthetic_repo(tmp_path / "syn")
    base = TrainConfig(real=str(real), synthetic=[str(syn)], out="unused", **TINY)
    rows = compare_mixes(base, ["real=1", "real=1,synthetic=1"], tmp_path / "cmp", seeds=2, control_2x=False)
    # real-only's budget: one pass over 4 rows at batch 2 = 2 steps, 4 images, for every mix and seed
    for r in rows:
        assert [(s["steps"], s["images"]) for s in r["seeds"]] == [(2, 4), (2, 4)]
        assert [s["seed"] for s in r["seeds"]] == [0, 1]
        assert [p["step"] for p in r["seeds"][1]["curves"]["loss"]] == [1, 2]
    real_only, mixed = rows
    box = [s["metrics"]["box"]["AP"] for s in mixed["seeds"]]
    assert mixed["summary"]["box"]["AP"] == {"mean": pytest.approx(np.mean(box)),
                                             "std": pytest.approx(np.std(box, ddof=1)), "n": 2}
    ref = [s["metrics"]["box"]["AP"] for s in real_only["seeds"]]
    d = np.subtract(box, ref)
    half = 12.706 * np.std(d, ddof=1) / np.sqrt(2)
    assert mixed["delta"]["box"]["AP"] == {"mean": pytest.approx(d.mean()), "low": pytest.approx(d.mean() - half),
                                           "high": pytest.approx(d.mean() + half), "n": 2}
    assert real_only["delta"]["mask"]["AP"]["mean"] == 0.0
    assert set(mixed["summary"]["mask"]) == {"AP", "AP50", "AP75", "vehicle", "pedestrian", "cyclist", "sign"}
    text = format_comparison(rows)
    assert "mean±std over 2 seed(s)" in text
    assert f"{100 * np.mean(box):.1f}±{100 * np.std(box, ddof=1):.1f}" in text
    table = comparison_table(rows)
    assert table[0][:4] == ["mix", "real fraction", "box AP", "mask AP"] and table[2][2] in text
    assert table[2][-1] == "2"


def test_cli_compare_prints_table_and_writes_results(repos, tmp_path, capsys):
    from streetsynth.cli import main

    real, syn = repos
    out = tmp_path / "cmp"
    rc = main(["train", "compare", "--real", str(real), "--synthetic", str(syn), "--mixes", "real=1",
               "real=1,synthetic=0.5", "--steps", "1", "--seeds", "1", "--arch", "tiny", "--min-size", "192",
               "--max-size", "384", "--warmup-steps", "1", "--lr", "0.01", "--out", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "real=1,synthetic=0.5" in text and "mask AP" in text
    results = json.loads((out / "results.json").read_text())
    runs = {r["mix"]: r for r in results["runs"]}
    assert set(runs) == {"real=1", "real=1,synthetic=0.5", "real=1 2x steps"}
    assert runs["real=1"]["delta_mask_AP"] == 0.0
    # --steps 1 overrides real-only's budget of 2 steps (4 rows at batch 2); the control gets twice that
    assert [r["steps"] for r in runs.values()] == [1, 1, 2]
    assert all(len(r["seeds"][0]["curves"]["eval"]) == r["steps"] for r in runs.values())
    assert (out / "delta.png").stat().st_size > 1000
    assert (out / "learning_curves.png").stat().st_size > 1000


def test_cli_errors_are_one_line(repos, tmp_path, capsys):
    from streetsynth.cli import main

    real, _ = repos
    rc = main(["train", "maskrcnn", "--real", str(real), "--mix", "real=1,fake=2", "--out", str(tmp_path / "o")])
    assert rc == 2 and "unknown source 'fake'" in capsys.readouterr().err
    rc = main(["train", "maskrcnn", "--real", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "not a streetsynth dataset repo" in capsys.readouterr().err


def test_unfinished_checkpoint_folders_are_ignored(repos, tmp_path):
    from streetsynth.training.checkpoints import commit_checkpoint, staging_dir

    out = tmp_path / "out"
    done = commit_checkpoint(staging_dir(out, 2), {"step": 2}, keep=2)
    # a kill between writing trainer.json and the rename leaves a .tmp folder that looks complete
    torn = staging_dir(out, 4)
    (torn / "trainer.json").write_text(json.dumps({"step": 4}))
    assert latest_checkpoint(out) == done


KILL_SCRIPT = """
import sys
from streetsynth.training.maskrcnn import TrainConfig, train_maskrcnn
cfg = TrainConfig(real=sys.argv[1], out=sys.argv[2], epochs=3, steps_per_epoch=3, arch="tiny", min_size=192,
                  max_size=384, batch_size=2, warmup_steps=1, lr=0.01, progress=False, eval_each_epoch=False,
                  cpu=True)
print(train_maskrcnn(cfg).steps)
"""


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_to_the_same_end(repos, tmp_path):
    import signal
    import time

    real, _ = repos
    out = tmp_path / "out"
    script = tmp_path / "kill.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(real), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # kill inside the second epoch: after step 4's record (steps 4-6 follow the step-3 checkpoint)
        deadline = time.monotonic() + 600
        while not any(r.get("step", 0) >= 4 for r in _records(out)):
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed_at = max(r["step"] for r in _records(out))
    assert killed_at < 9
    resumed = subprocess.run([sys.executable, str(script), str(real), str(out)], env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.split()[-1] == "9"
    assert [r["step"] for r in read_metrics(out) if r["type"] == "train"] == list(range(1, 10))
    assert json.loads((latest_checkpoint(out) / "trainer.json").read_text())["step"] == 9


def _records(out: Path) -> list[dict]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return records
