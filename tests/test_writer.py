"""The streaming shard writer: fixed-size shards, the manifest, and resume after a real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from factories_generate import make_real_repo

from streetsynth.generators.writer import ShardWriter, manifest_counts, merge_manifests, read_manifest
from streetsynth.repo import MANIFEST_PATH, parse_shard_name, shard_path


def _features():
    import datasets

    return datasets.Features({"id": datasets.Value("string"), "x": datasets.Value("int64")})


def _writer(repo, rank=0, world=1, fp="fp1"):
    return ShardWriter(repo, "synthetic", "synthetic", _features(), 3, fp, rank, world)


def test_rows_go_into_fixed_size_shards_listed_in_the_manifest(tmp_path):
    w = _writer(tmp_path)
    for i in range(7):
        w.add(f"s{i}", {"id": f"s{i}", "x": i} if i != 4 else None, attempts=1 + (i == 4), rejected=int(i == 4))
    w.flush()
    m = read_manifest(tmp_path / MANIFEST_PATH)
    assert [s["rows"] for s in m["shards"]] == [3, 3]
    assert m["shards"][1]["failed"] == ["s4"] and m["fingerprint"] == "fp1"
    assert pq.read_table(tmp_path / m["shards"][0]["path"]).column("id").to_pylist() == ["s0", "s1", "s2"]
    c = manifest_counts(m)
    assert (c["accepted"], c["failed_samples"], c["attempts"], c["rejected_attempts"]) == (6, 1, 8, 1)


def test_empty_run_writes_no_shard(tmp_path):
    w = _writer(tmp_path)
    w.flush()
    assert read_manifest(tmp_path / MANIFEST_PATH)["shards"] == []
    assert manifest_counts({})["acceptance_rate"] == 0.0


def test_resume_drops_unlisted_shards_and_temp_files_and_refuses_other_runs(tmp_path):
    w = _writer(tmp_path)
    for i in range(3):
        w.add(f"s{i}", {"id": f"s{i}", "x": i}, 1, 0)
    stray = shard_path(tmp_path, "synthetic", "synthetic", 1, "0123456789ab")
    stray.write_bytes(b"half")
    tmp = stray.parent / ".synthetic-00002.parquet.abc.tmp"
    tmp.write_bytes(b"x")
    w2 = _writer(tmp_path)
    assert w2.done_ids() == {"s0", "s1", "s2"}
    assert not stray.exists() and not tmp.exists()
    with pytest.raises(ValueError, match="fingerprint"):
        _writer(tmp_path, fp="other")


def test_processes_write_their_own_shards_and_the_manifests_merge(tmp_path):
    for rank in (0, 1):
        w = _writer(tmp_path, rank, 2)
        w.add(f"r{rank}", {"id": f"r{rank}", "x": rank}, 1, 0)
        w.flush()
    merged = merge_manifests(tmp_path, 2, "fp1")
    assert [parse_shard_name(Path(s["path"]).name) for s in sorted(merged["shards"], key=lambda s: s["path"])] == \
        [("synthetic", 0), ("synthetic", 10000)]
    assert json.loads((tmp_path / MANIFEST_PATH).read_text())["processes"] == 2


def _generate_cmd(real: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "streetsynth.cli", "generate", "--real", str(real), "--out", str(store),
            "--model", "tiny", "--num", "10", "--steps", "2", "--batch-size", "2", "--rows-per-shard", "2",
            "--seam-threshold", "1e9", "--seed", "7"]


def _shard_bytes(version: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((version / "data" / "synthetic").glob("*.parquet"))}


def test_sigkill_then_resume_equals_a_clean_run(tmp_path):
    real = make_real_repo(tmp_path / "real", rows=5)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    clean = subprocess.run(_generate_cmd(real, tmp_path / "clean"), env=env, capture_output=True, text=True,
                           timeout=300)
    assert clean.returncode == 0, clean.stderr

    store = tmp_path / "killed"
    proc = subprocess.Popen(_generate_cmd(real, store), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = store / "v0.1.0" / MANIFEST_PATH
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if manifest.exists() and len(read_manifest(manifest).get("shards", [])) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(read_manifest(manifest)["shards"]) < 5  # it really stopped part-way

    again = subprocess.run(_generate_cmd(real, store), env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resumed v0.1.0" in again.stdout
    assert _shard_bytes(store / "v0.1.0") == _shard_bytes(tmp_path / "clean" / "v0.1.0")
    ids = [i for s in read_manifest(manifest)["shards"] for i in s["ids"]]
    assert len(ids) == len(set(ids)) == 10
