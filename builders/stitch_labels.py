"""Labels follow the pixels: camera boxes and panoptic masks carried onto the stitched canvas.

An object both cameras see becomes one object: by its panoptic global instance id where the frame
has panoptic labels, otherwise by the overlap of its two boxes inside the blend zone (each camera's
box is cut off at its own image edge, so only the part inside the zone is comparable). With a seam
(:mod:`.seam_cut`), every object in the overlap is a :class:`Keep` for the view that sees it best
(the larger carried box: the other view's is cut by its image edge; objects occluding each other
go together); the seam leaves it whole on that view's side and its box and mask come from that view. Without one, its box is the bound of its
carried outline, each view's part where that view dominates the feather. Boxes go through the same
distortion-aware mapping as the pixels (``StitchGeometry.to_canvas``).
"""

from __future__ import annotations

import warnings

import numpy as np

from streetsynth.instances import Instances, box_iou, boxes_from_masks
from streetsynth.schema import SEGMENTATION_TO_CLASS, WAYMO_TYPE_TO_CLASS

from .frames import CameraView, FrameRecord
from .seam_cut import Keep, Seam
from .stitch import VIEWS, StitchGeometry, front_region

#: Points sampled along each box edge when carrying it through the (non-linear) mapping.
EDGE_SAMPLES = 16
#: IoU, inside the blend zone, above which a FRONT box and a FRONT_RIGHT box are one object.
MATCH_IOU = 0.5
BOTH = "FRONT+FRONT_RIGHT"


def _edge_points(geometry: StitchGeometry, view: str, boxes: np.ndarray, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4 * samples) canvas x and y of points along each xyxy camera box's edges."""
    t = np.linspace(0.0, 1.0, samples)
    x0, y0, x1, y1 = (boxes[:, i : i + 1] for i in range(4))
    us = np.concatenate([x0 + (x1 - x0) * t, x0 + (x1 - x0) * t, np.repeat(x0, samples, 1), np.repeat(x1, samples, 1)], 1)
    vs = np.concatenate([np.repeat(y0, samples, 1), np.repeat(y1, samples, 1), y0 + (y1 - y0) * t, y0 + (y1 - y0) * t], 1)
    return geometry.to_canvas(view, us, vs)


def _bounds(xs: np.ndarray, ys: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: boxes wholly off the canvas
        out = np.stack([np.nanmin(xs, 1), np.nanmin(ys, 1), np.nanmax(xs, 1), np.nanmax(ys, 1)], 1)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, w)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, h)
    return out.astype(np.float32)


