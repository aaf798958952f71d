"""A sample maker: procedurally rendered street scenes written as real Waymo segment files.

One wide scene is rendered on the cylindrical canvas of :mod:`streetsynth.camera` (sky, buildings,
trees, poles, road, vehicles and pedestrians with known instance ids). FRONT and FRONT_RIGHT are
cut from it through their calibrations, so their overlap is known exactly, and written as JPEG
``CameraImage``s with ``camera_labels`` boxes, panoptic labels on some frames and calibrations.
Everything follows from the seed. No test or demo downloads data; they make it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from streetsynth.camera import Cylinder, PinholeCamera, Surface, cylinder_for, pitch_matrix, roll_matrix, yaw_matrix
from streetsynth.codec import encode
from streetsynth.instances import boxes_from_masks
from streetsynth.proto import frame as fp
from streetsynth.schema import (CAMERA_IDS, CLASS_NAMES, CLASS_TO_SEGMENTATION, SEG_BUILDING, SEG_ROAD, SEG_SKY,
                     SEG_VEGETATION)
from streetsynth.seeds import derive_seed
from streetsynth.tfrecord import write_tfrecord

#: Waymo's cameras see about ±25.2° horizontally.
HALF_FOV_DEG = 25.2
#: FRONT_RIGHT's yaw relative to FRONT in the sample (negative: to the right).
RIGHT_YAW_DEG = -42.0
PANOPTIC_DIVISOR = 1000
#: Waymo-like lens distortion (k1, k2, p1, p2, k3) written into both calibrations by default.
DISTORTION = (0.04, -0.35, 0.0008, -0.0003, 0.0)
#: FRONT_RIGHT's auto-exposure against FRONT: per-channel gain (RGB) applied to its pixels by default.
RIGHT_EXPOSURE = (0.85, 0.83, 0.88)
#: The world the sample paints: ground in front of a vertical cylinder of 30 m around the cameras.
SCENE_SURFACE = Surface("ground+cylinder", 30.0)
TIMES = ("Day", "Day", "Dawn/Dusk", "Night")
LOCATIONS = ("location_phx", "location_sf", "location_other")
WEATHERS = ("sunny", "sunny", "rain")
_CLASS_TO_WAYMO_TYPE = {0: fp.TYPE_VEHICLE, 1: fp.TYPE_PEDESTRIAN, 2: fp.TYPE_CYCLIST, 3: fp.TYPE_SIGN}


@dataclass
class SampleScene:
    """A rendered scene: the ground truth on the canvas and the two camera views cut from it."""

    panorama: np.ndarray  # (H, Wc, 3) uint8 on the cylinder
    ids: np.ndarray  # (H, Wc) uint16 global instance ids, 0 = stuff
    semantic: np.ndarray  # (H, Wc) uint8 Waymo segmentation classes
    classes: dict[int, int]  # global id -> CLASS_NAMES index
    cylinder: Cylinder
    cameras: dict[str, PinholeCamera]
    views: dict[str, np.ndarray]  # RGB per camera
    view_ids: dict[str, np.ndarray]  # global ids per camera pixel
    view_semantic: dict[str, np.ndarray]
    time_of_day: str
    location: str
    weather: str

    @property
    def overlap_deg(self) -> float:
        """Angular overlap of FRONT and FRONT_RIGHT, from their calibrations."""
        f, r = self.cameras["FRONT"], self.cameras["FRONT_RIGHT"]
        return float(np.degrees((r.yaw + r.half_fov) - (f.yaw - f.half_fov)))


def make_cameras(view_size: tuple[int, int] = (320, 480), right_yaw_deg: float = RIGHT_YAW_DEG,
                 distortion: bool = True, offsets: bool = True, tilt: bool = True) -> dict[str, PinholeCamera]:
    """FRONT and FRONT_RIGHT cameras of Waymo's field of view at ``view_size`` (H, W).

    By default as real ones are: lens distortion, principal points off the image centre, centres
    about 11 cm apart, small pitch and roll. Each flag turns its part off (``offsets=False``: one
    shared centre and centred principal points).
    """
    h, w = view_size
    f = (w / 2.0) / np.tan(np.radians(HALF_FOV_DEG))
    dist = DISTORTION if distortion else (0.0,) * 5
    s = w / 1920.0
    pp = ((6.3 * s, -4.1 * s), (-5.2 * s, 3.7 * s)) if offsets else ((0.0, 0.0), (0.0, 0.0))
    tilts = ((0.6, -0.3), (-0.4, 0.5)) if tilt else ((0.0, 0.0), (0.0, 0.0))
    centres = ((1.54, -0.02, 2.12), (1.48, -0.09, 2.10)) if offsets else ((1.5, 0.0, 2.1), (1.5, 0.0, 2.1))
    cams = {}
    for name, yaw, (du, dv), (pitch, roll), t in zip(("FRONT", "FRONT_RIGHT"), (0.0, right_yaw_deg), pp, tilts, centres):
        rot = yaw_matrix(np.radians(yaw)) @ pitch_matrix(np.radians(pitch)) @ roll_matrix(np.radians(roll))
        cams[name] = PinholeCamera(f, f, w / 2.0 + du, h / 2.0 + dv, w, h, rot, t, dist)
    return cams


def _paint(canvas, ids, sem, draw, color, gid, seg):
    """Draw one shape (``draw(img, value)``) into the RGB canvas, the id map and the semantic map."""
    draw(canvas, color)
    if gid:
        draw(ids, int(gid))
    draw(sem, int(seg))


def _draw_objects(rng: np.random.Generator, canvas: np.ndarray, ids: np.ndarray, sem: np.ndarray, hz: int, side: int,
                  n_vehicles: int, n_pedestrians: int) -> dict[int, int]:
    """Vehicles and pedestrians painted into the panorama; their classes by instance id."""
    height, width = ids.shape
    # Far (small, near the horizon) to near, so near ones occlude far ones.
    kinds = [0] * n_vehicles + [1] * n_pedestrians
    bases = rng.uniform(side + 2, height - 2, len(kinds))
    classes: dict[int, int] = {}
    for gid, k in enumerate(np.asarray(kinds)[np.argsort(bases)], start=1):
        base = float(np.sort(bases)[gid - 1])
        scale = (base - hz) / max(1.0, height - hz)
        cx = int(rng.integers(0, width))
        if k == 0:  # a vehicle: body, cabin, wheels
            w, h = int(90 * scale * height / 320) + 8, int(40 * scale * height / 320) + 5
            color = tuple(int(c) for c in rng.integers(20, 235, 3))
            x0, y0 = cx - w // 2, int(base) - h
            def body(im, v, x0=x0, y0=y0, w=w, h=h):
                cv2.rectangle(im, (x0, y0 + h // 3), (x0 + w, y0 + h), v, -1)
                cv2.rectangle(im, (x0 + w // 5, y0), (x0 + 4 * w // 5, y0 + h // 3 + 1), v, -1)
            _paint(canvas, ids, sem, body, color, gid, CLASS_TO_SEGMENTATION[0])
            for wx in (x0 + w // 5, x0 + 4 * w // 5):
                cv2.circle(canvas, (wx, y0 + h), max(2, h // 5), (20, 20, 20), -1)
                cv2.circle(ids, (wx, y0 + h), max(2, h // 5), int(gid), -1)
                cv2.circle(sem, (wx, y0 + h), max(2, h // 5), CLASS_TO_SEGMENTATION[0], -1)
            cv2.rectangle(canvas, (x0 + w // 5 + 2, y0 + 2), (x0 + 4 * w // 5 - 2, y0 + h // 3 - 1), (160, 190, 210), -1)
        else:  # a pedestrian: legs, torso, head
            h = int(70 * scale * height / 320) + 8
            w = max(3, h // 4)
            color = tuple(int(c) for c in rng.integers(20, 235, 3))
            y0 = int(base) - h
            def person(im, v, cx=cx, y0=y0, w=w, h=h):
                cv2.rectangle(im, (cx - w // 2, y0 + h // 5), (cx + w // 2, y0 + 3 * h // 5), v, -1)
                cv2.rectangle(im, (cx - w // 2, y0 + 3 * h // 5), (cx + w // 2, y0 + h), v, -1)
                cv2.circle(im, (cx, y0 + h // 10), max(2, h // 10), v, -1)
            _paint(canvas, ids, sem, person, color, gid, CLASS_TO_SEGMENTATION[1])
            cv2.rectangle(canvas, (cx - w // 2, y0 + 3 * h // 5), (cx + w // 2, y0 + h), (40, 40, 90), -1)
            cv2.circle(canvas, (cx, y0 + h // 10), max(2, h // 10), (200, 160, 130), -1)
        classes[gid] = int(k)
    return classes


def render_panorama(rng: np.random.Generator, height: int, width: int, horizon: float, night: bool,
                    n_vehicles: int, n_pedestrians: int):
    """RGB, instance ids and semantic classes of one street scene on a ``height`` × ``width`` canvas."""
    canvas = np.zeros((height, width, 3), np.uint8)
    ids = np.zeros((height, width), np.uint16)
    sem = np.zeros((height, width), np.uint8)
    hz = int(round(horizon))
    ground = hz + max(2, height // 40)
    # Sky: a vertical gradient.
    t = np.linspace(0.0, 1.0, ground)[:, None, None]
    sky_top, sky_low = np.array([70, 130, 200]), np.array([190, 215, 235])
    canvas[:ground] = (sky_top * (1 - t) + sky_low * t).astype(np.uint8)
    sem[:ground] = SEG_SKY
    # Road and sidewalk, with dashed lane marks.
    canvas[ground:] = (95, 95, 100)
    sem[ground:] = SEG_ROAD
    side = ground + max(3, (height - ground) // 8)
    canvas[ground:side] = (150, 145, 140)
    lane_y = ground + (height - ground) * 2 // 3
    for x0 in range(int(rng.integers(0, 40)), width, 60):
        cv2.rectangle(canvas, (x0, lane_y), (x0 + 30, lane_y + max(1, height // 120)), (230, 230, 230), -1)
    # Buildings along the horizon, with window grids.
    x = int(rng.integers(-40, 0))
    while x < width:
        bw = int(rng.integers(width // 14, width // 6))
        top = int(hz - rng.uniform(0.12, 0.42) * height)
        color = tuple(int(c) for c in rng.integers(90, 200, 3))
        _paint(canvas, ids, sem, lambda im, v: cv2.rectangle(im, (x, top), (x + bw, ground), v, -1), color, 0, SEG_BUILDING)
        win = max(3, height // 40)
        for wy in range(top + win, ground - win, 2 * win):
            for wx in range(x + win, x + bw - win, 2 * win):
                cv2.rectangle(canvas, (wx, wy), (wx + win - 1, wy + win - 1), (40, 50, 70), -1)
        x += bw + int(rng.integers(0, width // 30))
    # Trees and poles: hard vertical content for the seam gate and the stitcher.
    for _ in range(int(rng.integers(2, 6))):
        tx, r = int(rng.integers(0, width)), int(rng.integers(height // 20, height // 9))
        _paint(canvas, ids, sem, lambda im, v: cv2.rectangle(im, (tx - 2, ground - r), (tx + 2, side), v, -1), (80, 60, 40), 0, SEG_VEGETATION)
        _paint(canvas, ids, sem, lambda im, v: cv2.circle(im, (tx, ground - r - r // 2), r, v, -1), (40, int(rng.integers(100, 160)), 50), 0, SEG_VEGETATION)
    for _ in range(int(rng.integers(1, 4))):
        px = int(rng.integers(0, width))
        cv2.line(canvas, (px, int(hz - 0.3 * height)), (px, side), (60, 60, 60), max(1, height // 160))
    classes = _draw_objects(rng, canvas, ids, sem, hz, side, n_vehicles, n_pedestrians)
    noise = rng.normal(0.0, 4.0, canvas.shape)
    out = canvas.astype(np.float32) + noise
    if night:
        out *= 0.45
    return np.clip(out, 0, 255).astype(np.uint8), ids, sem, classes


def render_scene(seed: int, view_size: tuple[int, int] = (320, 480), right_yaw_deg: float = RIGHT_YAW_DEG,
                 n_vehicles: int | None = None, n_pedestrians: int | None = None, distortion: bool = True,
                 offsets: bool = True, tilt: bool = True, exposure: bool = True) -> SampleScene:
    """Render one scene from ``seed`` and cut FRONT and FRONT_RIGHT views of ``view_size`` (H, W).

    The panorama is painted on :data:`SCENE_SURFACE`; each camera sees it from its own centre
    through its own (distorted) lens; FRONT_RIGHT's pixels carry :data:`RIGHT_EXPOSURE` unless
    ``exposure`` is off.
    """
    rng = np.random.default_rng(seed)
    cams = make_cameras(view_size, right_yaw_deg, distortion, offsets, tilt)
    cyl = cylinder_for(list(cams.values()), surface=SCENE_SURFACE)
    tod = TIMES[int(rng.integers(len(TIMES)))]
    nv = int(rng.integers(3, 7)) if n_vehicles is None else n_vehicles
    npd = int(rng.integers(2, 6)) if n_pedestrians is None else n_pedestrians
    pano, ids, sem, classes = render_panorama(rng, cyl.height, cyl.width, cyl.cy, tod == "Night", nv, npd)
    views, view_ids, view_sem = {}, {}, {}
    for name, cam in cams.items():
        mx, my = cyl.camera_grid(cam)
        views[name] = cv2.remap(pano, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if exposure and name == "FRONT_RIGHT":
            views[name] = np.clip(views[name] * np.asarray(RIGHT_EXPOSURE, np.float32) + 0.5, 0, 255).astype(np.uint8)
        view_ids[name] = cv2.remap(ids, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        view_sem[name] = cv2.remap(sem, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    return SampleScene(pano, ids, sem, classes, cyl, cams, views, view_ids, view_sem, tod,
                       LOCATIONS[int(rng.integers(len(LOCATIONS)))], WEATHERS[int(rng.integers(len(WEATHERS)))])


def camera_objects(view_ids: np.ndarray, classes: dict[int, int], min_pixels: int = 12):
    """(global ids, class indices, xyxy boxes) of the objects visible in one camera's id image."""
    present = np.unique(view_ids)
    present = present[present > 0]
    masks = view_ids[None] == present[:, None, None]
    keep = masks.sum(axis=(1, 2)) >= min_pixels
    present, masks = present[keep], masks[keep]
    return present, np.asarray([classes[int(g)] for g in present], np.int64), boxes_from_masks(masks)


