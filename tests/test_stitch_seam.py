"""The seam on views from the independent ray-caster (tests/render_scene.py): no ghosts, objects whole.

Ghost share (issue 24): among overlap pixels where the two warped views disagree (|A - B| > 24 grey
levels, B after the exposure gain), the share where the output matches neither (|out - A| > 12 and
|out - B| > 12), i.e. a mix of two misaligned images. The labels are the renderer's own objects,
boxed in each camera, as Waymo's camera boxes are.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from render_scene import BUSY_BOXES, render_pair
from streetsynth.builders.frames import CameraView, FrameRecord
from streetsynth.builders.seam_cut import FEATHER_PX, MAX_BANDS, seam_weights
from streetsynth.builders.stitch import VIEWS, front_region, gain_lut, stitch
from streetsynth.builders.stitch_labels import BOTH, box_instances, carry_boxes, seam_objects
from streetsynth.instances import boxes_from_masks
from test_stitch_render import _camera

SCALE = 0.25
#: The issue's goal for realistic frames.
MAX_GHOST_SHARE = 0.10


def record(cams, ids, n: int) -> FrameRecord:
    """A frame whose camera boxes are the bounds of the ``n`` rendered objects (Waymo type 1, vehicle)."""
    cameras = {}
    for name in VIEWS:
        present = [k for k in range(1, n + 1) if (ids[name] == k).any()]
        boxes = boxes_from_masks(np.stack([ids[name] == k for k in present])) if present else np.zeros((0, 4), np.float32)
        cameras[name] = CameraView(name, b"", _camera(cams[name]), boxes, np.ones(len(present), np.int64),
                                   [str(k) for k in present])
    return FrameRecord("seg", 1, "", "", "", cameras)


@functools.cache
def _rendered(scale, boxes, **kw):
    return render_pair(scale, boxes=boxes, **kw)


def seam_stitch(scale=SCALE, blend="seam", boxes=BUSY_BOXES, **kw):
    """The stitch of the rendered street (by default the busy one) with its objects as the seam's keeps."""
    cams, views, ids = _rendered(scale, boxes, **kw)
    rec = record(cams, ids, len(boxes))
    st = stitch(views["FRONT"], views["FRONT_RIGHT"], _camera(cams["FRONT"]), _camera(cams["FRONT_RIGHT"]),
                keep=lambda g: seam_objects(rec, g), blend=blend)
    return st, rec, views, ids


def ghost_share(st, views) -> tuple[float, float]:
    """(ghost share, share of the overlap where the views disagree) of a stitch of RGB ``views``."""
    g = st.geometry
    a = g.warp_image("FRONT", views["FRONT"])
    b = g.warp_image("FRONT_RIGHT", views["FRONT_RIGHT"])
    lut = gain_lut(np.asarray(st.gain), 3)
    b = b if lut is None else cv2.LUT(b, lut)
    grey = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.int16) for x in (a, b, st.image)]
    both = g.valid["FRONT"] & g.valid["FRONT_RIGHT"]
    differ = both & (np.abs(grey[0] - grey[1]) > 24)
    ghost = differ & (np.abs(grey[2] - grey[0]) > 12) & (np.abs(grey[2] - grey[1]) > 12)
    return float(ghost.sum() / max(differ.sum(), 1)), float(differ.sum() / max(both.sum(), 1))


@pytest.mark.parametrize("variant", [dict(), dict(offsets=False, tilt=False)], ids=["everything", "distortion+exposure"])
def test_ghost_share_is_at_most_ten_percent(variant):
    """On the busy street the views disagree on 2-7 % of the overlap (the issue measured 4-9 % on
    realistic cameras); among those pixels at most 10 % may be a mix of the two."""
    st, _, views, _ = seam_stitch(**variant)
    share, differ = ghost_share(st, views)
    assert differ >= 0.02
    assert share <= MAX_GHOST_SHARE


def test_every_object_in_the_overlap_lies_inside_one_views_region():
    """Both copies of each object reaching the overlap (its pixels in either warped view, where both
    views see) lie where the output is wholly one view, feather included; the one view is the one
    that sees it best, or for objects occluding each other, the one that sees the group best. (An
    object wider than the overlap, as the vehicle here, cannot be whole from one view: outside the
    overlap only one view sees.)"""
    st, rec, views, ids = seam_stitch()
    g = st.geometry
    x0, x1 = g.overlap_cols
    side = np.zeros(g.size)  # FRONT_RIGHT's weight in the output
    side[:, x1:] = 1.0
    side[:, x0:x1] = seam_weights(st.seam, g.overlap)
    spans = {}
    for k in range(1, len(BUSY_BOXES) + 1):
        both_copies = sum((g.warp_labels(n, (ids[n] == k).astype(np.uint8)) > 0).astype(np.uint8) for n in VIEWS) > 0
        if both_copies.any():
            spans[k] = boxes_from_masks(both_copies[None])[0]
    touch = lambda a, b: a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]  # noqa: E731
    alone = {k for k in spans if not any(touch(spans[k], spans[j]) for j in spans if j != k)}
    assert alone  # some objects stand apart: their view is the one that sees them best
    checked = 0
    for k in range(1, len(BUSY_BOXES) + 1):
        warped = {n: g.warp_labels(n, (ids[n] == k).astype(np.uint8)) > 0 for n in VIEWS}
        pixels = (warped["FRONT"] | warped["FRONT_RIGHT"]) & g.valid["FRONT"] & g.valid["FRONT_RIGHT"]
        if not pixels.any():
            continue
        checked += 1
        weights = side[pixels]
        assert (weights == 0).all() or (weights == 1).all(), f"object {k} is cut by the seam"
        if warped["FRONT"].any() and warped["FRONT_RIGHT"].any() and k in alone:
            sizes = {n: carry_boxes(g, n, boxes_from_masks((ids[n] == k)[None])) for n in VIEWS}
            areas = {n: float(np.prod(sizes[n][0, 2:] - sizes[n][0, :2])) for n in VIEWS}
            assert (weights == 1).all() == (areas["FRONT_RIGHT"] > areas["FRONT"])
    assert checked >= 5  # the vehicle, pedestrians, poles and cyclist reaching the overlap


