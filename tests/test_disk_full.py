"""A full disk: the error names the file being written, nothing complete is lost, and a rerun resumes.

The disk is "filled" by making the real writers raise what they raise on ENOSPC: an OSError from
``pyarrow.parquet.write_table``, ``Path.write_bytes``, ``os.fsync`` or PIL, a RuntimeError from ``torch.save``.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import torch
from factories_generate import make_real_repo
from PIL import Image

from streetsynth import repo
from streetsynth.cli import main
from streetsynth.generators.writer import read_manifest
from streetsynth.training.checkpoints import commit_checkpoint, latest_checkpoint, staged_checkpoint, staging_dir

FULL = "No space left on device"


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, FULL)


def _fail_on(monkeypatch, owner, name: str, when) -> None:
    """Make ``owner.name`` raise ENOSPC on the calls for which ``when(args, n)`` is true (n counts from 1)."""
    real, calls = getattr(owner, name), []

    def patched(*args, **kwargs):
        calls.append(1)
        if when(args, len(calls)):
            _enospc()
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, patched)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return make_real_repo(tmp_path_factory.mktemp("disk") / "real", rows=3)


def _generate(real: Path, store: Path) -> list[str]:
    return ["generate", "--real", str(real), "--out", str(store), "--model", "tiny", "--num", "3", "--steps", "2",
            "--batch-size", "1", "--rows-per-shard", "1", "--seam-threshold", "1e9", "--seed", "3"]


def _version(store: Path) -> dict[str, bytes]:
    """Every file of v0.1.0 but the manifest (the resumed one records its runs) and the README."""
    folder = store / "v0.1.0"
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in ("manifest.json", "README.md")}


@pytest.fixture(scope="module")
def clean(real, tmp_path_factory):
    store = tmp_path_factory.mktemp("clean") / "store"
    assert main(_generate(real, store)) == 0
    return _version(store)


def test_an_atomic_write_names_its_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    info = tmp_path / "v" / repo.INFO_PATH
    repo.write_info(tmp_path / "v", {"kind": "real", "n": 1})
    monkeypatch.setattr(os, "fsync", _enospc)  # the data reached the page cache; the disk refuses it
    with pytest.raises(OSError, match=f"cannot write {info}: {FULL}") as err:
        repo.write_info(tmp_path / "v", {"kind": "real", "n": 2})
    assert err.value.errno == errno.ENOSPC
    assert repo.read_info(tmp_path / "v")["n"] == 1 and os.listdir(info.parent) == ["info.json"]


def test_generate_on_a_full_disk_names_the_shard_and_resumes_to_a_clean_runs_version(real, clean, tmp_path,
                                                                                    monkeypatch, capsys):
    store = tmp_path / "store"
    _fail_on(monkeypatch, pq, "write_table", lambda args, n: n == 2)  # the second shard does not fit
    assert main(_generate(real, store)) == 2
    err = capsys.readouterr().err
    shards = store / "v0.1.0" / "data" / "synthetic"
    assert f"error: cannot write {shards}/synthetic-00001-*.parquet: {FULL}" in err and "Traceback" not in err
    listed = read_manifest(store / "v0.1.0" / repo.MANIFEST_PATH)["shards"]
    assert [len(s["ids"]) for s in listed] == [1]  # the shard that was complete stays listed
    assert [p.name for p in shards.iterdir()] == [Path(listed[0]["path"]).name]  # and nothing half-written
    with pytest.raises(datasets.exceptions.DataFilesNotFoundError):  # the unfinished version is not a dataset
        datasets.load_dataset(str(store / "v0.1.0"), split="train")

    monkeypatch.undo()
    assert main(_generate(real, store)) == 0
    assert "resumed v0.1.0" in capsys.readouterr().out
    assert _version(store) == clean


@pytest.mark.parametrize("target", ["info.json", "contact_sheet.png"])
def test_finishing_on_a_full_disk_names_the_file_and_a_rerun_publishes_the_version(real, clean, tmp_path, monkeypatch,
                                                                                  capsys, target):
    store = tmp_path / "store"
    if target == "info.json":
        _fail_on(monkeypatch, Path, "write_bytes", lambda args, n: ".info.json." in args[0].name)
    else:
        _fail_on(monkeypatch, Image.Image, "save", lambda args, n: ".contact_sheet.png." in str(args[1]))
    assert main(_generate(real, store)) == 2
    err = capsys.readouterr().err
    assert f"error: cannot write {store / 'v0.1.0' / 'meta' / target}: {FULL}" in err
    assert not list((store / "v0.1.0").rglob("*.tmp"))
    with pytest.raises(datasets.exceptions.DataFilesNotFoundError):
        datasets.load_dataset(str(store / "v0.1.0"), split="train")

    monkeypatch.undo()
    assert main(_generate(real, store)) == 0
    assert _version(store) == clean
    assert len(datasets.load_dataset(str(store / "v0.1.0"), "synthetic", split="synthetic")) == 3


def test_a_checkpoint_that_does_not_fit_is_named_and_the_complete_one_stays(tmp_path, monkeypatch):
    out = tmp_path / "run"
    first = commit_checkpoint(staging_dir(out, 2), {"step": 2}, keep=2)

    def torch_full(obj, f, *args, **kwargs):  # what torch.save raises when the disk is full
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", torch_full)
    with pytest.raises(OSError, match=rf"cannot write {out}/checkpoints/step-00000004.tmp: \[enforce fail"):
        with staged_checkpoint(out, 4) as tmp:
            torch.save({}, tmp / "trainer_state.pt")
    monkeypatch.setattr(os, "fsync", _enospc)
    tmp = staging_dir(out, 6)
    with pytest.raises(OSError, match=f"cannot write {tmp}: {FULL}"):
        commit_checkpoint(tmp, {"step": 6}, keep=2)
    assert latest_checkpoint(out) == first and sorted(p.name for p in first.parent.iterdir()) == [first.name]
    assert json.loads((first / "trainer.json").read_text()) == {"step": 2}


def test_train_maskrcnn_on_a_full_disk_names_the_checkpoint_and_resumes(tmp_path, monkeypatch, capsys):
    from factories_train import make_real_repo as make_masked_repo
    from streetsynth.training.maskrcnn import read_metrics

    real = make_masked_repo(tmp_path / "real", n_train=2, n_val=1)
    argv = ["train", "maskrcnn", "--real", str(real), "--arch", "tiny", "--epochs", "2", "--batch-size", "1",
            "--min-size", "192", "--max-size", "384", "--out", str(tmp_path / "o")]
    _fail_on(monkeypatch, torch, "save", lambda args, n: n == 2)  # the second epoch's checkpoint does not fit
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"error: cannot write {tmp_path / 'o' / 'checkpoints'}/step-" in err and "Traceback" not in err
    done = latest_checkpoint(tmp_path / "o")
    assert done is not None and not list((tmp_path / "o" / "checkpoints").glob("*.tmp"))
    monkeypatch.undo()
    assert main(argv) == 0
    steps = [r["step"] for r in read_metrics(tmp_path / "o") if r["type"] == "train"]
    assert steps == [1, 2, 3, 4] and (tmp_path / "o" / "model").is_dir()  # resumed after step 2, none doubled


def test_a_metrics_log_that_does_not_fit_is_named(tmp_path, monkeypatch, capsys):
    from factories_train import make_real_repo as make_masked_repo

    real = make_masked_repo(tmp_path / "real", n_train=2, n_val=1)
    _fail_on(monkeypatch, Path, "open", lambda args, n: args[0].name == "metrics.jsonl" and "a" in args[1:2])
    assert main(["train", "maskrcnn", "--real", str(real), "--arch", "tiny", "--batch-size", "1", "--min-size", "192",
                 "--max-size", "384", "--out", str(tmp_path / "o")]) == 2
    assert f"error: cannot write {tmp_path / 'o' / 'metrics.jsonl'}: {FULL}" in capsys.readouterr().err
