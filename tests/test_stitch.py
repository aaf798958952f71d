"""Stitching and label carrying on views cut from one rendered scene (the ground truth is known)."""

from __future__ import annotations

import numpy as np
import pytest

from streetsynth.builders.frames import FrameError, record_from_frame
from streetsynth.builders.stitch import CALIBRATION, HOMOGRAPHY, psnr, stitch
from streetsynth.builders.stitch_labels import BOTH, box_instances, carry_boxes, panoptic_instances, stitched_instances
from streetsynth.camera import PinholeCamera, yaw_matrix
from streetsynth.instances import boxes_from_masks
from streetsynth.builders.sample import camera_objects, render_scene, scene_to_frame

VIEW = (160, 240)
#: Seed 3 renders a pedestrian (global id 5) that both cameras see, crossing the blend zone.
SEED, SHARED_ID = 3, 5
#: JPEG-free views, bilinear twice (render + stitch) and noise of sigma 4: about 36 dB measured.
MIN_PSNR = 32.0


@pytest.fixture(scope="module")
def scene():
    return render_scene(SEED, VIEW)


def _stitch(scene, front_cam="calib", right_cam="calib", size=None):
    cams = scene.cameras
    return stitch(scene.views["FRONT"], scene.views["FRONT_RIGHT"],
                  cams["FRONT"] if front_cam == "calib" else front_cam,
                  cams["FRONT_RIGHT"] if right_cam == "calib" else right_cam,
                  size=size or scene.panorama.shape[:2])


def _areas(st):
    f, r = st.geometry.valid["FRONT"], st.geometry.valid["FRONT_RIGHT"]
    return f & r, (f | r) & ~(f & r)


def test_calibrated_stitch_recovers_the_scene(scene):
    st = _stitch(scene)
    overlap, single = _areas(st)
    assert st.method == CALIBRATION
    assert st.image.shape == scene.panorama.shape
    assert psnr(st.image, scene.panorama, overlap) > MIN_PSNR
    assert psnr(st.image, scene.panorama, single) > MIN_PSNR
    assert (overlap | single).mean() > 0.9
    g = st.geometry
    assert abs(g.yaw_deg - (-42.0)) < 1e-3
    # The blend zone is the calibrated angular overlap, in canvas pixels.
    assert abs((g.front_x1 - g.right_x0) - np.radians(scene.overlap_deg) * scene.cylinder.f) <= 2
    assert overlap[:, : g.right_x0].sum() == 0 and overlap[:, g.front_x1 :].sum() == 0


def test_weights_feather_linearly_and_sum_to_one(scene):
    g = _stitch(scene).geometry
    w_f, w_r = g.weights["FRONT"], g.weights["FRONT_RIGHT"]
    seen = g.valid["FRONT"] | g.valid["FRONT_RIGHT"]
    np.testing.assert_allclose((w_f + w_r)[seen], 1.0, atol=1e-5)
    row = w_f[g.size[0] // 2, g.right_x0 : g.front_x1]
    assert row[0] > 0.9 and row[-1] < 0.1 and np.all(np.diff(row) <= 1e-6)


def test_wrong_calibration_falls_back_to_homography(scene):
    r = scene.cameras["FRONT_RIGHT"]
    wrong = PinholeCamera(r.fu, r.fv, r.cu, r.cv, r.width, r.height, yaw_matrix(np.radians(-30.0)))
    st = _stitch(scene, right_cam=wrong)
    assert st.method == HOMOGRAPHY
    assert abs(st.geometry.yaw_deg - (-42.0)) < 0.5
    overlap, single = _areas(st)
    assert psnr(st.image, scene.panorama, overlap) > MIN_PSNR - 4
    assert psnr(st.image, scene.panorama, single) > MIN_PSNR - 4


def test_missing_calibration_uses_homography(scene):
    st = _stitch(scene, front_cam=None, right_cam=None)
    assert st.method == HOMOGRAPHY
    assert abs(st.geometry.yaw_deg - (-42.0)) < 0.5


def test_unalignable_views_without_calibration_raise():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (*VIEW, 3), dtype=np.uint8)
    with pytest.raises(FrameError, match="cannot align"):
        stitch(a, np.zeros_like(a), None, None)


