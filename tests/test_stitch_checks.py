"""Calibrations that cannot be true stop the frame (issue 24, item 2: the stitcher's geometric checks).

Each broken FRONT_RIGHT calibration below used to give a row (FRONT only, a smeared right half or a
solid colour) that said ``method: calibration``; now each is a FrameError naming the camera, which
``--on-error skip`` counts.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from streetsynth.builders.frames import FrameError
from streetsynth.builders.sample import SCENE_SURFACE, make_sample, render_scene
from streetsynth.builders.stitch import CALIBRATION, stitch
from streetsynth.builders.waymo import build_real
from streetsynth.builders.waymo_v1 import read_frames
from streetsynth.camera import yaw_matrix
from streetsynth.tfrecord import write_tfrecord

FRONT_RIGHT = 3


@pytest.fixture(scope="module")
def scene():
    return render_scene(3, (160, 240))


@pytest.fixture(scope="module")
def big_scene():
    return render_scene(3, (320, 480))


def _stitch(scene, right):
    return stitch(scene.views["FRONT"], scene.views["FRONT_RIGHT"], scene.cameras["FRONT"], right,
                  surface=SCENE_SURFACE, what="seg-1.tfrecord frame 7")


def _turned(cam, deg):
    return replace(cam, rotation=yaw_matrix(np.radians(deg)) @ cam.rotation)


@pytest.mark.parametrize("name,broken,message", [
    ("focal 1e12", lambda c: replace(c, fu=1e12, fv=1e12), "FRONT_RIGHT sees 0.0° horizontally"),
    ("focal 1e-9", lambda c: replace(c, fu=1e-9, fv=1e-9), "FRONT_RIGHT sees 180.0° horizontally"),
    ("k1 1e6", lambda c: replace(c, distortion=(1e6, 0.0, 0.0, 0.0, 0.0)), "FRONT_RIGHT sees 0.9° horizontally"),
    ("translation 1e9", lambda c: replace(c, translation=(1e9, 0.0, 0.0)), "FRONT_RIGHT's centre is 1e\\+09 m"),
    ("focal halved", lambda c: replace(c, fu=c.fu / 2, fv=c.fv / 2), "FRONT covers 14% and FRONT_RIGHT 100%"),
    ("yaw -20", lambda c: _turned(c, 22.0), "FRONT and FRONT_RIGHT overlap by 30.8° of azimuth"),
    ("yaw -62: no overlap", lambda c: _turned(c, -20.0), "FRONT covers 0% and FRONT_RIGHT 100% of the stitched canvas"),
])
def test_implausible_calibration_is_a_frame_error_naming_the_camera(scene, name, broken, message):
    with pytest.raises(FrameError, match=f"seg-1.tfrecord frame 7: implausible calibration: .*{message}"):
        _stitch(scene, broken(scene.cameras["FRONT_RIGHT"]))


def test_registration_far_from_the_calibration_is_a_frame_error(big_scene):
    """A calibration 8° off: within the plausible overlap, but the features put FRONT_RIGHT 8° away."""
    with pytest.raises(FrameError, match="implausible registration: FRONT_RIGHT's calibration disagrees with a feature registration by 8.2°"):
        _stitch(big_scene, _turned(big_scene.cameras["FRONT_RIGHT"], 8.0))


def test_the_true_calibration_passes(scene):
    assert _stitch(scene, scene.cameras["FRONT_RIGHT"]).method == CALIBRATION


def test_an_image_at_half_its_calibrated_size_stops_the_frame(scene):
    right = scene.views["FRONT_RIGHT"]
    half = cv2.resize(right, (right.shape[1] // 2, right.shape[0] // 2), interpolation=cv2.INTER_AREA)
    with pytest.raises(FrameError, match="camera FRONT_RIGHT image is 120x80 but its calibration says 240x160"):
        stitch(scene.views["FRONT"], half, scene.cameras["FRONT"], scene.cameras["FRONT_RIGHT"], surface=SCENE_SURFACE)


def test_the_builder_counts_an_implausible_calibration_as_a_skip(tmp_path):
    make_sample(tmp_path / "sample", segments=2, frames=3, seed=0, view_size=(96, 144))
    (path,) = sorted((tmp_path / "sample" / "training").glob("*.tfrecord"))
    frames = [f for _, f in read_frames(path)]
    calib = next(c for c in frames[1].context.camera_calibrations if c.name == FRONT_RIGHT)
    calib.intrinsic[0] = calib.intrinsic[1] = 1e12
    write_tfrecord(path, [f.SerializeToString() for f in frames])
    summary = build_real(tmp_path / "sample", tmp_path / "real", size=(64, 160), on_error="skip")
    assert summary["rows"]["train"] == 2 and summary["skipped"] == 1
    assert "camera FRONT_RIGHT calibration" in summary["reasons"][0] and "field of view" in summary["reasons"][0] and str(path) in summary["reasons"][0]
