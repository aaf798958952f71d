"""Stitch FRONT and FRONT_RIGHT into one wide scene on a cylindrical canvas, cut along a seam.

Geometry comes from the calibrations (:mod:`streetsynth.camera`: distortion, each camera's own
centre, a projection surface at finite distance). Canvas rays meet the surface and each camera is
asked, from its own centre, which of its pixels sees that point; ``cv2.remap`` pulls them in. The
canvas is cropped (by default) to the largest rectangle the two views cover together, so no later
stage sees uncovered corners.

Exposure: a per-channel gain of FRONT_RIGHT against FRONT is estimated on the overlap and applied
before blending. Trust: the warped overlap strips are compared by structure (zero-mean NCC and the
phase-correlation shift per row band), never by brightness. A calibration whose strips disagree
is replaced by a feature registration: SIFT matches turned into undistorted rays with each camera's
own intrinsics, a 3-DOF rotation of FRONT_RIGHT seeded from its calibration (yaw RANSAC, then a
least-squares rotation on the inliers). The method used is recorded.

Blending: a seam (:mod:`.seam_cut`) is cut through the overlap where the two warped views agree,
around every labelled object the caller names (``keep``), and only a narrow feather along it mixes
the views; ``blend="feather"`` keeps the previous blend, each view's weight rising from 0 at the
edge of its valid area to 1 at ``ramp`` pixels inside it (``cv2.distanceTransform``). Geometry no
Waymo pair can have is a per-frame error (:mod:`.stitch_checks`). Work stays where it is needed:
each view is remapped only over its own columns, columns seen by one view are copied, only the
overlap is blended. Images may be RGB or BGR (the stitch is channel-agnostic; only the recorded
gains need the order) and may be decoded at a reduced size: maps are rescaled to the image they
are given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache

import cv2
import numpy as np

from streetsynth.camera import Cylinder, PinholeCamera, Surface, cylinder_for, yaw_matrix

from .frames import FrameError
from .seam_cut import Keep, Overlap, Seam, find_seam, seam_weights
from .stitch_checks import geometry_problem, registration_problem

VIEWS = ("FRONT", "FRONT_RIGHT")
CALIBRATION, REGISTRATION = "calibration", "registration"
#: Waymo cameras see about ±25.2° horizontally; used when a calibration is missing.
DEFAULT_HALF_FOV_DEG = 25.2
#: FRONT_RIGHT's yaw relative to FRONT when its calibration is missing (a seed for the registration).
DEFAULT_RIGHT_YAW_DEG = -45.0
#: Default projection surface (chosen by benchmarks/stitch_quality.py; see README "Issue 12").
DEFAULT_SURFACE = Surface("ground+cylinder", 30.0)
#: A calibration is distrusted when the median phase-correlation shift of the overlap's row bands
#: exceeds this angle (0.3° is 10 px at Waymo's full resolution: near-field parallax stays below).
MAX_SHIFT_DEG = 0.3
#: ... never below this many output pixels (phase correlation's precision on small, JPEG'd strips).
MIN_SHIFT_PX = 1.5
#: ... or when the overlap strips' zero-mean NCC falls below this (unrelated content).
MIN_NCC = 0.3
#: Row bands of the overlap measured by phase correlation.
BANDS = 8
#: Fewest RANSAC inliers for a registration to be trusted.
MIN_INLIERS = 8
#: Exposure gains are clipped to this range (a stronger difference is not exposure).
GAIN_RANGE = (0.5, 2.0)
#: How the overlap is blended by default: "seam" (cut where the views agree) or "feather" (across all of it).
BLEND = "seam"
BLENDS = ("seam", "feather")


@dataclass(frozen=True)
class ViewMap:
    """How one camera lands on the output canvas: canvas -> crop of the natural canvas -> camera."""

    cylinder: Cylinder
    cam: PinholeCamera
    scale: tuple[float, float]  # (sx, sy): natural canvas pixels per output pixel
    offset: tuple[float, float] = (0.0, 0.0)  # (x0, y0) of the crop in the natural canvas

    def canvas_to_view(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Camera pixel coordinates seen at output canvas points (NaN where none)."""
        (sx, sy), (x0, y0) = self.scale, self.offset
        return self.cylinder.to_pixels(self.cam, x0 + (np.asarray(xs) + 0.5) * sx - 0.5,
                                       y0 + (np.asarray(ys) + 0.5) * sy - 0.5)

    def view_to_canvas(self, us: np.ndarray, vs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output canvas coordinates of camera pixels (full-resolution pixel units)."""
        x, y = self.cylinder.from_pixels(self.cam, us, vs)
        (sx, sy), (x0, y0) = self.scale, self.offset
        return (x - x0 + 0.5) / sx - 0.5, (y - y0 + 0.5) / sy - 0.5


@dataclass
class StitchGeometry:
    """The two views' maps onto one output canvas, their valid areas, columns and blend weights."""

    method: str
    size: tuple[int, int]  # (H, W) of the output
    views: dict[str, ViewMap]
    maps: dict[str, tuple[np.ndarray, np.ndarray]]  # float32 cv2.remap maps over the view's columns
    cols: dict[str, tuple[int, int]]  # [c0, c1): output columns a view contributes to
    valid: dict[str, np.ndarray]  # (H, W) bool
    weights: dict[str, np.ndarray]  # (H, W) float32, normalised: they sum to 1 where any view is valid
    yaw_deg: float  # FRONT_RIGHT's yaw relative to FRONT
    front_x1: int
    right_x0: int
    crop: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the output in the natural canvas
    _scaled: dict = field(default_factory=dict, repr=False)

    def to_canvas(self, view: str, us, vs) -> tuple[np.ndarray, np.ndarray]:
        """Canvas coordinates of points of camera ``view`` (full-resolution camera pixels)."""
        return self.views[view].view_to_canvas(us, vs)

    def view_maps(self, view: str, shape: tuple[int, ...], fixed: bool = True,
                  cols: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The view's remap maps for an image of ``shape``, rescaled for reduced decodes, over the
        output columns ``cols`` (default: all of the view's). ``fixed``: in OpenCV's fixed-point form
        (1/32 px, remaps about twice as fast; bilinear only, since nearest-neighbour would
        truncate). Cached."""
        c0, c1 = self.cols[view]
        a, b = cols if cols is not None else (c0, c1)
        key = (view, *shape[:2], fixed, a, b)
        if key not in self._scaled:
            cam = self.views[view].cam
            mx, my = (np.ascontiguousarray(m[:, a - c0 : b - c0]) for m in self.maps[view])
            fx, fy = shape[1] / cam.width, shape[0] / cam.height
            if (fx, fy) != (1.0, 1.0):
                mx, my = (mx + 0.5) * fx - 0.5, (my + 0.5) * fy - 0.5
            self._scaled[key] = cv2.convertMaps(mx, my, cv2.CV_16SC2) if fixed else (mx, my)
        return self._scaled[key]

    def warp_strip(self, view: str, image: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """A camera image over its own canvas columns ``cols[view]``, zero where it does not see."""
        mx, my = self.view_maps(view, image.shape, fixed=interpolation == cv2.INTER_LINEAR)
        return cv2.remap(image, mx, my, interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def warp_image(self, view: str, image: np.ndarray) -> np.ndarray:
        """A camera image on the whole canvas (bilinear), zero where the camera does not see."""
        out = np.zeros((*self.size, *image.shape[2:]), image.dtype)
        c0, c1 = self.cols[view]
        out[:, c0:c1] = self.warp_strip(view, image)
        return out

    def warp_labels(self, view: str, labels: np.ndarray) -> np.ndarray:
        """A label image (ids, classes) on the canvas, nearest-neighbour, 0 where unseen."""
        src = labels if labels.dtype in (np.uint8, np.uint16, np.int16, np.float32) else labels.astype(np.int32)
        out = np.zeros(self.size, src.dtype)
        c0, c1 = self.cols[view]
        strip = self.warp_strip(view, src, cv2.INTER_NEAREST)
        out[:, c0:c1] = np.where(self.valid[view][:, c0:c1], strip, 0)
        return out

    @property
    def overlap_cols(self) -> tuple[int, int]:
        """[x0, x1): output columns both views contribute to."""
        return max(self.cols["FRONT"][0], self.cols["FRONT_RIGHT"][0]), min(self.cols["FRONT"][1], self.cols["FRONT_RIGHT"][1])

    def warp(self, images: dict[str, np.ndarray]) -> "Warped":
        """Both views remapped (bilinear) straight into one canvas where only one of them lands;
        their overlap columns are kept apart, per view, for the agreement measures and the blend."""
        x0, x1 = self.overlap_cols
        (f0, f1), (r0, r1) = self.cols["FRONT"], self.cols["FRONT_RIGHT"]
        first = images["FRONT"]
        covered = f0 == 0 and r1 == self.size[1] and x1 >= x0 and r0 <= f1  # every column written below
        canvas = (np.empty if covered else np.zeros)((*self.size, *first.shape[2:]), first.dtype)
        parts, overlap = {}, {}
        for name in VIEWS:
            img, (c0, c1) = images[name], self.cols[name]
            ranges = [(c0, min(c1, x0)), (max(c0, x1), c1)] if x1 > x0 else [(c0, c1)]
            parts[name] = [(a, b) for a, b in ranges if b > a]
            for a, b in parts[name]:
                mx, my = self.view_maps(name, img.shape, cols=(a, b))
                cv2.remap(img, mx, my, cv2.INTER_LINEAR, dst=canvas[:, a:b], borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            if x1 > x0:
                mx, my = self.view_maps(name, img.shape, cols=(x0, x1))
                overlap[name] = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        both = self.valid["FRONT"][:, x0:x1] & self.valid["FRONT_RIGHT"][:, x0:x1]
        return Warped(canvas, overlap, both, parts["FRONT_RIGHT"])

    def blend(self, warped: "Warped", agree: "Agreement | None" = None, seam: Seam | None = None) -> np.ndarray:
        """The warped canvas with FRONT_RIGHT's gain (``agree``'s; none without it) applied in place
        and the overlap blended (uint8, any channel order): across ``seam``'s narrow feather, or
        feathered across the whole overlap without one."""
        out = warped.canvas
        lut = agree.lut if agree is not None else None
        if lut is not None:
            for a, b in warped.right_parts:
                cv2.LUT(out[:, a:b], lut, dst=out[:, a:b])
        x0, x1 = self.overlap_cols
        if x1 > x0:
            fa, fb = warped.overlap["FRONT"], warped.overlap["FRONT_RIGHT"]
            fb = fb if lut is None else agree.gained
            if seam is None:
                wa, wb = self.overlap_weights
            else:
                wb = seam_weights(seam, self.overlap)
                wa = 1.0 - wb
            cv2.blendLinear(fa, fb, wa, wb, dst=out[:, x0:x1])
        return out

    @cached_property
    def overlap(self) -> Overlap:
        """The overlap columns and where each view sees there (for the seam; cached)."""
        x0, x1 = self.overlap_cols
        return Overlap(x0, np.ascontiguousarray(self.valid["FRONT"][:, x0:x1]), np.ascontiguousarray(self.valid["FRONT_RIGHT"][:, x0:x1]))

    @cached_property
    def problem(self) -> str | None:
        """Why this geometry cannot be a Waymo FRONT + FRONT_RIGHT pair, or None (cached)."""
        return geometry_problem(self)

    @cached_property
    def overlap_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """FRONT's and FRONT_RIGHT's feather weights over the overlap columns, contiguous."""
        x0, x1 = self.overlap_cols
        wa = np.ascontiguousarray(self.weights["FRONT"][:, x0:x1])
        return wa, 1.0 - wa


@dataclass
class Warped:
    """Two views remapped onto one canvas: single-view columns in ``canvas``, the overlap apart."""

    canvas: np.ndarray  # (H, W, C); the overlap columns are filled by StitchGeometry.blend
    overlap: dict[str, np.ndarray]  # per view, its pixels over the overlap columns
    both: np.ndarray  # (H, overlap width) bool: both views valid
    right_parts: list[tuple[int, int]]  # FRONT_RIGHT's single-view column ranges in the canvas


@dataclass
class Stitched:
    """A stitched scene: the image and how it was made (see ``schema.stitch_feature``)."""

    image: np.ndarray  # (H, W, 3) uint8, in the channel order it was given
    geometry: StitchGeometry
    gain: tuple[float, float, float]  # FRONT_RIGHT's per-channel gain, RGB order
    residual_px: float  # median |phase-correlation shift| of the overlap's row bands, output pixels
    ncc: float  # zero-mean NCC of the overlap strips
    overlap_error: float  # mean |grey difference| in the overlap after the gain
    overlap_error_raw: float  # ... before it
    seam: Seam | None = None  # the cut through the overlap (None: feathered across all of it)

    @property
    def method(self) -> str:
        return self.geometry.method

    def to_feature(self) -> dict:
        g = self.geometry
        return {"method": g.method, "yaw_deg": float(g.yaw_deg), "front_x1": int(g.front_x1), "right_x0": int(g.right_x0),
                "gain": [float(v) for v in self.gain], "residual_px": float(self.residual_px),
                "seam_x": [] if self.seam is None else [int(v) for v in self.seam.columns]}


def front_region(geometry: StitchGeometry, seam: Seam | None = None) -> np.ndarray:
    """(H, W) bool: output pixels that come (mostly) from FRONT, by ``seam`` or else by the feather weights."""
    if seam is None:
        return geometry.weights["FRONT"] >= geometry.weights["FRONT_RIGHT"]
    out = np.zeros(geometry.size, bool)
    x0, x1 = geometry.overlap_cols
    out[:, : max(x0, 0)] = True
    if x1 > x0:
        out[:, x0:x1] = seam_weights(seam, geometry.overlap) < 0.5
    return out


def default_camera(width: int, height: int, yaw: float = 0.0) -> PinholeCamera:
    """A Waymo-like pinhole camera (±25.2° horizontally, centred principal point) for uncalibrated views."""
    f = (width / 2.0) / np.tan(np.radians(DEFAULT_HALF_FOV_DEG))
    return PinholeCamera(f, f, width / 2.0, height / 2.0, width, height, yaw_matrix(yaw))


def scaled_camera(cam: PinholeCamera, width: int, height: int) -> PinholeCamera:
    """The same camera for an image resized to ``width`` × ``height`` (distortion is scale-free)."""
    fx, fy = width / cam.width, height / cam.height
    return replace(cam, fu=cam.fu * fx, fv=cam.fv * fy, cu=(cam.cu + 0.5) * fx - 0.5, cv=(cam.cv + 0.5) * fy - 0.5,
                   width=width, height=height)


def covered_rectangle(valid: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the largest axis-aligned rectangle inside the True area of ``valid``.

    For every top row, all bottom rows at once: columns valid over the whole band, then the
    longest run of such columns (vectorised over bottoms). Top rows stop once even the full width
    down to the last row cannot beat the best area found (exact: the same answer, found sooner).
    """
    h, w = valid.shape
    cs = np.vstack([np.zeros((1, w), np.int32), np.cumsum(valid, axis=0, dtype=np.int32)])
    cols = np.arange(w)
    best, rect = 0, (0, 0, w, h)
    for t in range(h):
        if (h - t) * w <= best:
            break
        bs = np.arange(t + 1, h + 1)
        full = (cs[t + 1 :] - cs[t]) == (bs - t)[:, None]  # (nb, w)
        last_false = np.maximum.accumulate(np.where(full, -1, cols), axis=1)
        run = cols - last_false  # length of the True run ending at each column
        end = run.argmax(axis=1)
        length = run[np.arange(len(bs)), end]
        area = length * (bs - t)
        k = int(area.argmax())
        if area[k] > best:
            best = int(area[k])
            rect = (int(end[k] - length[k] + 1), t, int(end[k] + 1), int(bs[k]))
    return rect


def _crop(cyl: Cylinder, cams: dict[str, PinholeCamera], step: float) -> tuple[int, int, int, int]:
    """The largest rectangle of the natural canvas covered by the union of the views (``step``-pixel grid)."""
    gh, gw = int(cyl.height // step), int(cyl.width // step)
    ys, xs = (np.mgrid[0:gh, 0:gw] + 0.5) * step
    union = np.zeros((gh, gw), bool)
    for cam in cams.values():
        u, v = cyl.to_pixels(cam, xs, ys)
        union |= (u >= 0) & (u <= cam.width - 1) & (v >= 0) & (v <= cam.height - 1)
    x0, y0, x1, y1 = covered_rectangle(union)
    # Shrink by one grid cell on each side so the rectangle's edges lie inside the covered area.
    return (int(np.ceil((x0 + 1) * step)), int(np.ceil((y0 + 1) * step)), int((x1 - 1) * step), int((y1 - 1) * step))


def _in_view(cam: PinholeCamera, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.isfinite(u) & np.isfinite(v) & (u >= -0.5) & (u <= cam.width - 0.5) & (v >= -0.5) & (v <= cam.height - 0.5)


def _view_columns(vm: ViewMap, out_h: int, out_w: int, rows: int = 64, margin: int = 8):
    """``(c0, c1, ok, u, v)``: the output columns [c0, c1) a view sees, with its validity and camera
    coordinates over just those columns. The columns are first found on every ``out_h // rows``-th
    row (and the last) and widened by ``margin``; every row is then computed only there. Where the
    view reaches the edge of that range, the whole width is computed: the answer is always exact."""
    step = max(1, out_h // rows)
    ys = np.r_[np.arange(0, out_h, step), out_h - 1].astype(np.float64)
    xs, ys = np.meshgrid(np.arange(out_w, dtype=np.float64), ys)
    u, v = vm.canvas_to_view(xs, ys)
    seen = np.flatnonzero(_in_view(vm.cam, u, v).any(axis=0))
    lo, hi = (max(0, int(seen[0]) - margin), min(out_w, int(seen[-1]) + 1 + margin)) if len(seen) else (0, out_w)
    for _ in range(2):
        ys, xs = np.mgrid[0:out_h, lo:hi].astype(np.float64)
        u, v = vm.canvas_to_view(xs, ys)
        ok = _in_view(vm.cam, u, v)
        seen = np.flatnonzero(ok.any(axis=0))
        touches = len(seen) and ((seen[0] == 0 and lo > 0) or (seen[-1] == hi - lo - 1 and hi < out_w))
        if not touches:
            break
        lo, hi = 0, out_w  # the sparse rows missed part of the view's reach
    if not len(seen):
        return 0, 0, ok[:, :0], u[:, :0], v[:, :0]
    a, b = int(seen[0]), int(seen[-1]) + 1
    return lo + a, lo + b, ok[:, a:b], u[:, a:b], v[:, a:b]


def make_geometry(method: str, cams: dict[str, PinholeCamera], size: tuple[int, int] | None,
                  surface: Surface = DEFAULT_SURFACE, crop: bool = True) -> StitchGeometry:
    """Maps, valid areas, columns and feather weights of ``cams`` on an output of ``size`` (H, W).

    ``size=None`` keeps the natural canvas (FRONT's pixel density). ``crop`` keeps only the largest
    rectangle both views cover together (else the whole bounding canvas, corners black).
    """
    cyl = cylinder_for([cams["FRONT"], cams["FRONT_RIGHT"]], f=cams["FRONT"].fu, surface=surface)
    box = _crop(cyl, cams, max(1.0, cyl.height / 160.0)) if crop else (0, 0, cyl.width, cyl.height)
    bw, bh = box[2] - box[0], box[3] - box[1]
    out_h, out_w = size if size is not None else (bh, bw)
    if out_h < 8 or out_w < 8:
        raise ValueError(f"stitched size must be at least 8x8, got {out_h}x{out_w}")
    scale = (bw / out_w, bh / out_h)
    views, maps, valid, cols = {}, {}, {}, {}
    for name in VIEWS:
        cam = cams[name]
        vm = ViewMap(cyl, cam, scale, (float(box[0]), float(box[1])))
        c0, c1, ok, u, v = _view_columns(vm, out_h, out_w)
        views[name], cols[name] = vm, (c0, c1)
        valid[name] = np.zeros((out_h, out_w), bool)
        valid[name][:, c0:c1] = ok
        maps[name] = (np.where(ok, u, -1e4).astype(np.float32), np.where(ok, v, -1e4).astype(np.float32))
    front_x1, right_x0 = cols["FRONT"][1], cols["FRONT_RIGHT"][0]
    ramp = float(max(1, front_x1 - right_x0))
    raw = {n: np.minimum(cv2.distanceTransform(valid[n].astype(np.uint8), cv2.DIST_L2, 3) / ramp, 1.0) for n in VIEWS}
    total = raw["FRONT"] + raw["FRONT_RIGHT"]
    weights = {n: np.divide(raw[n], total, out=np.zeros_like(total), where=total > 0).astype(np.float32) for n in VIEWS}
    yaw = float(np.degrees(cams["FRONT_RIGHT"].yaw - cams["FRONT"].yaw))
    return StitchGeometry(method, (out_h, out_w), views, maps, cols, valid, weights, yaw, front_x1, right_x0, box)


def _cam_key(cam: PinholeCamera) -> tuple:
    return (cam.fu, cam.fv, cam.cu, cam.cv, cam.width, cam.height, tuple(np.round(cam.rotation, 12).reshape(-1)),
            tuple(cam.translation), tuple(cam.distortion))


def _cam_from_key(key: tuple) -> PinholeCamera:
    fu, fv, cu, cv, w, h, rot, t, dist = key
    return PinholeCamera(fu, fv, cu, cv, w, h, np.asarray(rot, np.float64).reshape(3, 3), t, dist)


@lru_cache(maxsize=16)
def _cached_calibrated(front_key: tuple, right_key: tuple, size: tuple | None, surface: Surface, crop: bool) -> StitchGeometry:
    cams = {"FRONT": _cam_from_key(front_key), "FRONT_RIGHT": _cam_from_key(right_key)}
    return make_geometry(CALIBRATION, cams, size, surface, crop)


def calibrated_geometry(front: PinholeCamera, right: PinholeCamera, size: tuple[int, int] | None = None,
                        surface: Surface = DEFAULT_SURFACE, crop: bool = True) -> StitchGeometry:
    """The (cached) geometry of two calibrated cameras."""
    return _cached_calibrated(_cam_key(front), _cam_key(right), None if size is None else tuple(size), surface, crop)


def _grey(img: np.ndarray) -> np.ndarray:
    return (cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img).astype(np.float32)


def _unsaturated(img: np.ndarray, low: int) -> np.ndarray:
    """uint8 mask (255) of pixels whose every channel lies in [low, 249]."""
    return cv2.inRange(img, (low,) * img.shape[2], (249,) * img.shape[2])


def exposure_gain(fa: np.ndarray, fb: np.ndarray, both: np.ndarray) -> np.ndarray:
    """Per-channel gain that brings FRONT_RIGHT's overlap to FRONT's (ratio of means, unsaturated pixels)."""
    use = cv2.bitwise_and(cv2.bitwise_and(_unsaturated(fa, 0), _unsaturated(fb, 5)), both.view(np.uint8) * np.uint8(255))
    if cv2.countNonZero(use) < 64:
        return np.ones(fa.shape[2])
    ma, mb = np.asarray(cv2.mean(fa, use)[: fa.shape[2]]), np.asarray(cv2.mean(fb, use)[: fb.shape[2]])
    return np.clip(ma / np.maximum(mb, 1e-6), *GAIN_RANGE)


def gain_lut(gain: np.ndarray, channels: int) -> np.ndarray | None:
    """(256, 1, C) uint8 lookup table of a per-channel gain; None for unit gain."""
    if np.allclose(gain, 1.0):
        return None
    lut = np.clip(np.arange(256, dtype=np.float64)[:, None] * np.asarray(gain)[None, :] + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(lut.reshape(256, 1, -1), (256, 1, channels)))


def band_shifts(ga: np.ndarray, gb: np.ndarray, both: np.ndarray, bands: int = BANDS) -> np.ndarray:
    """(bands, 2) phase-correlation shifts (dx, dy) of FRONT_RIGHT's grey strip against FRONT's, per row band.

    Rows where the two views do not both see most of the strip are left out; NaN where a band has
    too little of both or too little texture to measure.
    """
    rows = np.flatnonzero(both.mean(axis=1) > 0.9)
    out = np.full((bands, 2), np.nan)
    if len(rows) < bands * 8 or ga.shape[1] < 8:
        return out
    cols = np.flatnonzero(both[rows].all(axis=0))
    if len(cols) < 8:
        return out
    ga, gb = ga[rows, cols[0] : cols[-1] + 1], gb[rows, cols[0] : cols[-1] + 1]
    step = len(rows) // bands
    win = cv2.createHanningWindow((ga.shape[1], step), cv2.CV_32F)
    for i in range(bands):
        a, b = ga[i * step : (i + 1) * step], gb[i * step : (i + 1) * step]
        ma, sa = cv2.meanStdDev(a)
        mb, sb = cv2.meanStdDev(b)
        if sa[0, 0] < 2.0 or sb[0, 0] < 2.0:
            continue
        (dx, dy), response = cv2.phaseCorrelate(a - float(ma[0, 0]), b - float(mb[0, 0]), win)
        if response > 0.05:
            out[i] = (dx, dy)
    return out


def zncc(ga: np.ndarray, gb: np.ndarray, both: np.ndarray) -> float:
    """Zero-mean normalised cross-correlation of grey strips where both see (1 for identical structure);
    from masked means (OpenCV, double accumulators), without gathering the pixels."""
    mask = np.ascontiguousarray(both).view(np.uint8)
    if cv2.countNonZero(mask) < 16:
        return float("nan")
    (ma,), (sa,) = cv2.meanStdDev(ga, mask=mask)
    (mb,), (sb,) = cv2.meanStdDev(gb, mask=mask)
    den = float(sa[0] * sb[0])
    cov = cv2.mean(cv2.multiply(ga, gb), mask)[0] - float(ma[0] * mb[0])
    return float(cov / den) if den > 0 else float("nan")


@dataclass
class Agreement:
    """How well the two warped views agree in their overlap."""

    shifts: np.ndarray  # (bands, 2) output pixels
    ncc: float
    error_raw: float  # mean |grey difference| before the gain
    error: float  # after it
    gain: np.ndarray
    lut: np.ndarray | None = field(default=None, repr=False)  # the gain's lookup table (None: unit gain)
    gained: np.ndarray | None = field(default=None, repr=False)  # FRONT_RIGHT's overlap with the gain applied
    grey: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)  # FRONT's and gained FRONT_RIGHT's grey overlap

    @property
    def residual(self) -> float:
        """Median |shift| over the measured bands (0 when none could be measured)."""
        mag = np.hypot(self.shifts[:, 0], self.shifts[:, 1])
        mag = mag[np.isfinite(mag)]
        return float(np.median(mag)) if len(mag) else 0.0

    def trusted(self, max_shift_px: float) -> bool:
        return not (self.residual > max_shift_px or (np.isfinite(self.ncc) and self.ncc < MIN_NCC))


def agreement(warped: Warped) -> Agreement:
    """Structure and exposure agreement of the two warped views in their overlap (grey computed once)."""
    both = warped.both
    fa, fb = warped.overlap.get("FRONT"), warped.overlap.get("FRONT_RIGHT")
    if fa is None or both.sum() < 16:
        channels = warped.canvas.shape[2] if warped.canvas.ndim == 3 else 1
        return Agreement(np.full((BANDS, 2), np.nan), float("nan"), float("inf"), float("inf"), np.ones(channels))
    gain = exposure_gain(fa, fb, both)
    lut = gain_lut(gain, fb.shape[2] if fb.ndim == 3 else 1)
    gained = fb if lut is None else cv2.LUT(fb, lut)
    ga, gb, gbg = _grey(fa), _grey(fb), _grey(gained)
    mask = both.view(np.uint8)
    raw = float(cv2.mean(cv2.absdiff(ga, gb), mask)[0])
    err = float(cv2.mean(cv2.absdiff(ga, gbg), mask)[0])
    return Agreement(band_shifts(ga, gbg, both), zncc(ga, gb, both), raw, err, gain, lut, gained, (ga, gbg))


def max_shift_px(geometry: StitchGeometry) -> float:
    """The distrust threshold in output pixels (MAX_SHIFT_DEG at the output's horizontal density)."""
    cyl = geometry.views["FRONT"].cylinder
    return max(MIN_SHIFT_PX, float(np.radians(MAX_SHIFT_DEG) * cyl.f / geometry.views["FRONT"].scale[0]))


def _kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation R minimising sum |R a_i - b_i|^2."""
    u, _, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def register_rotation(front: np.ndarray, right: np.ndarray, front_cam: PinholeCamera, right_cam: PinholeCamera,
                      min_inliers: int = MIN_INLIERS, tol_px: float = 3.0, bgr: bool = False) -> np.ndarray | None:
    """FRONT_RIGHT's camera→vehicle rotation from features; None if the evidence is weak.

    ``front_cam`` / ``right_cam`` are the cameras at the images' own sizes (their rotations are
    FRONT's pose and the seed). SIFT on the thirds that can overlap, Lowe's ratio test, undistorted
    rays; RANSAC over the yaw each match implies around the seed, then a 3-DOF rotation fitted to
    the inliers (twice, re-selecting inliers).
    """
    sift = cv2.SIFT_create(nfeatures=4000)
    code = cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY
    gf, gr = (cv2.cvtColor(x, code) if x.ndim == 3 else x for x in (front, right))
    mf, mr = np.zeros_like(gf), np.zeros_like(gr)
    mf[:, 2 * gf.shape[1] // 3 :] = 255
    mr[:, : gr.shape[1] // 3] = 255
    kf, df = sift.detectAndCompute(gf, mf)
    kr, dr = sift.detectAndCompute(gr, mr)
    if df is None or dr is None or len(kf) < 2 or len(kr) < 2:
        return None
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(dr, df, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
    if len(good) < min_inliers:
        return None
    pf = np.float64([kf[m.trainIdx].pt for m in good])
    pr = np.float64([kr[m.queryIdx].pt for m in good])
    bf = _unit(front_cam.rays(pf[:, 0], pf[:, 1]) @ front_cam.rotation.T)  # vehicle frame
    ar = _unit(right_cam.rays(pr[:, 0], pr[:, 1]))  # FRONT_RIGHT's camera frame
    seed = right_cam.rotation
    rr = ar @ seed.T
    tol = np.cos(tol_px / front_cam.fu)
    delta = np.r_[0.0, np.arctan2(bf[:, 1], bf[:, 0]) - np.arctan2(rr[:, 1], rr[:, 0])]
    c, s = np.cos(delta)[:, None], np.sin(delta)[:, None]
    dots = (c * rr[None, :, 0] - s * rr[None, :, 1]) * bf[None, :, 0] + (s * rr[None, :, 0] + c * rr[None, :, 1]) * bf[None, :, 1] \
        + rr[None, :, 2] * bf[None, :, 2]
    rot = yaw_matrix(float(delta[int(np.argmax((dots > tol).sum(axis=1)))])) @ seed
    for _ in range(2):
        inliers = (ar @ rot.T * bf).sum(axis=1) > tol
        if inliers.sum() < min_inliers:
            return None
        rot = _kabsch(ar[inliers], bf[inliers])
    return rot if ((ar @ rot.T * bf).sum(axis=1) > tol).sum() >= min_inliers else None


def registered_geometry(images: dict[str, np.ndarray], front_cam: PinholeCamera | None, right_cam: PinholeCamera | None,
                        size: tuple[int, int] | None, surface: Surface, crop: bool, bgr: bool = False) -> StitchGeometry | None:
    """A geometry whose FRONT_RIGHT rotation comes from features (its own intrinsics kept)."""
    (fh, fw), (rh, rw) = images["FRONT"].shape[:2], images["FRONT_RIGHT"].shape[:2]
    front = front_cam or default_camera(fw, fh)
    right = right_cam or replace(default_camera(rw, rh), rotation=front.rotation @ yaw_matrix(np.radians(DEFAULT_RIGHT_YAW_DEG)),
                                 translation=front.translation)
    # Without calibrations the lens distortion is unknown: allow the few pixels it bends by.
    tol = 3.0 if front_cam is not None and right_cam is not None else 8.0
    rot = register_rotation(images["FRONT"], images["FRONT_RIGHT"], scaled_camera(front, fw, fh), scaled_camera(right, rw, rh),
                           tol_px=tol, bgr=bgr)
    if rot is None:
        return None
    return make_geometry(REGISTRATION, {"FRONT": front, "FRONT_RIGHT": replace(right, rotation=rot)}, size, surface, crop)


def _reduction(name: str, img: np.ndarray, cam: PinholeCamera | None, what: str) -> int | None:
    """The factor (1, 2, 4, 8) an image is decoded down from its calibrated size; FrameError if none."""
    if cam is None:
        return None
    h, w = img.shape[:2]
    for k in (1, 2, 4, 8):
        if (h, w) == (-(-cam.height // k), -(-cam.width // k)):
            return k
    raise FrameError(f"{what}: camera {name} image is {w}x{h} but its calibration says {cam.width}x{cam.height}")


def _check_sizes(images: dict[str, np.ndarray], cams: dict[str, PinholeCamera | None], what: str) -> None:
    """FrameError unless each image has its calibrated size, both reduced by one same decode factor."""
    k = {n: _reduction(n, images[n], cams[n], what) for n in VIEWS}
    if None not in k.values() and k["FRONT"] != k["FRONT_RIGHT"]:
        odd = "FRONT_RIGHT" if k["FRONT"] == 1 else "FRONT"
        h, w = images[odd].shape[:2]
        raise FrameError(f"{what}: camera {odd} image is {w}x{h} but its calibration says "
                         f"{cams[odd].width}x{cams[odd].height}")


def _choose(images: dict[str, np.ndarray], front_cam: PinholeCamera | None, right_cam: PinholeCamera | None,
            size, surface: Surface, crop: bool, bgr: bool, what: str, check: bool) -> tuple[StitchGeometry, Warped, Agreement]:
    """The calibrated geometry when its overlap agrees in structure, else a feature registration.
    ``check``: a calibrated geometry no Waymo pair can have raises at once."""
    geo, agree, warped = None, None, None
    if front_cam is not None and right_cam is not None:
        geo = calibrated_geometry(front_cam, right_cam, size, surface, crop)
        if check and geo.problem:
            raise FrameError(f"{what}: implausible calibration: {geo.problem}")
        warped = geo.warp(images)
        agree = agreement(warped)
    if geo is None or not agree.trusted(max_shift_px(geo)):
        alt = registered_geometry(images, front_cam, right_cam, size, surface, crop, bgr)
        if alt is not None:
            alt_warped = alt.warp(images)
            alt_agree = agreement(alt_warped)
            if geo is None or alt_agree.residual < agree.residual or (alt_agree.ncc > agree.ncc + 0.2):
                geo, warped, agree = alt, alt_warped, alt_agree
    if geo is None:
        raise FrameError(f"{what}: cannot align FRONT_RIGHT to FRONT: calibration missing and too few "
                         "feature matches for a registration")
    return geo, warped, agree


def stitch(front: np.ndarray, right: np.ndarray, front_cam: PinholeCamera | None, right_cam: PinholeCamera | None,
           size: tuple[int, int] | None = None, surface: Surface = DEFAULT_SURFACE, crop: bool = True,
           gain: bool = True, bgr: bool = False, what: str = "frame",
           keep: Callable[[StitchGeometry], list[Keep]] | None = None, blend: str | None = None,
           check: bool = True) -> Stitched:
    """Stitch FRONT and FRONT_RIGHT images (RGB, or BGR with ``bgr``) into one (H, W) = ``size`` scene.

    Images may be decoded at 1/2, 1/4 or 1/8 of the calibrated size. Uses the calibrations when both
    are present and their overlap agrees in structure; otherwise a feature registration. ``blend``
    (default ``BLEND``): "seam" cuts the overlap where the views agree, keeping whole every object
    ``keep(geometry)`` names; "feather" blends across the whole overlap. ``check``: geometry no
    Waymo pair can have (:mod:`.stitch_checks`) raises. FrameError (naming ``what``) when the frame
    cannot be stitched.
    """
    images = {"FRONT": front, "FRONT_RIGHT": right}
    _check_sizes(images, {"FRONT": front_cam, "FRONT_RIGHT": right_cam}, what)
    geo, warped, agree = _choose(images, front_cam, right_cam, size, surface, crop, bgr, what, check)
    if check:
        problem = geo.problem
        if problem is None and geo.method == REGISTRATION and right_cam is not None:
            problem = registration_problem(geo.views["FRONT_RIGHT"].cam.rotation, right_cam.rotation)
        if problem:
            raise FrameError(f"{what}: implausible {geo.method}: {problem}")
    blend = blend or BLEND
    if blend not in BLENDS:
        raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    seam = None
    x0, x1 = geo.overlap_cols
    if blend == "seam" and agree.grey is not None and x1 > x0:
        seam = find_seam(*agree.grey, geo.overlap, keep(geo) if keep is not None else [])
    g = agree.gain if gain else np.ones(3)
    rgb_gain = tuple(float(v) for v in (g[::-1] if bgr else g))
    return Stitched(geo.blend(warped, agree if gain else None, seam), geo, rgb_gain, agree.residual, agree.ncc,
                    agree.error if gain else agree.error_raw, agree.error_raw, seam)


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio (dB) of two uint8 images, optionally over a boolean area."""
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if where is not None:
        d = d[where]
    mse = float(d.mean()) if d.size else 0.0
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
