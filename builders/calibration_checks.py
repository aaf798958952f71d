"""What the builder accepts as a camera: calibrations a real car could have, images of the calibrated
size, boxes with a size and a centre in the image.

Every check raises :class:`FrameError` naming the camera as users know it (``FRONT_RIGHT``), so a
bad frame is a per-frame error (a counted skip under ``on_error="skip"``), never a row. The bounds
are physical, not fitted: they admit every lens a car carries (fisheye to telephoto) and refuse
values no lens has (a focal length of 1e12 pixels, k1 = 1e6, a camera 1e9 m from the car).

An *empty* extrinsic means "no calibration" (``frames.camera_from_values`` returns None and the
stitch registers the views from features); one with any other number of values than 16 is malformed.
"""

from __future__ import annotations

import io
import math
from typing import Sequence

import numpy as np
from PIL import Image

from streetsynth.camera import PinholeCamera

from .frames import CameraView, FrameError, FrameRecord

#: Half the horizontal field of view a camera may have, degrees (telephoto .. wide fisheye).
HALF_FOV_DEG = (2.0, 80.0)
#: fu / fv: square pixels give 1; no camera sensor is this far from square.
MAX_ASPECT = 2.0
#: Lens distortion may move a pixel at most this share of its radius inside the image.
MAX_RADIAL_SHIFT = 0.5
#: |p1|, |p2|: tangential distortion of a decentred lens element is a few 1e-3.
MAX_TANGENTIAL = 0.1
#: Metres from the vehicle origin a camera may sit (a car or truck is shorter than this).
MAX_OFFSET_M = 10.0


def check_intrinsics(cam: PinholeCamera) -> str | None:
    """Why the intrinsics cannot be a real camera's, or None."""
    if not (cam.width > 0 and cam.height > 0):
        return f"image size {cam.height}x{cam.width} (HxW) is not positive"
    if not (math.isfinite(cam.fu) and math.isfinite(cam.fv) and cam.fu > 0 and cam.fv > 0):
        return f"focal lengths must be finite and > 0, got fu={cam.fu}, fv={cam.fv}"
    half_fov = math.degrees(math.atan2(cam.width / 2.0, cam.fu))
    if not HALF_FOV_DEG[0] <= half_fov <= HALF_FOV_DEG[1]:
        return (f"focal lengths: fu={cam.fu:g} px gives a horizontal field of view of +-{half_fov:.3g} deg on a "
                f"{cam.width} px wide image; a camera has +-{HALF_FOV_DEG[0]:g} to +-{HALF_FOV_DEG[1]:g} deg")
    if not 1 / MAX_ASPECT <= cam.fu / cam.fv <= MAX_ASPECT:
        return f"focal lengths: fu/fv = {cam.fu / cam.fv:.3g} (fu={cam.fu:g}, fv={cam.fv:g}); pixels are about square"
    if not (math.isfinite(cam.cu) and math.isfinite(cam.cv) and 0 <= cam.cu < cam.width and 0 <= cam.cv < cam.height):
        return f"principal point ({cam.cu}, {cam.cv}) outside the {cam.height}x{cam.width} (HxW) image"
    return check_distortion(cam)


def check_distortion(cam: PinholeCamera) -> str | None:
    """Why k1, k2, p1, p2, k3 cannot be a lens's, or None.

    The radial factor ``1 + k1 r^2 + k2 r^4 + k3 r^6`` is sampled from the centre to a little beyond
    the farthest image corner: it must keep the mapping monotonic (no fold) and move no pixel by
    more than ``MAX_RADIAL_SHIFT`` of its radius.
    """
    d = np.asarray(cam.distortion, np.float64)
    if not np.isfinite(d).all():
        return f"distortion k1, k2, p1, p2, k3 must be finite, got {list(cam.distortion)}"
    k1, k2, p1, p2, k3 = d
    if max(abs(p1), abs(p2)) > MAX_TANGENTIAL:
        return f"distortion: tangential p1={p1:g}, p2={p2:g} beyond +-{MAX_TANGENTIAL:g}"
    corners = np.array([[-cam.cu, -cam.cv], [cam.width - cam.cu, cam.height - cam.cv]]) / [cam.fu, cam.fv]
    r_max = 1.2 * float(np.hypot(np.abs(corners[:, 0]).max(), np.abs(corners[:, 1]).max()))
    r = np.linspace(0.0, r_max, 256)
    r2 = r * r
    factor = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    if np.abs(factor - 1).max() > MAX_RADIAL_SHIFT or (np.diff(r * factor) <= 0).any():
        return (f"distortion: k1={k1:g}, k2={k2:g}, k3={k3:g} move image points by up to "
                f"{np.abs(factor - 1).max():.3g} of their radius (a lens moves them by at most {MAX_RADIAL_SHIFT:g}) "
                "or fold the image")
    return None