def test_object_seen_by_both_gets_the_box_of_its_pixels_in_the_output():
    """Each object both cameras box becomes one box bounding the pixels the output shows of it: each
    view's copy on that view's side of the seam (within 2.5 px at 1/4 size, the box-corner bow)."""
    st, rec, views, ids = seam_stitch()
    g = st.geometry
    inst = box_instances(rec, g, seam=st.seam)
    front = front_region(g, st.seam)
    merged = [inst.boxes[i] for i, s in enumerate(inst.sources) if s == BOTH]
    shared = [k for k in range(1, len(BUSY_BOXES) + 1) if all((ids[n] == k).any() for n in VIEWS)]
    assert len(merged) == len(shared) >= 2
    for k in shared:
        shown = (g.warp_labels("FRONT", ids["FRONT"]) == k) & front | (g.warp_labels("FRONT_RIGHT", ids["FRONT_RIGHT"]) == k) & ~front
        truth = boxes_from_masks(shown[None])[0]
        assert min(np.abs(b - truth).max() for b in merged) <= 2.5


def test_seam_is_recorded_per_band_inside_the_overlap():
    st, *_ = seam_stitch()
    x0, x1 = st.geometry.overlap_cols
    seam = st.to_feature()["seam_x"]
    assert len(seam) == min(MAX_BANDS, st.geometry.size[0])
    assert all(x0 <= c <= x1 for c in seam)
    feathered, *_ = seam_stitch(blend="feather")
    assert feathered.to_feature()["seam_x"] == []


def test_feather_is_narrow():
    """Away from the seam by more than half the feather, every overlap pixel is exactly one view."""
    st, _, views, _ = seam_stitch(offsets=False, tilt=False, exposure=False)
    g = st.geometry
    x0, x1 = g.overlap_cols
    cols = np.arange(x0, x1)[None, :]
    seam = st.seam.per_row()[:, None]
    both = g.valid["FRONT"][:, x0:x1] & g.valid["FRONT_RIGHT"][:, x0:x1]
    a, b = g.warp_image("FRONT", views["FRONT"])[:, x0:x1], g.warp_image("FRONT_RIGHT", views["FRONT_RIGHT"])[:, x0:x1]
    out = st.image[:, x0:x1]
    left, right = both & (cols < seam - FEATHER_PX // 2), both & (cols >= seam + FEATHER_PX // 2)
    assert left.any() and right.any()
    np.testing.assert_array_equal(out[left], a[left])
    np.testing.assert_array_equal(out[right], b[right])


def test_panoptic_objects_in_the_overlap_come_whole_from_one_view():
    """On a sample frame with panoptic labels (its own renderer; joined by global id), the seam keeps
    each thing whole on one side, and its stitched mask is that view's warped mask."""
    from streetsynth.builders.frames import record_from_frame
    from streetsynth.builders.sample import SCENE_SURFACE, render_scene, scene_to_frame
    from streetsynth.builders.stitch_labels import panoptic_instances

    scene = render_scene(3, (160, 240))
    rec = record_from_frame(scene_to_frame(scene, "seg", 1, panoptic=True), source="test")
    st = stitch(scene.views["FRONT"], scene.views["FRONT_RIGHT"], scene.cameras["FRONT"], scene.cameras["FRONT_RIGHT"],
                surface=SCENE_SURFACE, keep=lambda g: seam_objects(rec, g))
    g = st.geometry
    inst = panoptic_instances(rec, g, st.seam)
    front = front_region(g, st.seam)
    shared = [i for i, s in enumerate(inst.sources) if s == BOTH]
    assert shared
    ids = {n: g.warp_labels(n, scene.view_ids[n]) for n in VIEWS}
    for i in shared:
        mask = inst.masks[i]
        gid = np.bincount(np.concatenate([ids[n][mask] for n in VIEWS])).argmax()  # the scene's id of this instance
        copies = {n: ids[n] == gid for n in VIEWS}
        seen_by_both = (copies["FRONT"] | copies["FRONT_RIGHT"]) & g.valid["FRONT"] & g.valid["FRONT_RIGHT"]
        sides = front[seen_by_both]
        assert sides.all() or not sides.any()
        view = "FRONT" if sides.all() else "FRONT_RIGHT"
        np.testing.assert_array_equal(mask[seen_by_both], copies[view][seen_by_both])
