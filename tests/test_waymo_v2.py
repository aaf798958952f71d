"""Waymo v2 Parquet: the reader gives the same frames, and the builder the same rows, as v1."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from streetsynth.builders import waymo_v1, waymo_v2
from streetsynth.builders.frames import FrameError
from streetsynth.builders.waymo import build_real, source_format
from streetsynth.builders.sample import make_sample
from streetsynth.repo import shard_files

VIEW = (96, 144)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("v1v2")
    make_sample(root / "v1", segments=2, frames=2, seed=7, view_size=VIEW, fmt="v1")
    make_sample(root / "v2", segments=2, frames=2, seed=7, view_size=VIEW, fmt="v2")
    return root / "v1", root / "v2"


def test_layout_is_detected(sources):
    v1, v2 = sources
    assert source_format(v1) == "v1" and source_format(v2) == "v2"
    files = waymo_v2.segment_files(v2)
    assert set(files) == {"train", "validation"} and all(f.parent.name == "camera_image" for fs in files.values() for f in fs)
    cols = pq.read_schema(files["train"][0].parent.parent / "camera_calibration" / files["train"][0].name).names
    assert "[CameraCalibrationComponent].intrinsic.f_u" in cols and "[CameraCalibrationComponent].extrinsic.transform" in cols


def test_v2_reader_matches_v1(sources):
    v1, v2 = sources
    for split in ("train", "validation"):
        a = [r for f in waymo_v1.segment_files(v1)[split] for r in waymo_v1.read_records(f)]
        b = [r for f in waymo_v2.segment_files(v2)[split] for r in waymo_v2.read_records(f)]
        assert [r.id for r in a] == [r.id for r in b] and len(a) == 2
        for ra, rb in zip(a, b):
            assert (ra.time_of_day, ra.location, ra.weather) == (rb.time_of_day, rb.location, rb.weather)
            for name in ("FRONT", "FRONT_RIGHT"):
                ca, cb = ra.cameras[name], rb.cameras[name]
                assert ca.image == cb.image and ca.calibration.width == cb.calibration.width
                np.testing.assert_allclose(ca.boxes, cb.boxes)
                np.testing.assert_array_equal(ca.types, cb.types)
                assert (ca.panoptic is None) == (cb.panoptic is None)
                if ca.panoptic is not None:
                    np.testing.assert_array_equal(ca.panoptic.label, cb.panoptic.label)
                    assert ca.panoptic.local_to_global == cb.panoptic.local_to_global


@pytest.mark.parametrize("config", ["stitched", "pairs"])
def test_v1_and_v2_build_the_same_rows(sources, tmp_path, config):
    """Row by row, everything equal: object order and instance ids too. The sample maker stores each
    camera's labels largest first (not in id order), so a reader keeping the stored order in one
    format and sorting in the other fails here."""
    v1, v2 = sources
    s1 = build_real(v1, tmp_path / "r1", config=config, size=(64, 160))
    s2 = build_real(v2, tmp_path / "r2", config=config, size=(64, 160))
    assert s1.rows == s2.rows == {"train": 2, "validation": 2} and s1.objects == s2.objects
    objects = "objects" if config == "stitched" else "objects_front"
    for split in ("train", "validation"):
        (f1,), (f2,) = (shard_files(tmp_path / r, config, split) for r in ("r1", "r2"))
        t1, t2 = pq.read_table(f1).to_pylist(), pq.read_table(f2).to_pylist()
        assert len(t1) == len(t2) == 2 and any(len(r[objects]) > 1 for r in t1)
        for a, b in zip(t1, t2):
            assert a == b


def test_missing_component_is_a_clear_error(sources, tmp_path):
    _, v2 = sources
    image = waymo_v2.segment_files(v2)["train"][0]
    (tmp_path / "camera_image").mkdir()
    (tmp_path / "camera_image" / image.name).write_bytes(image.read_bytes())
    with pytest.raises(FrameError, match="missing component camera_calibration: no file .*camera_calibration"):
        list(waymo_v2.read_records(tmp_path / "camera_image" / image.name))


def test_empty_write_gives_no_files(tmp_path):
    assert waymo_v2.write_v2([], tmp_path) == []
