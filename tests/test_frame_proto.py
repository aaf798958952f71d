"""Our Frame schema against the official waymo_open_dataset protos, both ways."""

from __future__ import annotations

import pytest

from streetsynth.proto import frame as ours
from streetsynth.builders.sample import render_scene, scene_to_frame

official = pytest.importorskip("waymo_open_dataset.dataset_pb2", reason="install waymo-open-dataset-tf-2-12-0 --no-deps")
label_pb2 = pytest.importorskip("waymo_open_dataset.label_pb2")


def test_ours_parses_as_official():
    frame = scene_to_frame(render_scene(3, (64, 96)), "seg", 1234, panoptic=True)
    off = official.Frame()
    off.ParseFromString(frame.SerializeToString())
    assert off.context.name == "seg" and off.timestamp_micros == 1234
    assert off.context.stats.time_of_day == frame.context.stats.time_of_day
    assert [c.name for c in off.context.camera_calibrations] == [official.CameraName.FRONT, official.CameraName.FRONT_RIGHT]
    assert list(off.context.camera_calibrations[1].intrinsic) == list(frame.context.camera_calibrations[1].intrinsic)
    assert list(off.context.camera_calibrations[1].extrinsic.transform) == list(frame.context.camera_calibrations[1].extrinsic.transform)
    assert off.images[0].image == frame.images[0].image
    seg_o, seg_s = off.images[1].camera_segmentation_label, frame.images[1].camera_segmentation_label
    assert seg_o.panoptic_label == seg_s.panoptic_label and seg_o.panoptic_label_divisor == 1000
    assert [(m.local_instance_id, m.global_instance_id) for m in seg_o.instance_id_to_global_id_mapping] == \
        [(m.local_instance_id, m.global_instance_id) for m in seg_s.instance_id_to_global_id_mapping]
    lo, ls = off.camera_labels[0].labels, frame.camera_labels[0].labels
    assert len(lo) == len(ls) > 0
    for a, b in zip(lo, ls):
        assert (a.type, a.id) == (b.type, b.id)
        assert (a.box.center_x, a.box.center_y, a.box.length, a.box.width) == (b.box.center_x, b.box.center_y, b.box.length, b.box.width)
    # And back: the official message re-serialised parses identically in ours.
    again = ours.Frame()
    again.ParseFromString(off.SerializeToString())
    assert again == frame


def test_official_parses_as_ours_and_unknown_fields_are_ignored():
    off = official.Frame(timestamp_micros=77)
    off.context.name = "segment-x"
    off.context.stats.weather = "rain"
    off.context.stats.laser_object_counts.add(type=label_pb2.Label.TYPE_VEHICLE, count=3)  # unknown to us
    cal = off.context.camera_calibrations.add(name=official.CameraName.FRONT_RIGHT, width=1920, height=1280)
    cal.intrinsic.extend([2000.0, 2000.0, 960.0, 640.0, 0.1, 0, 0, 0, 0])
    cal.extrinsic.transform.extend([1.0 if i % 5 == 0 else 0.0 for i in range(16)])
    cal.rolling_shutter_direction = 2  # unknown to us
    img = off.images.add(name=official.CameraName.FRONT, image=b"\xff\xd8\xff", pose_timestamp=1.5)
    img.camera_segmentation_label.panoptic_label_divisor = 1000
    lab = off.camera_labels.add(name=official.CameraName.FRONT).labels.add(type=label_pb2.Label.TYPE_PEDESTRIAN, id="p1")
    lab.box.center_x, lab.box.center_y, lab.box.length, lab.box.width = 10.0, 20.0, 4.0, 8.0
    lab.num_lidar_points_in_box = 9  # unknown to us
    off.lasers.add(name=1)  # unknown to us
    f = ours.Frame()
    f.ParseFromString(off.SerializeToString())
    assert f.timestamp_micros == 77 and f.context.name == "segment-x" and f.context.stats.weather == "rain"
    assert f.context.camera_calibrations[0].name == 3 and f.context.camera_calibrations[0].width == 1920
    assert list(f.context.camera_calibrations[0].intrinsic)[:4] == [2000.0, 2000.0, 960.0, 640.0]
    assert f.images[0].image == b"\xff\xd8\xff" and f.images[0].camera_segmentation_label.panoptic_label_divisor == 1000
    box = f.camera_labels[0].labels[0].box
    assert f.camera_labels[0].labels[0].type == ours.TYPE_PEDESTRIAN and (box.center_x, box.length, box.width) == (10.0, 4.0, 8.0)


def test_field_numbers_match_official():
    """Every field we declare has the official number and a compatible wire type."""
    pairs = {
        ours.Frame: official.Frame, ours.Context: official.Context, ours.CameraCalibration: official.CameraCalibration,
        ours.CameraImage: official.CameraImage, ours.CameraLabels: official.CameraLabels,
        ours.CameraSegmentationLabel: official.CameraSegmentationLabel, ours.Label: label_pb2.Label,
        ours.Box: label_pb2.Label.Box, ours.Transform: official.Transform,
    }
    enum_or_int = {14, 5}  # TYPE_ENUM and TYPE_INT32 share the varint wire encoding
    for mine, theirs in pairs.items():
        for f in mine.DESCRIPTOR.fields:
            o = theirs.DESCRIPTOR.fields_by_name[f.name]
            assert o.number == f.number, (mine.DESCRIPTOR.name, f.name)
            assert o.type == f.type or {o.type, f.type} <= enum_or_int, (mine.DESCRIPTOR.name, f.name)
