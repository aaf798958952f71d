"""Bad input to training gets a clear error, and a checkpoint is never lost mid-swap."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from factories_train import make_real_repo
from streetsynth.cli import main
from streetsynth.training.checkpoints import commit_checkpoint, latest_checkpoint, staging_dir


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return make_real_repo(tmp_path_factory.mktemp("bad") / "real", n_train=2, n_val=1)


@pytest.mark.parametrize("flag, message", [("--epochs", "--epochs must be >= 1, got 0"),
                                           ("--batch-size", "--batch-size must be >= 1, got 0")])
def test_zero_epochs_or_batch_size_is_a_clear_error(real, tmp_path, capsys, flag, message):
    rc = main(["train", "maskrcnn", "--real", str(real), "--arch", "tiny", flag, "0", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "o" / "model").exists()


def test_box_only_rows_are_refused_naming_the_command_that_fixes_them(tmp_path, capsys):
    boxes = make_real_repo(tmp_path / "boxes", n_train=2, n_val=1, with_masks=False)
    rc = main(["train", "maskrcnn", "--real", str(boxes), "--arch", "tiny", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and f"`streetsynth label --data {boxes} --prompt-boxes ground-truth --out STORE`" in err


def test_checkpoint_is_written_and_fsynced_before_the_old_one_goes(tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = commit_checkpoint(staging_dir(out, 2), {"step": 2, "n": 1}, keep=2)
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd))
    tmp = staging_dir(out, 2)
    (tmp / "weights.bin").write_bytes(b"new")
    real_rename = Path.rename

    def crash_on_swap(self, target):  # power lost after the old one was moved aside
        if self.name.endswith(".tmp"):
            raise OSError("power lost")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", crash_on_swap)
    with pytest.raises(OSError):
        commit_checkpoint(tmp, {"step": 2, "n": 2}, keep=2)
    assert str(tmp / "weights.bin") in synced and str(tmp / "trainer.json") in synced
    left = latest_checkpoint(out)  # the old checkpoint still counts
    assert left is not None and json.loads((left / "trainer.json").read_text())["n"] == 1
    monkeypatch.setattr(Path, "rename", real_rename)
    done = commit_checkpoint(tmp, {"step": 2, "n": 2}, keep=2)
    assert done == first and latest_checkpoint(out) == first
    assert json.loads((first / "trainer.json").read_text())["n"] == 2 and not (out / "checkpoints" / "step-00000002.old").exists()