def test_image_size_must_match_calibration(scene):
    with pytest.raises(FrameError, match="calibration says"):
        stitch(scene.views["FRONT"][:100], scene.views["FRONT_RIGHT"], scene.cameras["FRONT"], scene.cameras["FRONT_RIGHT"])


def test_output_size_rescales_the_canvas_and_the_point_mapping(scene):
    full = _stitch(scene)
    small = _stitch(scene, size=(80, 300))
    assert small.image.shape == (80, 300, 3)
    us, vs = np.array([10.0, 120.0, 230.0]), np.array([20.0, 80.0, 150.0])
    xf, yf = full.geometry.to_canvas("FRONT", us, vs)
    xs, ys = small.geometry.to_canvas("FRONT", us, vs)
    h, w = scene.panorama.shape[:2]
    np.testing.assert_allclose((xs + 0.5) * w / 300, xf + 0.5, atol=1e-6)
    np.testing.assert_allclose((ys + 0.5) * h / 80, yf + 0.5, atol=1e-6)


def _gt_box(scene, gid):
    return boxes_from_masks((scene.ids == gid)[None])[0]


def test_box_lands_on_its_object(scene):
    st = _stitch(scene)
    gids, classes, boxes = camera_objects(scene.view_ids["FRONT"], scene.classes)
    only_front = [i for i, g in enumerate(gids) if not (scene.view_ids["FRONT_RIGHT"] == g).any()]
    assert only_front
    for i in only_front:
        carried = carry_boxes(st.geometry, "FRONT", boxes[i : i + 1])[0]
        np.testing.assert_allclose(carried, _gt_box(scene, gids[i]), atol=2.0)


def _record(scene, panoptic):
    return record_from_frame(scene_to_frame(scene, "seg", 1, panoptic=panoptic), source="test")


def test_object_seen_by_both_cameras_comes_out_once_from_boxes(scene):
    st = _stitch(scene)
    inst = box_instances(_record(scene, panoptic=False), st.geometry)
    seen = set(camera_objects(scene.view_ids["FRONT"], scene.classes)[0]) | set(
        camera_objects(scene.view_ids["FRONT_RIGHT"], scene.classes)[0])
    assert len(inst) == len(seen)
    merged = [i for i, s in enumerate(inst.sources) if s == BOTH]
    assert len(merged) == 1
    np.testing.assert_allclose(inst.boxes[merged[0]], _gt_box(scene, SHARED_ID), atol=2.0)
    assert inst.classes[merged[0]] == scene.classes[SHARED_ID]


def test_panoptic_masks_join_by_global_id_and_land_on_the_object(scene):
    st = _stitch(scene)
    inst = stitched_instances(_record(scene, panoptic=True), st.geometry)
    assert inst.masks is not None
    gt_ids = set(np.unique(scene.ids[st.geometry.valid["FRONT"] | st.geometry.valid["FRONT_RIGHT"]])) - {0}
    assert len(inst) == len(gt_ids)
    shared = [i for i, s in enumerate(inst.sources) if s == BOTH]
    assert len(shared) == 1
    gt = scene.ids == SHARED_ID
    mask = inst.masks[shared[0]]
    assert (mask & gt).sum() / (mask | gt).sum() > 0.85
    row = inst.to_row()
    assert row["instance_mask"] is not None and len(row["objects"]) == len(inst)


def test_empty_scene_gives_no_objects():
    scene = render_scene(SEED, VIEW, n_vehicles=0, n_pedestrians=0)
    st = _stitch(scene)
    for panoptic in (False, True):
        inst = stitched_instances(_record(scene, panoptic), st.geometry)
        assert len(inst) == 0 and inst.to_row()["objects"] == []
    assert len(panoptic_instances(_record(scene, True), st.geometry)) == 0
