"""A Waymo frame as plain Python objects, whatever it was read from (v1 TFRecord or v2 Parquet).

Readers produce :class:`FrameRecord`; the stitcher and the builder consume it. Images stay encoded
(JPEG bytes) until a stage needs pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

import numpy as np

from streetsynth import codec
from streetsynth.camera import PinholeCamera
from streetsynth.schema import CAMERA_NAMES


class FrameError(ValueError):
    """A frame that cannot be used; the message names the file and frame."""


@dataclass
class Panoptic:
    """A camera's panoptic label: ``label = semantic_class * divisor + local_instance_id``.

    The PNG is decoded on first use of ``label``, so reading frames stays cheap.
    """

    png: bytes
    divisor: int
    local_to_global: dict[int, int] = field(default_factory=dict)
    what: str = "panoptic label"

    @cached_property
    def label(self) -> np.ndarray:
        """(H, W) as stored (uint16 for Waymo's 16-bit PNGs)."""
        return decode_png_label(self.png, self.what)

    @property
    def semantic(self) -> np.ndarray:
        return self.label // self.divisor

    @property
    def instance(self) -> np.ndarray:
        return self.label % self.divisor


@dataclass
class CameraView:
    """One camera of one frame: encoded image, calibration, 2D boxes, optional panoptic label."""

    name: str
    image: bytes
    calibration: PinholeCamera | None
    boxes: np.ndarray  # (N, 4) xyxy pixels, float32
    types: np.ndarray  # (N,) Waymo Label.Type
    label_ids: list[str]
    panoptic: Panoptic | None = None

    def decode(self) -> np.ndarray:
        """RGB uint8 pixels; FrameError if the bytes are not an image."""
        return decode_image(self.image, what=f"camera {self.name}")

    def decode_bgr(self, reduce: int = 1) -> np.ndarray:
        """BGR uint8 pixels through OpenCV, at 1/``reduce`` size (1, 2, 4 or 8: JPEG's own DCT scaling)."""
        return decode_bgr(self.image, reduce, what=f"camera {self.name}")


@dataclass
class FrameRecord:
    """One frame: where it came from, its scene conditions and its cameras by name."""

    segment: str
    timestamp_micros: int
    time_of_day: str
    location: str
    weather: str
    cameras: dict[str, CameraView]
    source: str = ""  # file (and offset) it was read from, for messages

    @property
    def id(self) -> str:
        return f"{self.segment}_{self.timestamp_micros}"


def decode_image(data: bytes, what: str = "image") -> np.ndarray:
    """Decode JPEG/PNG bytes to RGB uint8; FrameError naming ``what`` for anything else."""
    try:
        return codec.decode(data, what)
    except ValueError as exc:
        raise FrameError(str(exc)) from None


def decode_bgr(data: bytes, reduce: int = 1, what: str = "image") -> np.ndarray:
    """Decode JPEG/PNG bytes to BGR uint8, optionally at 1/2, 1/4 or 1/8 size; FrameError for bad bytes."""
    try:
        return codec.decode_bgr(data, reduce, what)
    except ValueError as exc:
        raise FrameError(str(exc)) from None


def decode_png_label(data: bytes, what: str = "panoptic label") -> np.ndarray:
    """A 16-bit (or 8-bit) single-channel PNG label image, as stored."""
    try:
        img = codec.decode_unchanged(data, what)
    except ValueError as exc:
        raise FrameError(str(exc)) from None
    if img.ndim != 2:
        raise FrameError(f"{what}: not a single-channel PNG ({img.shape})")
    return img


def boxes_from_center(cx, cy, length, width) -> np.ndarray:
    """Waymo camera boxes (centre, length = x extent, width = y extent) as xyxy float32."""
    cx, cy, length, width = (np.asarray(a, np.float64) for a in (cx, cy, length, width))
    return np.stack([cx - length / 2, cy - width / 2, cx + length / 2, cy + width / 2], axis=-1).astype(np.float32).reshape(-1, 4)


def camera_from_values(name: str, intrinsic: Sequence[float], transform: Sequence[float], width: int, height: int,
                       where: str) -> PinholeCamera | None:
    """A camera from Waymo's intrinsic ``[f_u, f_v, c_u, c_v, k1, k2, p1, p2, k3]`` and 4x4 row-major
    extrinsic; None when the extrinsic is empty (no calibration). FrameError when malformed."""
    t = np.asarray(list(transform), np.float64)
    if t.size == 0:
        return None
    if t.size != 16:
        raise FrameError(f"{where}: {name} calibration: extrinsic has {t.size} values, need 16 (or none at all)")
    k = [float(v) for v in intrinsic]
    if len(k) < 4:
        raise FrameError(f"{where}: {name} calibration: intrinsic has {len(k)} values, need at least 4 (f_u, f_v, c_u, c_v)")
    t = t.reshape(4, 4)
    dist = tuple((k[4:9] + [0.0] * 5)[:5])
    return PinholeCamera(k[0], k[1], k[2], k[3], int(width), int(height), t[:3, :3].copy(),
                         tuple(float(v) for v in t[:3, 3]), dist)


def record_from_frame(frame, source: str = "") -> FrameRecord:
    """A FrameRecord from a parsed ``Frame`` proto (ours or the official one)."""
    ctx = frame.context
    calibs = {}
    for c in ctx.camera_calibrations:
        name = CAMERA_NAMES.get(int(c.name), str(c.name))
        calibs[name] = camera_from_values(name, c.intrinsic, c.extrinsic.transform, c.width, c.height, source)
    # Labels in id order, as the v2 reader gives them: the row's objects and instance ids follow it.
    labels = {CAMERA_NAMES.get(int(cl.name), str(cl.name)): sorted(cl.labels, key=lambda l: l.id)
              for cl in frame.camera_labels}
    cameras = {}
    for im in frame.images:
        name = CAMERA_NAMES.get(int(im.name), str(im.name))
        lab = labels.get(name, [])
        boxes = boxes_from_center([l.box.center_x for l in lab], [l.box.center_y for l in lab],
                                  [l.box.length for l in lab], [l.box.width for l in lab])
        pan = None
        seg = im.camera_segmentation_label
        if seg.panoptic_label:
            pan = Panoptic(
                bytes(seg.panoptic_label),
                int(seg.panoptic_label_divisor) or 1000,
                {int(m.local_instance_id): int(m.global_instance_id) for m in seg.instance_id_to_global_id_mapping},
                f"{source}: camera {name} panoptic label",
            )
        cameras[name] = CameraView(
            name=name,
            image=bytes(im.image),
            calibration=calibs.get(name),
            boxes=boxes,
            types=np.asarray([int(l.type) for l in lab], np.int64),
            label_ids=[l.id for l in lab],
            panoptic=pan,
        )
    stats = ctx.stats
    return FrameRecord(ctx.name, int(frame.timestamp_micros), stats.time_of_day, stats.location, stats.weather,
                       cameras, source)
