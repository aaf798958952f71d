"""v2 Parquet segments made by the sample maker and then broken on purpose: every break is a clear
error naming the component and file, or a counted, reported skip; a broken calibration is treated as
in v1."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streetsynth.builders import waymo_v2
from streetsynth.builders.frames import FrameError
from streetsynth.builders.sample import make_sample
from streetsynth.builders.waymo import build_real

VIEW = (96, 144)
SIZE = (64, 160)
RIGHT = 3
EXTRINSIC = "[CameraCalibrationComponent].extrinsic.transform"


@pytest.fixture()
def v2(tmp_path):
    make_sample(tmp_path / "v2", segments=2, frames=3, seed=0, view_size=VIEW, fmt="v2")
    return tmp_path / "v2"


def _train(v2, component=waymo_v2.IMAGE):
    (image,) = waymo_v2.segment_files(v2)["train"]
    return waymo_v2.component_path(image, component)


def _edit_right_calibration(path, column, value):
    table = pq.read_table(path)
    rows = table.to_pylist()
    for r in rows:
        if r[waymo_v2.CAMERA] == RIGHT:
            r[column] = value
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)


def test_dropped_column_names_component_file_and_column(v2, tmp_path):
    path = _train(v2, waymo_v2.BOX)
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["[CameraBoxComponent].type"]), path)
    with pytest.raises(FrameError) as exc:
        build_real(v2, tmp_path / "real", size=SIZE)
    assert str(exc.value) == f"{path}: component camera_box lacks column(s) [CameraBoxComponent].type"


def test_missing_box_component_is_an_error_not_fewer_objects(v2, tmp_path):
    path = _train(v2, waymo_v2.BOX)
    path.unlink()
    with pytest.raises(FrameError, match=f"missing component camera_box: no file {path}"):
        build_real(v2, tmp_path / "real", size=SIZE)


def test_corrupt_parquet_names_the_file_and_is_reported_under_skip(v2, tmp_path):
    path = _train(v2, waymo_v2.CALIB)
    path.write_bytes(b"PAR1 this is not a parquet file PAR1")
    with pytest.raises(FrameError, match=f"{path}: component camera_calibration is not a readable Parquet file"):
        build_real(v2, tmp_path / "real", size=SIZE)
    image = _train(v2)
    image.write_bytes(b"garbage")
    (image.parent / "copy.parquet").write_bytes(b"")  # beside it: a 0-byte segment
    with pytest.raises(ValueError, match=f"train ended with 0 rows; 2 segment file\\(s\\) gave no frame, first: {image}"):
        build_real(v2, tmp_path / "real", size=SIZE, on_error="skip")


def test_empty_table_and_zero_byte_segment_beside_good_ones_are_reported(v2, tmp_path):
    good = _train(v2)
    for comp, columns in waymo_v2.COLUMNS.items():  # an empty segment: every component with 0 rows
        schema = pq.read_schema(waymo_v2.component_path(good, comp))
        pq.write_table(schema.empty_table(), waymo_v2.component_path(good, comp).with_name("empty_seg.parquet"))
    (good.parent / "zero_bytes.parquet").write_bytes(b"")
    summary = build_real(v2, tmp_path / "real", size=SIZE, on_error="skip")
    assert summary["rows"] == {"train": 3, "validation": 3} and summary["skipped"] == 0
    assert summary["unreadable"] == [f"{good.parent / 'empty_seg.parquet'}: empty segment file ({(good.parent / 'empty_seg.parquet').stat().st_size} bytes, no frames)",
                                     f"{good.parent / 'zero_bytes.parquet'}: empty segment file (0 bytes, no frames)"]
    with pytest.raises(FrameError, match="empty_seg.parquet: empty segment file"):
        build_real(v2, tmp_path / "real2", size=SIZE)


@pytest.mark.parametrize("column,value,message", [
    ("[CameraCalibrationComponent].intrinsic.f_u", 1e12, "camera FRONT_RIGHT calibration: focal lengths"),
    ("[CameraCalibrationComponent].intrinsic.k1", 1e6, "camera FRONT_RIGHT calibration: distortion"),
])
def test_implausible_v2_calibration_is_a_frame_error(v2, tmp_path, column, value, message):
    _edit_right_calibration(_train(v2, waymo_v2.CALIB), column, value)
    with pytest.raises(FrameError, match=message):
        build_real(v2, tmp_path / "real", size=SIZE)


def test_empty_v2_extrinsic_falls_back_to_registration(v2, tmp_path):
    _edit_right_calibration(_train(v2, waymo_v2.CALIB), EXTRINSIC, [])
    summary = build_real(v2, tmp_path / "real", size=SIZE, on_error="skip")
    # The calibration is per segment in v2: every train frame goes to registration; at 96x144 one
    # frame has too few feature matches and is a counted skip.
    assert summary["rows"] == {"train": 2, "validation": 3} and summary["uncalibrated"] == 2
    assert summary["methods"] == {"calibration": 3, "registration": 2} and summary["skipped"] == 1
    assert "calibration missing and too few feature matches" in summary["reasons"][0]


def test_inspect_reads_v2_folders_with_sizes_as_hxw(v2, capsys):
    from streetsynth.cli import main

    assert main(["inspect", str(v2)]) == 0
    out = capsys.readouterr().out
    train = _train(v2)
    boxes = pq.read_table(_train(v2, waymo_v2.BOX)).column(waymo_v2.BOX_TYPE).to_pylist()
    expected_labels = ", ".join(f"{n} {boxes.count(t)}" for t, n in ((2, "pedestrian"), (1, "vehicle")) if boxes.count(t))
    block = out.split(f"{train}\n")[1].split("\n  skipped records")[0]
    assert block == ("  frames: 3\n  cameras: FRONT (3), FRONT_RIGHT (3)\n"
                     "  image sizes (HxW): FRONT 96x144 (3), FRONT_RIGHT 96x144 (3)\n"
                     f"  labels: {expected_labels}\n  panoptic frames: 2")
    assert out.endswith("2 segment file(s), 0 skipped record(s)\n")
    _train(v2, waymo_v2.BOX).unlink()
    assert main(["inspect", str(v2)]) == 0
    assert f"missing component camera_box: no file {_train(v2, waymo_v2.BOX)}" in capsys.readouterr().out