def scene_to_frame(scene: SampleScene, segment: str, timestamp_micros: int, panoptic: bool) -> fp.Frame:
    """A Waymo ``Frame`` proto of a rendered scene: images, calibrations, boxes, panoptic labels."""
    frame = fp.Frame(timestamp_micros=timestamp_micros)
    frame.context.name = segment
    frame.context.stats.time_of_day = scene.time_of_day
    frame.context.stats.location = scene.location
    frame.context.stats.weather = scene.weather
    for name, cam in scene.cameras.items():
        cid = CAMERA_IDS[name]
        cal = frame.context.camera_calibrations.add(name=cid, width=cam.width, height=cam.height)
        cal.intrinsic.extend(cam.intrinsic())
        cal.extrinsic.transform.extend(cam.extrinsic())
        image = frame.images.add(name=cid, image=encode(scene.views[name], "jpeg"))
        gids, classes, boxes = camera_objects(scene.view_ids[name], scene.classes)
        labels = frame.camera_labels.add(name=cid)
        # Labels largest first, not in id order: like Waymo's, the stored order carries no meaning.
        for k in np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable"):
            g, c, b = gids[k], classes[k], boxes[k]
            lab = labels.labels.add(type=_CLASS_TO_WAYMO_TYPE[int(c)], id=f"{segment}-{name}-{int(g):04d}")
            lab.box.center_x, lab.box.center_y = float(b[0] + b[2]) / 2, float(b[1] + b[3]) / 2
            lab.box.length, lab.box.width = float(b[2] - b[0]), float(b[3] - b[1])
        if panoptic:
            # Local ids differ from global ones (as in Waymo); the mapping links them across cameras.
            # Every instance the camera sees gets a local id, also those too small for a box.
            present = np.unique(scene.view_ids[name])
            present = present[present > 0]
            lut = np.zeros(int(scene.ids.max()) + 1, np.int64)
            lut[present[::-1]] = np.arange(1, len(present) + 1)
            local = lut[scene.view_ids[name]]
            seg = image.camera_segmentation_label
            seg.panoptic_label_divisor = PANOPTIC_DIVISOR
            seg.panoptic_label = encode((scene.view_semantic[name].astype(np.int64) * PANOPTIC_DIVISOR + local).astype(np.uint16), "png")
            seg.sequence_id = segment
            for g in present:
                seg.instance_id_to_global_id_mapping.add(local_instance_id=int(lut[g]), global_instance_id=int(g), is_tracked=True)
    return frame