def carry_boxes(geometry: StitchGeometry, view: str, boxes: np.ndarray, samples: int = EDGE_SAMPLES) -> np.ndarray:
    """xyxy camera boxes -> xyxy canvas boxes: the bounds of their mapped (distortion-aware) edges, clipped."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
        return np.zeros((0, 4), np.float32)
    return _bounds(*_edge_points(geometry, view, boxes, samples), geometry.size)


def merged_box(geometry: StitchGeometry, edges: dict[str, tuple[np.ndarray, np.ndarray]],
               seam: Seam | None = None) -> np.ndarray | None:
    """One box for an object both cameras see: the bounds of its carried outline, taking each view's
    outline where the output comes from that view (its side of ``seam``; without one, where it
    dominates the feather), so a parallax ghost does not widen the box.

    ``edges``: per view, the (1, 4 * samples) canvas x and y of its box's edge points
    (:func:`_edge_points`, already computed when the view's boxes were carried).
    """
    h, w = geometry.size
    xs_all, ys_all = [], []
    for name in VIEWS:
        xs, ys = edges[name]
        xi = np.clip(np.nan_to_num(xs, nan=-1).round().astype(int), 0, w - 1)
        yi = np.clip(np.nan_to_num(ys, nan=-1).round().astype(int), 0, h - 1)
        own = geometry.weights[name][yi, xi] >= 0.5 if seam is None else seam.front_at(xi, yi) == (name == "FRONT")
        xs_all.append(np.where(own, xs, np.nan))
        ys_all.append(np.where(own, ys, np.nan))
    xs, ys = np.concatenate(xs_all, 1), np.concatenate(ys_all, 1)
    if not np.isfinite(xs).any():
        return None
    return _bounds(xs, ys, geometry.size)[0]


def camera_classes(view: CameraView) -> tuple[np.ndarray, np.ndarray]:
    """(keep mask, CLASS_NAMES indices of kept boxes) from Waymo label types; UNKNOWN is dropped."""
    keep = np.asarray([int(t) in WAYMO_TYPE_TO_CLASS for t in view.types], bool)
    return keep, np.asarray([WAYMO_TYPE_TO_CLASS[int(t)] for t in view.types[keep]], np.int64)


def camera_instances(view: CameraView) -> Instances:
    """A camera's own boxes as Instances in its image pixels (the ``pairs`` config)."""
    cam = view.calibration
    keep, classes = camera_classes(view)
    h, w = (cam.height, cam.width) if cam is not None else (0, 0)
    return Instances(view.boxes[keep], classes, h, w, sources=[view.name] * int(keep.sum()))


def _match(front: np.ndarray, right: np.ndarray, fcls: np.ndarray, rcls: np.ndarray, x0: int, x1: int,
           min_iou: float) -> list[tuple[int, int]]:
    """Greedy one-to-one matches of same-class boxes by IoU of their parts inside columns [x0, x1)."""
    if not len(front) or not len(right) or x1 <= x0:
        return []
    cf, cr = front.copy(), right.copy()
    for b in (cf, cr):
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], x0, x1)
    iou = box_iou(cf, cr)
    iou[fcls[:, None] != rcls[None, :]] = 0.0
    iou[(cf[:, 2] <= cf[:, 0])[:, None] | (cr[:, 2] <= cr[:, 0])[None, :]] = 0.0
    pairs, used_f, used_r = [], set(), set()
    for flat in np.argsort(-iou, axis=None):
        i, j = np.unravel_index(flat, iou.shape)
        if iou[i, j] < min_iou:
            break
        if i not in used_f and j not in used_r:
            pairs.append((int(i), int(j)))
            used_f.add(i)
            used_r.add(j)
    return pairs


def _area(b: np.ndarray) -> float:
    return float(max(b[2] - b[0], 0) * max(b[3] - b[1], 0))


