"""The real-dataset builder end to end on a made sample: repo layout, features, splits, bad frames."""

from __future__ import annotations

import json
import shutil

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from streetsynth.builders.frames import FrameError
from streetsynth.builders.waymo import (BuildSummary, WaymoStitchedConfig, build_real, config_for, hash_split,
                                        recorded_settings, segment_name, source_files, split_segments)
from streetsynth.cli import main
from streetsynth.repo import INFO_PATH, read_info
from streetsynth.builders.sample import make_sample, render_scene, scene_to_frame
from streetsynth.schema import pairs_features, stitched_features
from streetsynth.tfrecord import write_tfrecord

VIEW = (96, 144)
SIZE = (64, 160)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    make_sample(root, segments=3, frames=2, seed=0, view_size=VIEW)
    return root


@pytest.fixture(scope="module")
def built(sample, tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo") / "real"
    summary = build_real(WaymoStitchedConfig(name="stitched", source_dir=str(sample), size=SIZE), repo)
    return repo, summary


def test_load_dataset_returns_the_declared_features(built):
    repo, summary = built
    ds = datasets.load_dataset(str(repo), "stitched", split="train")
    assert ds.features == stitched_features()
    assert isinstance(summary, BuildSummary) and len(ds) == summary.rows["train"] == 4
    row = ds[0]
    assert row["image"].size == (SIZE[1], SIZE[0]) and (row["width"], row["height"]) == (SIZE[1], SIZE[0])
    assert row["caption_source"] == "template" and row["caption"].startswith("a wide street scene")
    assert row["stitch"]["method"] == "calibration" and row["stitch"]["right_x0"] < row["stitch"]["front_x1"]
    for o in row["objects"]:
        x0, y0, x1, y1 = o["bbox"]
        assert 0 <= x0 < x1 <= SIZE[1] and 0 <= y0 < y1 <= SIZE[0]


def test_rows_have_unique_deterministic_keys_and_masks_where_panoptic(built):
    repo, _ = built
    ds = datasets.load_dataset(str(repo), "stitched", split="train")
    assert len(set(ds["id"])) == len(ds)
    assert all(i == f"{s}_{t}" for i, s, t in zip(ds["id"], ds["segment"], ds["timestamp_micros"]))
    # make_sample puts panoptic labels on every second frame: those rows carry an instance mask.
    with_mask = [r for r in ds if r["instance_mask"] is not None]
    assert len(with_mask) == 2
    for r in with_mask:
        ids = np.asarray(r["instance_mask"])
        assert set(np.unique(ids)) - {0} == {o["instance_id"] for o in r["objects"]}
        # Every masked object says its mask came from the frame's panoptic label.
        assert {o["mask_source"] for o in r["objects"]} == {"panoptic"}
    box_only = [o for r in ds if r["instance_mask"] is None for o in r["objects"]]
    assert box_only and all(o["mask_source"] is None for o in box_only)


def test_info_and_summary(built):
    repo, summary = built
    info = read_info(repo)
    assert info["kind"] == "real" and info["source"]["format"] == "v1"
    assert info["counts"] == {"stitched/train": 4, "stitched/validation": 2}
    assert info["skipped"] == {"count": 0, "reasons": []}
    assert summary["objects"]["vehicle"] > 0 and summary["methods"] == {"calibration": 6}


def test_splits_never_share_a_segment(built):
    repo, _ = built
    segs = {s: set(datasets.load_dataset(str(repo), "stitched", split=s)["segment"]) for s in ("train", "validation")}
    assert segs["train"] and segs["validation"] and not segs["train"] & segs["validation"]


def test_hash_split_of_an_unsplit_source_keeps_segments_whole(sample, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in sample.rglob("*.tfrecord"):
        shutil.copy(f, flat / f.name)
    files = split_segments(source_files(flat), validation_percent=50)
    assert sum(len(v) for v in files.values()) == 3
    for split, fs in files.items():
        assert all(hash_split(segment_name(f), 50) == split for f in fs)
    assert hash_split("abc", 0) == "train" and hash_split("abc", 100) == "validation"


def test_pairs_config_keeps_camera_images(sample, tmp_path):
    repo = tmp_path / "repo"
    build_real(sample, repo, config="pairs")
    ds = datasets.load_dataset(str(repo), "pairs", split="validation")
    assert ds.features == pairs_features() and len(ds) == 2
    assert ds[0]["front"].size == (VIEW[1], VIEW[0])
    assert ds[0]["objects_front"] and all(o["source"] == "FRONT" for o in ds[0]["objects_front"])


def _bad_sample(root):
    """One segment whose second frame lacks FRONT_RIGHT."""
    frames = []
    for k in range(3):
        fr = scene_to_frame(render_scene(k, VIEW), "badseg", 1000 + k, panoptic=False)
        if k == 1:
            del fr.images[1]
        frames.append(fr.SerializeToString())
    path = root / "training" / "segment-badseg_with_camera_labels.tfrecord"
    write_tfrecord(path, frames)
    return path


def test_bad_frame_raises_naming_file_and_frame_and_leaves_no_repo(tmp_path):
    path = _bad_sample(tmp_path / "src")
    with pytest.raises(FrameError, match=r"badseg_with_camera_labels.tfrecord@\d+: frame 1001 has no FRONT_RIGHT"):
        build_real(tmp_path / "src", tmp_path / "repo", size=SIZE)
    assert path.exists() and not (tmp_path / "repo").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # no temporary build folder left


def test_skip_policy_counts_and_records_reasons(tmp_path, capsys):
    _bad_sample(tmp_path / "src")
    code = main(["build", "--source", str(tmp_path / "src"), "--out", str(tmp_path / "repo"),
                 "--size", "64x160", "--on-error", "skip"])
    out = capsys.readouterr().out
    assert code == 0
    assert "train: 2 rows" in out and "skipped frames: 1" in out and "no FRONT_RIGHT" in out
    info = json.loads((tmp_path / "repo" / INFO_PATH).read_text())
    assert info["skipped"]["count"] == 1 and "frame 1001 has no FRONT_RIGHT" in info["skipped"]["reasons"][0]


def test_cli_reports_a_missing_source(tmp_path, capsys):
    assert main(["build", "--source", str(tmp_path / "nothing"), "--out", str(tmp_path / "repo")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


@pytest.mark.timeout(300)
def test_two_processes_give_the_same_rows(sample, built, tmp_path):
    repo1, _ = built
    # The parent has used torch's thread pool (forked workers must not wait on it).
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.rand(1 << 20).sum()
        summary = build_real(sample, tmp_path / "repo2", size=SIZE, num_proc=2)
    finally:
        torch.set_num_threads(threads)
    assert summary["rows"] == {"train": 4, "validation": 2}

    def rows(repo):
        files = sorted((repo / "data" / "stitched").glob("*.parquet"))
        return sorted((r for f in files for r in pq.read_table(f).to_pylist()), key=lambda r: r["id"])

    assert rows(repo1) == rows(tmp_path / "repo2")


def test_the_config_is_the_interface_and_the_keyword_form_maps_onto_it(sample, tmp_path):
    old = config_for(sample, config="pairs", size=(32, 64), prompts=tmp_path / "p.txt", clip_model="m", on_error="skip")
    new = WaymoStitchedConfig(name="pairs", source_dir=str(sample), size=(32, 64), prompts_file=str(tmp_path / "p.txt"),
                              caption_model="m", on_error="skip")
    assert old == new and recorded_settings(old) == recorded_settings(new)
    with pytest.raises(TypeError, match="settings go into the config, got size"):
        build_real(new, tmp_path / "x", size=(32, 64))
    with pytest.raises(ValueError, match="num_proc \\(--num-proc\\) must be at least 1, got 0"):
        build_real(new, tmp_path / "x", num_proc=0)
    assert not (tmp_path / "x").exists()
