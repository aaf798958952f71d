"""The sample maker: real segment files whose geometry and labels match what they claim."""

from __future__ import annotations

import numpy as np
import pytest

from streetsynth.builders.frames import FrameError, decode_image
from streetsynth.builders.waymo_v1 import read_records, segment_files
from streetsynth.camera import cylinder_for
from streetsynth.proto.frame import Frame
from streetsynth.builders.sample import RIGHT_EXPOSURE, SCENE_SURFACE, make_sample, render_scene, scene_to_frame
from streetsynth.tfrecord import ReadStats, write_tfrecord


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def _overlap_pixels(tmp_path, exposure):
    make_sample(tmp_path, segments=1, frames=1, seed=5, exposure=exposure)
    rec = next(read_records(segment_files(tmp_path)["train"][0]))
    front, right = rec.cameras["FRONT"], rec.cameras["FRONT_RIGHT"]
    fc, rc = front.calibration, right.calibration
    # Map every FRONT pixel into FRONT_RIGHT through the surface the sample paints its world on.
    cyl = cylinder_for([fc, rc], surface=SCENE_SURFACE)
    vs, us = np.mgrid[0 : fc.height, 0 : fc.width].astype(np.float64)
    u, v = cyl.to_pixels(rc, *cyl.from_pixels(fc, us, vs))
    inside = (u >= 1) & (u <= rc.width - 2) & (v >= 1) & (v <= rc.height - 2)
    return front.decode(), right.decode(), fc, rc, u, v, inside


def test_claimed_overlap_is_the_overlap_in_the_pixels(tmp_path):
    """Pixels the calibrations (distortion, offsets, tilt) say both cameras see hold the same scene."""
    f_img, r_img, fc, rc, u, v, inside = _overlap_pixels(tmp_path, exposure=False)
    assert fc.distorted and fc.translation != rc.translation and fc.cu != fc.width / 2
    cols = np.flatnonzero(inside.any(axis=0))
    # About 2 x 25.2 - 42 = 8.4 degrees of overlap (distortion and the off-centre principal points move it a little).
    assert cols.max() == fc.width - 1 and 6.0 < np.degrees((fc.width - cols.min()) / fc.fu) < 11.0
    ui, vi = np.round(u[inside]).astype(int), np.round(v[inside]).astype(int)
    assert _psnr(f_img[inside], r_img[vi, ui]) > 24  # same scene, up to JPEG and resampling
    # And pixels outside the claimed overlap do not match: the views really differ there.
    shifted = r_img[vi, np.clip(ui + 25, 0, rc.width - 1)]
    assert _psnr(f_img[inside], shifted) < _psnr(f_img[inside], r_img[vi, ui]) - 3


def test_front_right_is_exposed_differently_by_default(tmp_path):
    f_img, r_img, fc, rc, u, v, inside = _overlap_pixels(tmp_path, exposure=True)
    ui, vi = np.round(u[inside]).astype(int), np.round(v[inside]).astype(int)
    ratio = r_img[vi, ui].astype(np.float64).mean(axis=0) / f_img[inside].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(ratio, RIGHT_EXPOSURE, atol=0.02)