def _union(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    return (float(min(a[0], b[0])), float(min(a[1], b[1])), float(max(a[2], b[2])), float(max(a[3], b[3])))


def _touching_groups(boxes: np.ndarray) -> np.ndarray:
    """Group label of each xyxy box: boxes that overlap, directly or through others, share one."""
    n = len(boxes)
    adj = ((boxes[:, None, 0] < boxes[None, :, 2]) & (boxes[None, :, 0] < boxes[:, None, 2])
           & (boxes[:, None, 1] < boxes[None, :, 3]) & (boxes[None, :, 1] < boxes[:, None, 3]))
    labels = np.arange(n)
    while True:
        new = np.where(adj, labels[None, :], n).min(axis=1)
        if (new == labels).all():
            return labels
        labels = new


def _keeps(carried: dict[str, np.ndarray], pairs: list[tuple[int, int]], geometry: StitchGeometry) -> list[Keep]:
    """Keeps of the objects that reach the overlap columns, each box covering the object in both views.

    An object comes from the view that sees it best (the larger carried box: the other view's is cut
    by its image edge). Objects whose boxes overlap (one occludes the other) form a group no seam can
    pass through: the group comes whole from the view that sees it best (the larger summed area)."""
    x0, x1 = geometry.overlap_cols
    boxes, areas = [], []  # areas: (seen by FRONT, seen by FRONT_RIGHT)
    for i, j in pairs:
        boxes.append(_union(carried["FRONT"][i], carried["FRONT_RIGHT"][j]))
        areas.append((_area(carried["FRONT"][i]), _area(carried["FRONT_RIGHT"][j])))
    paired = {"FRONT": {i for i, _ in pairs}, "FRONT_RIGHT": {j for _, j in pairs}}
    for name in VIEWS:
        for k, b in enumerate(carried[name]):
            if k not in paired[name]:
                boxes.append(tuple(float(v) for v in b))
                areas.append((_area(b), 0.0) if name == "FRONT" else (0.0, _area(b)))
    box = np.asarray(boxes, np.float64).reshape(-1, 4)
    near = (box[:, 2] > x0) & (box[:, 0] < x1) & (box[:, 3] > box[:, 1])
    box, area = box[near], np.asarray(areas, np.float64).reshape(-1, 2)[near]
    if not len(box):
        return []
    group = _touching_groups(box)
    sums = np.zeros((len(box), 2))
    np.add.at(sums, group, area)
    return [Keep("FRONT_RIGHT" if sums[g, 1] > sums[g, 0] else "FRONT", tuple(float(v) for v in b)) for b, g in zip(box, group)]


#: The last frame's carried boxes: the seam (``seam_objects``) and the labels (``box_instances``) share them.
_LAST: list = []


def _carried_boxes(rec: FrameRecord, geometry: StitchGeometry):
    """Per view: its kept camera boxes' carried canvas boxes, classes and edge points (read-only;
    computed once per frame and geometry)."""
    if _LAST and _LAST[0] is rec and _LAST[1] is geometry:
        return _LAST[2][:3]
    carried, classes, edges = {}, {}, {}
    for name in VIEWS:
        view = rec.cameras[name]
        keep, classes[name] = camera_classes(view)
        kept = np.asarray(view.boxes[keep], np.float64).reshape(-1, 4)
        if len(kept):  # edge points once per view: the carried boxes and the merged ones both use them
            edges[name] = _edge_points(geometry, name, kept, EDGE_SAMPLES)
            carried[name] = _bounds(*edges[name], geometry.size)
        else:
            carried[name] = np.zeros((0, 4), np.float32)
    _LAST[:] = [rec, geometry, (carried, classes, edges, {})]
    return carried, classes, edges


def _pairs(carried: dict, classes: dict, geometry: StitchGeometry, min_iou: float) -> list[tuple[int, int]]:
    """The matched (FRONT, FRONT_RIGHT) box pairs; once per frame (the seam and the labels share them)."""
    key = ("pairs", min_iou)
    cache = _LAST[2][3] if _LAST and _LAST[2][0] is carried else {}
    if key not in cache:
        cache[key] = _match(carried["FRONT"], carried["FRONT_RIGHT"], classes["FRONT"], classes["FRONT_RIGHT"],
                            geometry.right_x0, geometry.front_x1, min_iou)
    return cache[key]


def _pair_box(geometry: StitchGeometry, carried: dict, edges: dict, i: int, j: int, seam: Seam | None) -> np.ndarray:
    """The box of FRONT's object ``i`` that is FRONT_RIGHT's ``j``: the bound of its carried outline
    where the output shows each view (an object the seam keeps whole: its best view's box; one wider
    than the overlap: each view's part on its side); the union as a fallback."""
    m = merged_box(geometry, {"FRONT": (edges["FRONT"][0][i : i + 1], edges["FRONT"][1][i : i + 1]),
                              "FRONT_RIGHT": (edges["FRONT_RIGHT"][0][j : j + 1], edges["FRONT_RIGHT"][1][j : j + 1])}, seam)
    return m if m is not None else np.asarray(_union(carried["FRONT"][i], carried["FRONT_RIGHT"][j]), np.float32)


def box_instances(rec: FrameRecord, geometry: StitchGeometry, min_iou: float = MATCH_IOU, seam: Seam | None = None) -> Instances:
    """Stitched Instances (boxes only) from both cameras' 2D boxes, duplicates merged (with ``seam``:
    an object both see gets the box of the view that sees it best, the one the seam keeps it from)."""
    h, w = geometry.size
    carried, classes, edges = _carried_boxes(rec, geometry)
    pairs = _pairs(carried, classes, geometry, min_iou)
    merged_r = {j for _, j in pairs}
    boxes, cls, src = [], [], []
    by_front = dict(pairs)
    for i, b in enumerate(carried["FRONT"]):
        if i in by_front:
            b = _pair_box(geometry, carried, edges, i, by_front[i], seam)
        boxes.append(b)
        cls.append(classes["FRONT"][i])
        src.append(BOTH if i in by_front else "FRONT")
    for j, b in enumerate(carried["FRONT_RIGHT"]):
        if j not in merged_r:
            boxes.append(b)
            cls.append(classes["FRONT_RIGHT"][j])
            src.append("FRONT_RIGHT")
    boxes_arr = np.asarray(boxes, np.float32).reshape(-1, 4)
    keep = (boxes_arr[:, 2] > boxes_arr[:, 0]) & (boxes_arr[:, 3] > boxes_arr[:, 1])
    inst = Instances(boxes_arr, np.asarray(cls, np.int64), h, w, sources=src)
    return inst.select(keep) if not keep.all() else inst


def _local_lut(view: CameraView, size: int, offset: int) -> np.ndarray:
    """Local instance id -> global id; ids without a mapping get ``offset + local`` (distinct per camera)."""
    lut = offset + np.arange(size, dtype=np.int64)
    lut[0] = 0
    for loc, glob in view.panoptic.local_to_global.items():
        if 0 < loc < size:
            lut[loc] = glob
    return lut


def _code_tables(view: CameraView, n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """(global id, semantic class) of every raw label value ``0 .. n-1`` of one camera."""
    div = view.panoptic.divisor
    vals = np.arange(n, dtype=np.int64)
    return _local_lut(view, div, offset)[vals % div], vals // div


#: Panoptic labels are subsampled by this step when finding the objects' boxes for the seam.
PANOPTIC_STEP = 4


def _panoptic_boxes(view: CameraView, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """(global ids, xyxy camera boxes) of a camera's panoptic things, from every ``PANOPTIC_STEP``-th
    pixel (boxes widened by the step, so they cover the object): one sort of the things' pixels."""
    s = PANOPTIC_STEP
    lab = view.panoptic.label[::s, ::s]
    div = view.panoptic.divisor
    sem = lab // div
    things = np.isin(sem, list(SEGMENTATION_TO_CLASS)) & (lab % div > 0)
    ys, xs = np.nonzero(things)
    if not len(ys):
        return np.zeros(0, np.int64), np.zeros((0, 4))
    codes = lab[ys, xs].astype(np.int64)
    order = np.argsort(codes, kind="stable")
    codes, xs, ys = codes[order], xs[order], ys[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    boxes = np.stack([np.minimum.reduceat(xs, starts) * s - s, np.minimum.reduceat(ys, starts) * s - s,
                      np.maximum.reduceat(xs, starts) * s + 2 * s, np.maximum.reduceat(ys, starts) * s + 2 * s], 1)
    return _local_lut(view, div, offset)[codes[starts] % div], boxes.astype(np.float64)


def _panoptic_keeps(rec: FrameRecord, geometry: StitchGeometry) -> list[Keep]:
    """Keeps of the panoptic things, joined across the views by global id."""
    per_view = {}
    for k, name in enumerate(VIEWS):
        gid, boxes = _panoptic_boxes(rec.cameras[name], (k + 1) * 10_000_000)
        per_view[name] = dict(zip(gid.tolist(), carry_boxes(geometry, name, boxes)))
    f, r = per_view["FRONT"], per_view["FRONT_RIGHT"]
    carried = {"FRONT": np.asarray([f[g] for g in f], np.float32).reshape(-1, 4),
               "FRONT_RIGHT": np.asarray([r[g] for g in r], np.float32).reshape(-1, 4)}
    index_r = {g: j for j, g in enumerate(r)}
    pairs = [(i, index_r[g]) for i, g in enumerate(f) if g in index_r]
    return _keeps(carried, pairs, geometry)


def seam_objects(rec: FrameRecord, geometry: StitchGeometry) -> list[Keep]:
    """The labelled objects the seam must keep whole, each with the view it comes from: panoptic
    things when both cameras carry panoptic labels (as :func:`stitched_instances` uses), else boxes."""
    if all(rec.cameras[n].panoptic is not None for n in VIEWS):
        return _panoptic_keeps(rec, geometry)
    carried, classes, _ = _carried_boxes(rec, geometry)
    return _keeps(carried, _pairs(carried, classes, geometry, MATCH_IOU), geometry)


def _joined_codes(rec: FrameRecord, geometry: StitchGeometry, seam: Seam | None):
    """(code image, global id per code, semantic class per code, global ids each view shows) of both
    cameras' panoptic labels warped onto the canvas and joined (see :func:`panoptic_instances`)."""
    warped, gids, sems, present, shift = {}, [], [], {}, 0
    for k, name in enumerate(VIEWS):
        view = rec.cameras[name]
        lab = geometry.warp_labels(name, view.panoptic.label)
        n = 1 << (8 * lab.dtype.itemsize) if lab.dtype in (np.uint8, np.uint16) else int(lab.max()) + 1
        gid, sem = _code_tables(view, n, (k + 1) * 10_000_000)
        c0, c1 = geometry.cols[name]
        shown = np.flatnonzero(np.bincount(lab[:, c0:c1].ravel(), minlength=n))
        present[name] = gid[shown]  # the global ids this view shows (0 included)
        warped[name] = lab.astype(np.int32) + shift if shift else lab
        gids.append(gid)
        sems.append(sem)
        shift += n
    code = np.where(front_region(geometry, seam), warped["FRONT"], warped["FRONT_RIGHT"])
    return code, np.concatenate(gids), np.concatenate(sems), present


def panoptic_semantic(rec: FrameRecord, geometry: StitchGeometry, seam: Seam | None = None) -> np.ndarray:
    """(H, W) uint8 Waymo segmentation class of every canvas pixel (0 = undefined / unseen), taken from
    the same view per pixel as the instance masks: the stuff classes (road, sky, ...) a layout needs."""
    code, _, sem, _ = _joined_codes(rec, geometry, seam)
    return np.clip(sem, 0, 255).astype(np.uint8)[code]


def panoptic_instances(rec: FrameRecord, geometry: StitchGeometry, seam: Seam | None = None) -> Instances:
    """Stitched Instances with masks from both cameras' panoptic labels, joined by global id.

    Each camera's raw label (``semantic * divisor + local``, uint16) is warped nearest-neighbour once
    and the two are joined into one code image (FRONT_RIGHT's values shifted past FRONT's), taking
    the view with the larger feather weight where both see. Everything else works on the codes'
    tables, not on pixels: global id and class of every code, pixel counts per code (one
    ``bincount``), the majority class of each id, and a code -> instance index table gathered once.
    With ``seam``, each pixel's label comes from the view on its side of the seam (an object in the
    overlap is whole on its best view's side, so its mask is that view's).
    """
    h, w = geometry.size
    code, gid, sem, present = _joined_codes(rec, geometry, seam)
    is_thing = np.zeros(int(sem.max()) + 1, bool)
    is_thing[[c for c in SEGMENTATION_TO_CLASS if 0 <= c < len(is_thing)]] = True
    counts = np.bincount(code.ravel(), minlength=len(gid))
    used = np.flatnonzero((counts > 0) & (gid > 0) & is_thing[sem])
    if not len(used):
        return Instances.empty(h, w)
    order = np.lexsort((-counts[used], sem[used], gid[used]))
    ugid, usem, ucount = gid[used][order], sem[used][order], counts[used][order]
    pair = np.r_[True, (ugid[1:] != ugid[:-1]) | (usem[1:] != usem[:-1])]  # (id, class) groups, summed
    pid, psem = ugid[pair], usem[pair]
    pcount = np.add.reduceat(ucount, np.flatnonzero(pair))
    best = np.lexsort((-pcount, pid))  # by id, then most pixels first
    pid, psem = pid[best], psem[best]
    first = np.r_[True, pid[1:] != pid[:-1]]
    uniq, major = pid[first], psem[first]
    table = np.zeros(len(gid), np.int32)  # code -> 1..N, 0 = none
    table[used] = np.searchsorted(uniq, gid[used]) + 1
    index = table[code]
    masks = index[None] == np.arange(1, len(uniq) + 1, dtype=np.int32)[:, None, None]
    seen = {n: np.isin(uniq, present[n][present[n] > 0]) for n in VIEWS}
    sources = [BOTH if f and r else ("FRONT" if f else "FRONT_RIGHT") for f, r in zip(seen["FRONT"], seen["FRONT_RIGHT"])]
    classes = np.asarray([SEGMENTATION_TO_CLASS[int(s)] for s in major], np.int64)
    return Instances(boxes_from_masks(masks), classes, h, w, masks=masks, ids=np.arange(1, len(uniq) + 1), sources=sources)


def stitched_instances(rec: FrameRecord, geometry: StitchGeometry, seam: Seam | None = None) -> Instances:
    """Masks from panoptic labels when both cameras carry them, else boxes; objects in the overlap
    from the side of ``seam`` they lie on (None: the feathered stitch)."""
    if all(rec.cameras[n].panoptic is not None for n in VIEWS):
        return panoptic_instances(rec, geometry, seam)
    return box_instances(rec, geometry, seam=seam)
