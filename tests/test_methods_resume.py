"""Every writer killed with SIGKILL part-way, then rerun, ends with what an uninterrupted run writes.

The nine writers: ``build``, ``generate``, ``label``, ``occlude``, ``rerender``, ``ground``, ``train maskrcnn``,
``train compare`` and ``train inpaint``. Each runs once uninterrupted and once killed at a point where it has
committed part of its work (a shard listed, a segment reported, a checkpoint in place), then reruns with the
same command. Nothing may be lost or doubled, and everything the run publishes (rows, info.json, the card,
contact sheets, models, metrics) must equal the uninterrupted run's, not describe only the last run's share.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import datasets
import pytest

import factories_producers as producers
from factories_generate import make_real_repo
from factories_train import make_real_repo as make_masked_repo

TINY = ["--steps", "2", "--seed", "4"]
TRAIN = ["--arch", "tiny", "--min-size", "192", "--max-size", "384", "--batch-size", "1", "--warmup-steps", "1",
         "--lr", "0.01", "--cpu", "--no-progress"]
#: Keys of records that measure speed, not what was computed.
TIMING = re.compile(r"(images_per_s|img_s|seconds|elapsed|duration|time_s|wall)")


@dataclass
class Writer:
    argv: Callable[[Path, Path], list[str]]  # (source, out) -> arguments after `streetsynth`
    source: Callable[[Path], Path]  # tmp_path -> the input it reads
    committed: Callable[[Path], bool]  # out -> whether part of the work is committed (time to kill)
    published: Callable[[Path], Path]  # out -> the folder whose files must equal the clean run's
    unfinished: Callable[[Path], None] = lambda out: None  # asserts what a killed run leaves


def _listed_shard(out: Path) -> bool:
    return any(s.get("path") for m in out.glob("v0.1.0/meta/manifest*.json") for s in _json(m).get("shards", []))


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _not_a_dataset(out: Path) -> None:
    assert not (out / "v0.1.0" / "meta" / "info.json").exists()
    with pytest.raises(datasets.exceptions.DataFilesNotFoundError):
        datasets.load_dataset(str(out / "v0.1.0"), split="train")


def _no_repo(out: Path) -> None:
    assert not out.exists()


def _checkpoint(out: Path) -> bool:
    return any(p.is_file() for p in out.glob("**/checkpoints/step-*[0-9]/trainer.json"))


def _method(name: str, *extra: str) -> Writer:
    source = [] if name == "ground" else ["--real"]
    return Writer(lambda src, out: [name, *source, *([str(src)] if source else []), "--out", str(out), *TINY,
                                    "--rows-per-shard", "1", *extra],
                  lambda tmp: make_real_repo(tmp / "real", rows=6), _listed_shard, lambda out: out / "v0.1.0",
                  _not_a_dataset)


WRITERS = {
    "build": Writer(lambda src, out: ["build", "--source", str(src), "--out", str(out), "--size", "64x128"],
                    lambda tmp: producers.copy_repo(producers.sample(3, 3, 0, (96, 144), 2), tmp / "waymo"),
                    lambda out: any(out.parent.glob(f".{out.name}.building-*/reports/*.json")), lambda out: out,
                    _no_repo),
    "generate": _method("generate", "--model", "tiny", "--num", "6", "--batch-size", "1", "--seam-threshold", "1e9"),
    "label": Writer(lambda src, out: ["label", "--data", str(src), "--out", str(out), "--prompt-boxes",
                                      "ground-truth", "--shard-size", "1"],
                    lambda tmp: make_real_repo(tmp / "real", rows=6), _listed_shard, lambda out: out / "v0.1.0",
                    _not_a_dataset),
    "occlude": _method("occlude", "--classes", "pedestrian", "vehicle", "--min-size", "4", "--per-row", "2",
                       "--size", "64", "--placement", "any"),
    "rerender": _method("rerender", "--iou-threshold", "0", "--min-kept", "0"),
    "ground": _method("ground", "--num", "5", "--size", "64x128", "--sam", "none", "--iou-threshold", "0",
                      "--min-area", "8", "--prompt", "a street with a car and a pedestrian"),
    "train-maskrcnn": Writer(lambda src, out: ["train", "maskrcnn", "--real", str(src), "--out", str(out),
                                               "--epochs", "3", *TRAIN],
                             lambda tmp: make_masked_repo(tmp / "real", n_train=2, n_val=1), _checkpoint,
                             lambda out: out),
    "train-compare": Writer(lambda src, out: ["train", "compare", "--real", str(src), "--out", str(out),
                                              "--mixes", "real=1", "--seeds", "2", "--epochs", "1", "--steps", "2",
                                              *TRAIN],
                            lambda tmp: make_masked_repo(tmp / "real", n_train=2, n_val=1),
                            lambda out: any(out.glob("*/seed-*/model")), lambda out: out),
    "train-inpaint": Writer(lambda src, out: ["train", "inpaint", "--real", str(src), "--model", "tiny", "--out",
                                              str(out), "--steps", "4", "--checkpoint-every", "1", "--resolution",
                                              "64x128", "--cpu", "--no-progress"],
                            lambda tmp: make_masked_repo(tmp / "real", n_train=2, n_val=1), _checkpoint,
                            lambda out: out),
}


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "streetsynth.cli", *args]


def _normalised(path: Path, out: Path) -> bytes:
    """A file's bytes; JSON records without their timing keys (a resumed run is not as fast) and with the run's
    own output folder written as ``<out>`` (the two runs write to two folders)."""
    if path.suffix not in (".json", ".jsonl"):
        return path.read_bytes()

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not TIMING.fullmatch(k)}
        return [strip(v) for v in value] if isinstance(value, list) else value

    text = path.read_text().replace(str(out), "<out>")
    if path.suffix == ".json":
        return json.dumps(strip(json.loads(text)), sort_keys=True).encode()
    return "\n".join(json.dumps(strip(json.loads(line)), sort_keys=True) for line in text.splitlines() if line).encode()


def _published(folder: Path, out: Path) -> dict[str, bytes]:
    """Every file a run leaves, but its scratch: checkpoints (the killed run wrote other steps' on its way)
    and the store lock."""
    return {p.relative_to(folder).as_posix(): _normalised(p, out) for p in sorted(folder.rglob("*"))
            if p.is_file() and "checkpoints" not in p.relative_to(folder).parts and p.name != ".streetsynth.lock"}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(WRITERS))
def test_killed_then_rerun_equals_an_uninterrupted_run(tmp_path, name):
    w = WRITERS[name]
    src = w.source(tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    clean = subprocess.run(_cli(w.argv(src, tmp_path / "clean" / "out")), env=env, capture_output=True, text=True,
                           timeout=900)
    assert clean.returncode == 0, clean.stderr[-3000:]

    killed = tmp_path / "killed" / "out"
    proc = subprocess.Popen(_cli(w.argv(src, killed)), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None and not w.committed(killed):
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    w.unfinished(killed)

    again = subprocess.run(_cli(w.argv(src, killed)), env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    want = _published(w.published(tmp_path / "clean" / "out"), tmp_path / "clean" / "out")
    got = _published(w.published(killed), killed)
    assert len(want) >= 3 and sorted(got) == sorted(want)
    assert [p for p in want if got[p] != want[p]] == []
    assert not [p for p in killed.parent.rglob("*") if p.name.endswith(".tmp") or ".building-" in p.name]


@pytest.mark.parametrize("command", ["maskrcnn", "inpaint"])
def test_a_finished_training_rerun_publishes_the_same_record(tmp_path, command):
    """Rerunning a finished run trains nothing; its run.json / training.json still has the final loss."""
    from streetsynth.cli import main

    real = make_masked_repo(tmp_path / "real", n_train=2, n_val=1)
    out = ["--real", str(real), "--out", str(tmp_path / "out")]
    if command == "maskrcnn":
        argv, record = ["train", "maskrcnn", *out, "--epochs", "1", *TRAIN], "run.json"
    else:
        argv, record = ["train", "inpaint", *out, "--model", "tiny", "--steps", "1", "--resolution", "64x128",
                        "--cpu", "--no-progress"], "training.json"
    assert main(argv) == 0
    first = _normalised(tmp_path / "out" / record, tmp_path / "out")
    assert json.loads(first)["final_loss"] is not None
    assert main(argv) == 0
    assert _normalised(tmp_path / "out" / record, tmp_path / "out") == first


def test_a_lora_file_has_one_byte_order_whatever_order_its_metadata_came_in(tmp_path):
    """safetensors writes ``__metadata__`` from a hash map (its order changes between processes): the adapter
    saver sorts it, so two runs that train the same adapter write the same file."""
    import torch
    from safetensors.torch import load_file, save_file

    from streetsynth.training.inpaint import _sort_safetensors_metadata

    files = []
    for i, order in enumerate((["format", "lora_adapter_metadata"], ["lora_adapter_metadata", "format"])):
        path = tmp_path / f"{i}.safetensors"
        save_file({"w": torch.arange(6.0)}, str(path), metadata={"format": "pt", "lora_adapter_metadata": "{}"})
        data = path.read_bytes()
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + size])
        header["__metadata__"] = {k: header["__metadata__"][k] for k in order}  # as another process may write it
        path.write_bytes(data[:8] + json.dumps(header, separators=(",", ":")).encode().ljust(size) + data[8 + size:])
        files.append(path)
    assert files[0].read_bytes() != files[1].read_bytes()
    for path in files:
        _sort_safetensors_metadata(path)
        assert torch.equal(load_file(str(path))["w"], torch.arange(6.0))
    assert files[0].read_bytes() == files[1].read_bytes()