def test_boxes_and_panoptic_labels_match_the_rendered_objects():
    scene = render_scene(11, (96, 144))
    frame = scene_to_frame(scene, "seg", 1, panoptic=True)
    from streetsynth.builders.frames import record_from_frame

    rec = record_from_frame(frame)
    for name, cam in rec.cameras.items():
        ids = scene.view_ids[name]
        pan = cam.panoptic
        local = pan.instance
        mapped = np.vectorize(lambda i: pan.local_to_global.get(int(i), 0))(local) if local.max() else local
        assert np.array_equal(mapped, ids)  # local ids + mapping give the global instance image
        assert (pan.local_to_global.keys() != set(pan.local_to_global.values())) or len(pan.local_to_global) <= 1
        for box, lid in zip(cam.boxes, cam.label_ids):
            gid = int(lid.rsplit("-", 1)[1])
            ys, xs = np.nonzero(ids == gid)
            assert np.allclose(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def test_sample_is_deterministic(tmp_path):
    a = make_sample(tmp_path / "a", segments=2, frames=2, seed=3, view_size=(64, 96))
    b = make_sample(tmp_path / "b", segments=2, frames=2, seed=3, view_size=(64, 96))
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert [p.parent.name for p in a] == ["training", "validation"]
    c = make_sample(tmp_path / "c", segments=2, frames=2, seed=4, view_size=(64, 96))
    assert a[0].read_bytes() != c[0].read_bytes()


def test_full_waymo_size_views():
    scene = render_scene(0, (1280, 1920))
    assert scene.views["FRONT"].shape == (1280, 1920, 3)


def _frames(tmp_path):
    make_sample(tmp_path / "src", segments=1, frames=3, seed=1, view_size=(64, 96))
    frames = []
    for p in (tmp_path / "src").rglob("*.tfrecord"):
        from streetsynth.builders.waymo_v1 import read_frames

        frames = [f for _, f in read_frames(p)]
    return frames


def test_frame_without_front_right_and_non_jpeg(tmp_path):
    frames = _frames(tmp_path)
    no_right = Frame()
    no_right.CopyFrom(frames[1])
    del no_right.images[1]
    png = Frame()
    png.CopyFrom(frames[2])
    png.images[0].image = b"\x89PNG\r\n\x1a\n" + b"0" * 20
    path = tmp_path / "mixed.tfrecord"
    write_tfrecord(path, [frames[0].SerializeToString(), no_right.SerializeToString(), png.SerializeToString()])
    with pytest.raises(FrameError, match="no FRONT_RIGHT image"):
        list(read_records(path))
    stats = ReadStats()
    got = list(read_records(path, on_error="skip", stats=stats))
    assert len(got) == 1 and stats.skipped == 2 and stats.records == 1
    assert any("not a JPEG" in e and str(path) in e for e in stats.errors)


def test_garbage_payload_is_named(tmp_path):
    path = tmp_path / "garbage.tfrecord"
    write_tfrecord(path, [b"\xff\xfe\xfd garbage that is not a proto"])
    with pytest.raises(FrameError, match="not a Waymo Frame"):
        list(read_records(path))


def test_decode_image_error_is_clear():
    with pytest.raises(FrameError, match="not a decodable image"):
        decode_image(b"nope", what="camera FRONT")


def test_inspect_cli(tmp_path, capsys):
    from streetsynth.cli import main

    make_sample(tmp_path, segments=1, frames=2, seed=2, view_size=(64, 96))
    bad = next(tmp_path.rglob("*.tfrecord"))
    bad.write_bytes(bad.read_bytes()[:-10])  # truncate the last record
    assert main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "frames: 1" in out and "FRONT 64x96" in out and "skipped records: 1" in out and "truncated" in out
    assert main(["inspect", str(tmp_path / "nothing-here")]) == 2


def test_scene_with_no_objects_has_no_labels():
    scene = render_scene(0, (64, 96), n_vehicles=0, n_pedestrians=0)
    frame = scene_to_frame(scene, "empty", 1, panoptic=True)
    assert all(len(cl.labels) == 0 for cl in frame.camera_labels)
    assert scene.classes == {}


def test_flags_turn_each_part_of_the_real_camera_model_off(tmp_path):
    make_sample(tmp_path, segments=1, frames=1, seed=2, view_size=(64, 96), distortion=False, offsets=False, tilt=False)
    rec = next(read_records(segment_files(tmp_path)["train"][0]))
    fc, rc = rec.cameras["FRONT"].calibration, rec.cameras["FRONT_RIGHT"].calibration
    assert not fc.distorted and not rc.distorted
    assert fc.translation == rc.translation and (fc.cu, fc.cv) == (48.0, 32.0)
    assert np.allclose(rc.rotation[2], [0.0, 0.0, 1.0]) and np.allclose(fc.rotation, np.eye(3))