def check_extrinsic(cam: PinholeCamera) -> str | None:
    """Why the camera-to-vehicle pose cannot be a camera on a car, or None."""
    r, t = np.asarray(cam.rotation, np.float64), np.asarray(cam.translation, np.float64)
    if r.shape != (3, 3) or not np.isfinite(r).all() or not np.isfinite(t).all():
        return "extrinsic is not finite"
    if np.abs(r @ r.T - np.eye(3)).max() > 1e-3 or np.linalg.det(r) < 0:
        return "rotation is not orthonormal with determinant +1"
    if np.linalg.norm(t) > MAX_OFFSET_M:
        return (f"extrinsic: the camera sits {np.linalg.norm(t):.3g} m from the vehicle origin "
                f"(a camera on the car is within {MAX_OFFSET_M:g} m)")
    return None


#: JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG's start-of-frame segment, walking the segment headers only.

    A few microseconds a frame where ``PIL.Image.open`` takes about 1.5 ms (it parses every marker in
    Python): the builder checks two images a frame. None if the bytes are not a JPEG with a frame header.
    """
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 9 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SOF:
            return int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def image_size(view: CameraView) -> tuple[int, int] | None:
    """(height, width) from the image header (no decode); None when the bytes are not an image."""
    size = jpeg_size(view.image)
    if size is not None:
        return size
    try:
        with Image.open(io.BytesIO(view.image)) as img:
            return img.height, img.width
    except Exception:
        return None


def check_boxes(view: CameraView, size: tuple[int, int] | None) -> str | None:
    """Why one of the camera's boxes cannot be an object's (naming its label id), or None."""
    if not len(view.boxes):
        return None
    b = np.asarray(view.boxes, np.float64).reshape(-1, 4)
    with np.errstate(invalid="ignore"):  # inf - inf in a broken box: NaN, reported below
        cx, cy, bw, bh = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    finite = np.isfinite(b).all(1)  # a NaN centre or size makes both corners NaN: one reason for both
    bad = {"non-finite centre or size": ~finite, "non-positive size": finite & ((bw <= 0) | (bh <= 0))}
    if size is not None:
        h, w = size
        bad["centre outside the image"] = finite & ((cx < 0) | (cx > w) | (cy < 0) | (cy > h))
    for reason, which in bad.items():
        if which.any():
            i = int(np.flatnonzero(which)[0])
            lid = view.label_ids[i] if i < len(view.label_ids) else str(i)
            return (f"box {lid!r}: {reason} (centre {cx[i]:g}, {cy[i]:g}; size {bw[i]:g} x {bh[i]:g}); "
                    f"{int(which.sum())} such box(es)")
    return None


_CHECKED: dict[tuple, str | None] = {}


def calibration_problem(cam: PinholeCamera) -> str | None:
    """Why a calibration cannot be true, or None; remembered per calibration (a segment repeats
    its calibrations in every frame)."""
    key = (cam.fu, cam.fv, cam.cu, cam.cv, cam.width, cam.height, tuple(cam.distortion),
           np.asarray(cam.rotation, np.float64).tobytes(), tuple(cam.translation))
    if key not in _CHECKED:
        if len(_CHECKED) > 256:
            _CHECKED.clear()
        _CHECKED[key] = check_intrinsics(cam) or check_extrinsic(cam)
    return _CHECKED[key]


def check_view(view: CameraView) -> None:
    """FrameError naming the camera when its calibration, image size or boxes cannot be true."""
    cam = view.calibration
    size = image_size(view)
    why = None
    if cam is not None:
        why = calibration_problem(cam)
        if why is None and size is not None and size != (cam.height, cam.width):
            why = (f"image is {size[0]}x{size[1]} (HxW) but the calibration says {cam.height}x{cam.width}; "
                   "images are never rescaled to fit")
        why = None if why is None else f"calibration: {why}"
    why = why or check_boxes(view, size)
    if why:
        raise FrameError(f"camera {view.name} {why}")


def check_frame(rec: FrameRecord, cameras: Sequence[str]) -> None:
    """FrameError (naming the frame's file and camera) for the first camera that cannot be true."""
    for name in cameras:
        try:
            check_view(rec.cameras[name])
        except FrameError as exc:
            raise FrameError(f"{rec.source}: frame {rec.timestamp_micros}: {exc}") from None