def segment_name(seed: int, index: int) -> str:
    return f"{derive_seed(seed, 'segment', index) % 10**19:019d}_{index * 20:04d}_000_{index * 20 + 20:04d}_000"


def make_sample(out_dir: str | Path, segments: int = 2, frames: int = 3, seed: int = 0,
                view_size: tuple[int, int] = (320, 480), fmt: str = "v1", panoptic_every: int = 2,
                distortion: bool = True, offsets: bool = True, tilt: bool = True, exposure: bool = True,
                validation_segments: int = 1) -> list[Path]:
    """Write ``segments`` Waymo segments of ``frames`` frames each under ``out_dir``.

    The last ``validation_segments`` segments go to ``validation/`` (when more segments than that are
    written; one segment alone goes to ``training/``), the rest to ``training/``. More validation
    segments make every AP measured on the sample less noisy.
    ``fmt="v1"`` writes ``segment-<name>_with_camera_labels.tfrecord`` files; ``"v2"`` writes the
    v2 Parquet component folders. Every ``panoptic_every``-th frame carries panoptic labels.
    ``distortion``, ``offsets``, ``tilt`` and ``exposure`` switch off the parts of the real camera
    model (see :func:`render_scene`).
    """
    if fmt not in ("v1", "v2"):
        raise ValueError(f"format must be 'v1' or 'v2', got {fmt!r}")
    if segments < 1 or frames < 1:
        raise ValueError("segments and frames must be at least 1")
    if segments > 1 and not 1 <= validation_segments < segments:
        raise ValueError(f"validation_segments must be in [1, {segments - 1}] for {segments} segments, "
                         f"got {validation_segments}")
    out_dir = Path(out_dir)
    written = []
    for s in range(segments):
        name = segment_name(seed, s)
        split = "validation" if segments > 1 and s >= segments - validation_segments else "training"
        frame_list = []
        for f in range(frames):
            scene = render_scene(derive_seed(seed, name, f), view_size, distortion=distortion, offsets=offsets,
                                 tilt=tilt, exposure=exposure)
            ts = 1_550_000_000_000_000 + s * 1_000_000_000 + f * 100_000
            frame_list.append(scene_to_frame(scene, name, ts, panoptic=panoptic_every > 0 and f % panoptic_every == 0))
        if fmt == "v1":
            path = out_dir / split / f"segment-{name}_with_camera_labels.tfrecord"
            write_tfrecord(path, (fr.SerializeToString() for fr in frame_list))
            written.append(path)
        else:
            from streetsynth.builders.frames import record_from_frame
            from streetsynth.builders.waymo_v2 import write_v2

            written.extend(write_v2([record_from_frame(fr) for fr in frame_list], out_dir / split))
    return written


__all__ = ["SampleScene", "make_cameras", "render_scene", "scene_to_frame", "make_sample", "camera_objects",
           "CLASS_NAMES"]
