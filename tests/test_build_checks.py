"""Builder input checks on segments made by the sample maker and then broken on purpose."""

from __future__ import annotations

import math
import os
import shutil
import stat

import pytest

from streetsynth import repo, schema
from streetsynth.builders.frames import FrameError
from streetsynth.builders.waymo import build_real
from streetsynth.builders.waymo_v1 import read_frames
from streetsynth.builders.sample import make_sample
from streetsynth.tfrecord import write_tfrecord

VIEW = (96, 144)
SIZE = (64, 160)
FRONT = 1


@pytest.fixture()
def sample(tmp_path):
    make_sample(tmp_path / "sample", segments=2, frames=3, seed=0, view_size=VIEW)
    return tmp_path / "sample"


def _train_file(sample):
    (path,) = sorted((sample / "training").glob("*.tfrecord"))
    return path


def _rewrite(path, edit):
    """Rewrite a segment file with ``edit(index, frame)`` applied to each Frame proto (None drops it)."""
    frames = [f for _, f in read_frames(path)]
    out = []
    for i, frame in enumerate(frames):
        result = edit(i, frame)
        out += result if isinstance(result, list) else [result]
    write_tfrecord(path, [f.SerializeToString() for f in out if f is not None])


def _front_calibration(frame):
    return next(c for c in frame.context.camera_calibrations if c.name == FRONT)


@pytest.mark.parametrize("name,break_it,message", [
    ("cu nan", lambda c: c.intrinsic.__setitem__(2, math.nan), "principal point"),
    ("fu zero", lambda c: c.intrinsic.__setitem__(0, 0.0), "focal lengths"),
    ("fu negative", lambda c: c.intrinsic.__setitem__(0, -500.0), "focal lengths"),
    ("fu inf", lambda c: c.intrinsic.__setitem__(0, math.inf), "focal lengths"),
    ("extrinsic nan", lambda c: c.extrinsic.transform.__setitem__(0, math.nan), "not finite"),
    ("not a rotation", lambda c: c.extrinsic.transform.__setitem__(0, 2.0), "orthonormal"),
])
def test_bad_calibration_is_a_counted_skip_or_a_frame_error(sample, tmp_path, name, break_it, message):
    path = _train_file(sample)

    def edit(i, frame):
        if i == 1:
            break_it(_front_calibration(frame))
        return frame

    _rewrite(path, edit)
    summary = build_real(sample, tmp_path / "real", size=SIZE, on_error="skip")
    assert summary["rows"]["train"] == 2 and summary["skipped"] == 1
    assert message in summary["reasons"][0] and str(path) in summary["reasons"][0]
    with pytest.raises(FrameError, match=message):
        build_real(sample, tmp_path / "real2", size=SIZE)


def test_size_is_bounded(sample, tmp_path):
    with pytest.raises(ValueError, match="size must lie between 16x16 and 8192x8192"):
        build_real(sample, tmp_path / "real", size=(100000, 100000), on_error="skip")


def test_duplicate_frames_are_counted_and_skipped(sample, tmp_path):
    path = _train_file(sample)
    _rewrite(path, lambda i, frame: [frame, frame] if i == 0 else frame)
    summary = build_real(sample, tmp_path / "real", size=SIZE)
    assert summary["rows"]["train"] == 3 and summary["skipped"] == 1 and "duplicate frame id" in summary["reasons"][0]
    ids = [r["id"] for r in repo.load_split(tmp_path / "real", schema.STITCHED, "train")]
    assert len(ids) == len(set(ids)) == 3


def test_a_segment_in_two_splits_is_refused_naming_both_files(sample, tmp_path):
    path = _train_file(sample)
    copy = sample / "validation" / "renamed_copy.tfrecord"
    shutil.copyfile(path, copy)
    with pytest.raises(ValueError, match="is in both") as exc:
        build_real(sample, tmp_path / "real", size=SIZE)
    assert str(path) in str(exc.value) and str(copy) in str(exc.value)


def test_empty_splits_are_errors_not_success(sample, tmp_path):
    path = _train_file(sample)
    _rewrite(path, lambda i, frame: (_front_calibration(frame).intrinsic.__setitem__(0, 0.0), frame)[1])
    with pytest.raises(ValueError, match="train ended with 0 rows; 3 frames skipped"):
        build_real(sample, tmp_path / "real", size=SIZE, on_error="skip")
    path.write_bytes(b"")  # a 0-byte segment
    with pytest.raises(ValueError, match="train ended with 0 rows"):
        build_real(sample, tmp_path / "real", size=SIZE, on_error="skip")
    assert not (tmp_path / "real").exists()


def test_out_inside_source_is_refused_and_stale_build_folders_are_removed(sample, tmp_path):
    with pytest.raises(ValueError, match="lies inside --source"):
        build_real(sample, sample / "real", size=SIZE)
    with pytest.raises(ValueError, match="lies inside --source"):
        build_real(sample, sample, size=SIZE)
    with pytest.raises(ValueError, match="lies inside --out"):
        build_real(sample, tmp_path, size=SIZE)
    dead = tmp_path / ".real.building-stitched-999999999"  # no process has this pid
    (dead / "cache").mkdir(parents=True)
    build_real(sample, tmp_path / "real", size=SIZE)
    assert not dead.exists()


def test_files_get_the_umask_mode(sample, tmp_path):
    old = os.umask(0o022)
    try:
        build_real(sample, tmp_path / "real", size=SIZE)
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "real").rglob("*") if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in files)
