"""Builder input checks on segments made by the sample maker and then broken on purpose."""

from __future__ import annotations

import math
import os
import re
import shutil
import stat

import cv2
import numpy as np
import pytest

from streetsynth import codec, repo, schema
from streetsynth.builders.frames import FrameError
from streetsynth.cli import main
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


# --- Calibrations, image sizes and boxes that cannot be true (issue 24 item 2) --------------------

RIGHT = 3


def _right(frame, field):
    """FRONT_RIGHT's calibration, image or labels in a Frame proto."""
    items = {"calibration": frame.context.camera_calibrations, "image": frame.images, "labels": frame.camera_labels}[field]
    return next(c for c in items if c.name == RIGHT)


def _half_size_image(frame):
    img = _right(frame, "image")
    pixels = codec.decode(img.image)
    img.image = codec.encode(cv2.resize(pixels, (pixels.shape[1] // 2, pixels.shape[0] // 2)), "jpeg")


def _set_box(field, value):
    return lambda frame: setattr(_right(frame, "labels").labels[0].box, field, value)


@pytest.mark.parametrize("name,break_it,message", [
    ("focal 1e12", lambda f: _right(f, "calibration").intrinsic.__setitem__(0, 1e12), "calibration: focal lengths"),
    ("focal 1e-9", lambda f: _right(f, "calibration").intrinsic.__setitem__(0, 1e-9), "calibration: focal lengths"),
    ("fv 1e12", lambda f: _right(f, "calibration").intrinsic.__setitem__(1, 1e12), "calibration: focal lengths: fu/fv"),
    ("k1 1e6", lambda f: _right(f, "calibration").intrinsic.__setitem__(4, 1e6), "calibration: distortion: k1=1e+06"),
    ("k2 nan", lambda f: _right(f, "calibration").intrinsic.__setitem__(5, math.nan), "distortion k1, k2, p1, p2, k3 must be finite"),
    ("translation 1e9", lambda f: _right(f, "calibration").extrinsic.transform.__setitem__(3, 1e9), "1e+09 m from the vehicle"),
    ("half-size image", _half_size_image, "image is 48x72 (HxW) but the calibration says 96x144"),
    ("negative length", _set_box("length", -5.0), "non-positive size"),
    ("zero width", _set_box("width", 0.0), "non-positive size"),
    ("nan size", _set_box("width", math.nan), "non-finite centre or size"),
    ("inf size", _set_box("length", math.inf), "non-finite centre or size"),
    ("nan centre", _set_box("center_x", math.nan), "non-finite centre or size"),
    ("centre off the image", _set_box("center_y", 5000.0), "centre outside the image"),
])
def test_implausible_front_right_is_a_counted_skip_never_a_row(sample, tmp_path, name, break_it, message):
    path = _train_file(sample)
    _rewrite(path, lambda i, frame: (break_it(frame) if i == 1 else None, frame)[1])
    summary = build_real(sample, tmp_path / "real", size=SIZE, on_error="skip")
    assert summary["rows"]["train"] == 2 and summary["skipped"] == 1
    reason = summary["reasons"][0]
    assert str(path) in reason and "camera FRONT_RIGHT" in reason and message in reason
    with pytest.raises(FrameError, match=re.escape(message)):
        build_real(sample, tmp_path / "real2", size=SIZE)


def test_empty_extrinsic_falls_back_to_registration_and_is_counted(sample, tmp_path):
    path = _train_file(sample)
    _rewrite(path, lambda i, frame: (_right(frame, "calibration").extrinsic.ClearField("transform") if i == 1 else None,
                                     frame)[1])
    summary = build_real(sample, tmp_path / "real", size=SIZE)
    assert summary["rows"]["train"] == 3 and summary["skipped"] == 0 and summary["uncalibrated"] == 1
    assert summary["methods"] == {"calibration": 5, "registration": 1}
    rows = repo.load_split(tmp_path / "real", schema.STITCHED, "train")
    assert [r["stitch"]["method"] for r in rows] == ["calibration", "registration", "calibration"]
    info = repo.read_info(tmp_path / "real")
    assert info["configs"]["stitched"]["uncalibrated"] == 1


def test_malformed_extrinsic_stays_an_error_naming_the_camera(sample, tmp_path):
    path = _train_file(sample)
    _rewrite(path, lambda i, frame: (_right(frame, "calibration").extrinsic.transform.__delitem__(slice(5, None))
                                     if i == 1 else None, frame)[1])
    with pytest.raises(FrameError, match="FRONT_RIGHT calibration: extrinsic has 5 values, need 16"):
        build_real(sample, tmp_path / "real", size=SIZE)


def test_zero_byte_segment_beside_good_ones_is_reported(sample, tmp_path, capsys):
    empty = sample / "training" / "segment-empty_with_camera_labels.tfrecord"
    empty.write_bytes(b"")
    summary = build_real(sample, tmp_path / "real", size=SIZE, on_error="skip")
    assert summary["rows"] == {"train": 3, "validation": 3} and summary["skipped"] == 0
    assert summary["unreadable"] == [f"{empty}: empty segment file (0 bytes, no frames)"]
    assert repo.read_info(tmp_path / "real")["configs"]["stitched"]["unreadable_segments"] == [  # no local path
        f"{sample.name}/training/{empty.name}: empty segment file (0 bytes, no frames)"]
    assert main(["build", "--source", str(sample), "--out", str(tmp_path / "cli"), "--size", "64x160",
                 "--on-error", "skip"]) == 0
    assert f"segment files with no frame: 1\n    - {empty}: empty segment file" in capsys.readouterr().out
    with pytest.raises(FrameError, match="empty segment file"):
        build_real(sample, tmp_path / "real2", size=SIZE)


def test_surface_radius_must_be_finite_and_positive(sample, tmp_path, capsys):
    for bad in (math.nan, math.inf, 0.0):
        with pytest.raises(ValueError, match="surface_radius \\(--surface-radius\\) must be a finite number of metres > 0"):
            build_real(sample, tmp_path / "real", size=SIZE, surface_radius=bad)
    with pytest.raises(SystemExit):
        main(["build", "--source", str(sample), "--out", str(tmp_path / "real"), "--surface-radius", "nan"])
    assert "argument --surface-radius: must be a finite number of metres > 0, got 'nan'" in capsys.readouterr().err
    assert not (tmp_path / "real").exists()


def test_jpeg_size_reads_baseline_and_progressive_headers():
    from streetsynth.builders.calibration_checks import jpeg_size

    img = np.zeros((37, 53, 3), np.uint8)
    for flags in ([], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]):
        ok, buf = cv2.imencode(".jpg", img, flags)
        assert ok and jpeg_size(buf.tobytes()) == (37, 53)
    assert jpeg_size(codec.encode(img, "png")) is None and jpeg_size(b"\xff\xd8\xff") is None


@pytest.mark.parametrize("name,intrinsic,size", [
    # published calibrations the bounds were not chosen on: KITTI raw camera 02 (2011_09_26), and a
    # Waymo FRONT camera as DESIGN.md describes it
    ("kitti 02", [959.791, 956.9251, 696.0217, 224.1806, -0.3691481, 0.1968681, 0.001353473, 0.0005677587, -0.06770705],
     (512, 1392)),
    ("waymo front", [2055.6, 2055.6, 939.7, 641.1, 0.04, -0.35, 0.0, 0.0, 0.0], (1280, 1920)),
])
def test_real_calibrations_pass_the_checks(name, intrinsic, size):
    from streetsynth.builders.calibration_checks import calibration_problem
    from streetsynth.builders.frames import camera_from_values

    extrinsic = [1, 0, 0, 1.5, 0, 1, 0, -0.1, 0, 0, 1, 2.1, 0, 0, 0, 1]  # Waymo's camera frame: x ahead; 2.6 m from the origin
    cam = camera_from_values("FRONT", intrinsic, extrinsic, size[1], size[0], name)
    assert calibration_problem(cam) is None
