"""Every generation method resumes after SIGKILL to the same rows as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import datasets
import numpy as np
import pytest
from factories_generate import make_real_repo

from streetsynth.repo import load_split, read_info

ARGS = {
    "occlude": ["--classes", "pedestrian", "vehicle", "--min-size", "4", "--per-row", "2", "--size", "64",
                "--placement", "any"],
    "rerender": ["--iou-threshold", "0", "--min-kept", "0"],
    "ground": ["--num", "5", "--size", "64x128", "--sam", "none", "--iou-threshold", "0", "--min-area", "8",
               "--prompt", "a street with a car and a pedestrian"],
}


def _command(method, real, out):
    args = [sys.executable, "-m", "streetsynth.cli", method, "--out", str(out), "--steps", "2", "--seed", "4",
            "--rows-per-shard", "1", *ARGS[method]]
    return args if method == "ground" else args + ["--real", str(real)]


def _rows(folder):
    return {r["id"]: (np.asarray(r["image"]).tobytes(), json.dumps(r["generation"], sort_keys=True),
                      json.dumps(r["objects"]), np.asarray(r["instance_mask"]).tobytes())
            for r in load_split(folder, "synthetic", "synthetic")}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(ARGS))
def test_resumes_after_sigkill_to_the_same_rows(tmp_path, method):
    real = make_real_repo(tmp_path / "real", rows=6)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    clean = subprocess.run(_command(method, real, tmp_path / "clean"), env=env, capture_output=True, text=True,
                           timeout=600)
    assert clean.returncode == 0, clean.stderr[-3000:]
    manifest = tmp_path / "killed" / "v0.1.0" / "meta" / "manifest.json"
    proc = subprocess.Popen(_command(method, real, tmp_path / "killed"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists() and any(s["path"] for s in json.loads(manifest.read_text())["shards"]):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    shards = json.loads(manifest.read_text())["shards"]
    assert 1 <= len(shards) and not (tmp_path / "killed" / "v0.1.0" / "meta" / "info.json").exists()
    with pytest.raises(datasets.exceptions.DataFilesNotFoundError):  # a killed run's version is not a dataset
        datasets.load_dataset(str(tmp_path / "killed" / "v0.1.0"), split="train")
    resumed = subprocess.run(_command(method, real, tmp_path / "killed"), env=env, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0 and "resumed v0.1.0" in resumed.stdout, resumed.stderr[-3000:]
    want, got = _rows(tmp_path / "clean" / "v0.1.0"), _rows(tmp_path / "killed" / "v0.1.0")
    assert len(want) >= 3 and got == want
    info = read_info(tmp_path / "killed" / "v0.1.0")
    assert info["method"] == method and info == read_info(tmp_path / "clean" / "v0.1.0")
    sheet = "v0.1.0/meta/contact_sheet.png"  # drawn from the whole version's rows, not the last run's
    assert (tmp_path / "killed" / sheet).read_bytes() == (tmp_path / "clean" / sheet).read_bytes()
