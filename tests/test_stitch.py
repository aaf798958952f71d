"""Stitching and label carrying on views cut from one rendered sample scene (the ground truth is known).

The sample's cameras carry distortion, off-centre principal points, offsets, pitch/roll and
FRONT_RIGHT's darker exposure; the stitch is run on the surface the sample paints its world on, so
the panorama is the exact answer. Independent-renderer checks are in test_stitch_render.py.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from streetsynth.builders.frames import FrameError, record_from_frame
from streetsynth.builders.stitch import CALIBRATION, REGISTRATION, covered_rectangle, make_geometry, psnr, stitch
from streetsynth.builders.stitch_labels import BOTH, box_instances, carry_boxes, panoptic_instances, stitched_instances
from streetsynth.camera import yaw_matrix
from streetsynth.instances import boxes_from_masks
from streetsynth.builders.sample import RIGHT_EXPOSURE, SCENE_SURFACE, camera_objects, render_scene, scene_to_frame

VIEW = (160, 240)
SEED = 3
#: JPEG-free views, bilinear twice (render + stitch), noise of sigma 4, gain estimated: about 33 dB measured.
MIN_PSNR = 30.0


@pytest.fixture(scope="module")
def scene():
    return render_scene(SEED, VIEW)


@pytest.fixture(scope="module")
def big_scene():
    """Registration needs the features of a larger view (the overlap is only 8.4 degrees wide)."""
    return render_scene(SEED, (320, 480))


def _stitch(scene, front_cam="calib", right_cam="calib", size=None, **kw):
    cams = scene.cameras
    return stitch(scene.views["FRONT"], scene.views["FRONT_RIGHT"],
                  cams["FRONT"] if front_cam == "calib" else front_cam,
                  cams["FRONT_RIGHT"] if right_cam == "calib" else right_cam, size=size, surface=SCENE_SURFACE, **kw)


def _truth(scene, st, image=None):
    x0, y0, x1, y1 = st.geometry.crop
    return (scene.panorama if image is None else image)[y0:y1, x0:x1]


def _areas(st):
    f, r = st.geometry.valid["FRONT"], st.geometry.valid["FRONT_RIGHT"]
    return f & r, (f | r) & ~(f & r)


def _shared_id(scene):
    f, r = (set(camera_objects(scene.view_ids[n], scene.classes)[0]) for n in ("FRONT", "FRONT_RIGHT"))
    shared = sorted(f & r)
    assert shared, "the scene must hold an object both cameras see"
    return shared[0]


def test_calibrated_stitch_recovers_the_scene(scene):
    st = _stitch(scene)
    overlap, single = _areas(st)
    assert st.method == CALIBRATION
    truth = _truth(scene, st)
    assert st.image.shape == truth.shape
    assert psnr(st.image, truth, overlap) > MIN_PSNR
    assert psnr(st.image, truth, single) > MIN_PSNR
    assert (overlap | single).all()  # the crop leaves no uncovered corner
    np.testing.assert_allclose(st.gain, 1.0 / np.asarray(RIGHT_EXPOSURE), atol=0.03)
    g = st.geometry
    assert abs(g.yaw_deg - (-42.0)) < 1e-3
    assert overlap[:, : g.right_x0].sum() == 0 and overlap[:, g.front_x1 :].sum() == 0


def test_without_gain_the_right_side_keeps_its_exposure(scene):
    st = _stitch(scene, gain=False)
    _, single = _areas(st)
    right_only = single & st.geometry.valid["FRONT_RIGHT"]
    ratio = st.image[right_only].mean(axis=0) / _truth(scene, st)[right_only].mean(axis=0)
    np.testing.assert_allclose(ratio, RIGHT_EXPOSURE, atol=0.03)
    assert st.overlap_error > 3 * _stitch(scene).overlap_error


def test_uncropped_canvas_marks_its_corners_uncovered(scene):
    st = _stitch(scene, crop=False)
    seen = st.geometry.valid["FRONT"] | st.geometry.valid["FRONT_RIGHT"]
    assert not seen.all() and (st.image[~seen] == 0).all()
    assert st.image.shape[1] > _stitch(scene).image.shape[1]


def test_covered_rectangle_is_the_largest():
    valid = np.zeros((6, 9), bool)
    valid[1:5, 0:4] = True  # 4x4 = 16
    valid[2:4, 0:9] = True  # 2x9 = 18
    assert covered_rectangle(valid) == (0, 2, 9, 4)


def test_covered_rectangle_matches_brute_force_on_random_areas():
    rng = np.random.default_rng(0)
    for _ in range(40):
        h, w = rng.integers(3, 11, 2)
        valid = rng.random((h, w)) < rng.uniform(0.5, 0.95)
        best = max(((y1 - y0) * (x1 - x0) for y0 in range(h) for y1 in range(y0 + 1, h + 1)
                    for x0 in range(w) for x1 in range(x0 + 1, w + 1) if valid[y0:y1, x0:x1].all()), default=0)
        x0, y0, x1, y1 = covered_rectangle(valid)
        if best:
            assert valid[y0:y1, x0:x1].all() and (y1 - y0) * (x1 - x0) == best


@pytest.mark.parametrize("size,distortion", [((96, 192), None), ((41, 333), None), ((41, 333), (0.3, 0.1, 0.0, 0.0, 0.0))])
def test_geometry_equals_the_mapping_evaluated_on_every_canvas_pixel(scene, size, distortion):
    # The geometry computes each view only over the columns it reaches, found on sparse rows first; the
    # answer must be the whole canvas's, also where a distorted view's edge bulges out between those rows.
    cams = {n: c if distortion is None else replace(c, distortion=distortion) for n, c in scene.cameras.items()}
    g = make_geometry(CALIBRATION, cams, size, SCENE_SURFACE)
    ys, xs = np.mgrid[0 : size[0], 0 : size[1]].astype(np.float64)
    for name, vm in g.views.items():
        u, v = vm.canvas_to_view(xs, ys)
        ok = np.isfinite(u) & np.isfinite(v) & (u >= -0.5) & (u <= vm.cam.width - 0.5) & (v >= -0.5) & (v <= vm.cam.height - 0.5)
        np.testing.assert_array_equal(g.valid[name], ok)
        c0, c1 = g.cols[name]
        assert ok[:, :c0].sum() == ok[:, c1:].sum() == 0 and ok[:, c0].any() and ok[:, c1 - 1].any()
        np.testing.assert_array_equal(g.maps[name][0], np.where(ok, u, -1e4)[:, c0:c1].astype(np.float32))


def test_weights_feather_linearly_and_sum_to_one(scene):
    g = _stitch(scene).geometry
    w_f, w_r = g.weights["FRONT"], g.weights["FRONT_RIGHT"]
    seen = g.valid["FRONT"] | g.valid["FRONT_RIGHT"]
    np.testing.assert_allclose((w_f + w_r)[seen], 1.0, atol=1e-5)
    row = w_f[g.size[0] // 2, g.right_x0 : g.front_x1]
    assert row[0] > 0.9 and row[-1] < 0.1 and np.all(np.diff(row) <= 1e-6)


def test_slightly_wrong_calibration_falls_back_to_registration(big_scene):
    """A calibration 2 degrees off (beyond the trust threshold, within what a registration may correct)."""
    scene = big_scene
    r = scene.cameras["FRONT_RIGHT"]
    wrong = replace(r, rotation=yaw_matrix(np.radians(2.0)) @ r.rotation)
    st = _stitch(scene, right_cam=wrong)
    assert st.method == REGISTRATION
    assert abs(st.geometry.yaw_deg - (-42.0)) < 0.3
    overlap, single = _areas(st)
    truth = _truth(scene, st)
    assert psnr(st.image, truth, overlap) > MIN_PSNR - 4
    assert psnr(st.image, truth, single) > MIN_PSNR - 4


def test_missing_calibration_uses_registration():
    """Without calibrations the default pinhole camera stands in (lens distortion unknown)."""
    scene = render_scene(SEED, (320, 480), distortion=False, offsets=False, tilt=False)
    st = _stitch(scene, front_cam=None, right_cam=None)
    assert st.method == REGISTRATION
    assert abs(st.geometry.yaw_deg - (-42.0)) < 1.0


def test_unalignable_views_without_calibration_raise():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (*VIEW, 3), dtype=np.uint8)
    with pytest.raises(FrameError, match="cannot align"):
        stitch(a, np.zeros_like(a), None, None)


def test_image_size_must_match_calibration(scene):
    with pytest.raises(FrameError, match="calibration says"):
        stitch(scene.views["FRONT"][:100], scene.views["FRONT_RIGHT"], scene.cameras["FRONT"], scene.cameras["FRONT_RIGHT"])


def test_half_size_images_give_the_same_stitch(scene):
    import cv2

    full = _stitch(scene, size=(64, 192))
    half = {n: cv2.resize(scene.views[n], (VIEW[1] // 2, VIEW[0] // 2), interpolation=cv2.INTER_AREA) for n in scene.views}
    st = stitch(half["FRONT"], half["FRONT_RIGHT"], scene.cameras["FRONT"], scene.cameras["FRONT_RIGHT"], size=(64, 192),
                surface=SCENE_SURFACE)
    assert st.method == CALIBRATION and psnr(st.image, full.image) > 28


def test_output_size_rescales_the_canvas_and_the_point_mapping(scene):
    full = _stitch(scene)
    small = _stitch(scene, size=(80, 300))
    assert small.image.shape == (80, 300, 3)
    us, vs = np.array([10.0, 120.0, 230.0]), np.array([20.0, 80.0, 150.0])
    xf, yf = full.geometry.to_canvas("FRONT", us, vs)
    xs, ys = small.geometry.to_canvas("FRONT", us, vs)
    h, w = full.image.shape[:2]
    np.testing.assert_allclose((xs + 0.5) * w / 300, xf + 0.5, atol=1e-6)
    np.testing.assert_allclose((ys + 0.5) * h / 80, yf + 0.5, atol=1e-6)


def _gt_box(scene, st, gid):
    return boxes_from_masks((_truth(scene, st, scene.ids) == gid)[None])[0]


def test_box_lands_on_its_object(scene):
    st = _stitch(scene)
    gids, classes, boxes = camera_objects(scene.view_ids["FRONT"], scene.classes)
    only_front = [i for i, g in enumerate(gids) if not (scene.view_ids["FRONT_RIGHT"] == g).any()]
    assert only_front
    for i in only_front:
        carried = carry_boxes(st.geometry, "FRONT", boxes[i : i + 1])[0]
        np.testing.assert_allclose(carried, _gt_box(scene, st, gids[i]), atol=2.0)


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
    shared = _shared_id(scene)
    np.testing.assert_allclose(inst.boxes[merged[0]], _gt_box(scene, st, shared), atol=2.0)
    assert inst.classes[merged[0]] == scene.classes[shared]


def test_panoptic_masks_join_by_global_id_and_land_on_the_object(scene):
    st = _stitch(scene)
    inst = stitched_instances(_record(scene, panoptic=True), st.geometry)
    assert inst.masks is not None
    ids = _truth(scene, st, scene.ids)
    gt_ids = set(np.unique(ids)) - {0}
    assert len(inst) == len(gt_ids)
    shared = [i for i, s in enumerate(inst.sources) if s == BOTH]
    assert len(shared) >= 1
    gt = ids == _shared_id(scene)
    best = max((inst.masks[i] & gt).sum() / (inst.masks[i] | gt).sum() for i in shared)
    assert best > 0.85
    row = inst.to_row()
    assert row["instance_mask"] is not None and len(row["objects"]) == len(inst)


def test_empty_scene_gives_no_objects():
    scene = render_scene(SEED, VIEW, n_vehicles=0, n_pedestrians=0)
    st = _stitch(scene)
    for panoptic in (False, True):
        inst = stitched_instances(_record(scene, panoptic), st.geometry)
        assert len(inst) == 0 and inst.to_row()["objects"] == []
    assert len(panoptic_instances(_record(scene, True), st.geometry)) == 0
