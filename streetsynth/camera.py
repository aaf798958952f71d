"""Waymo camera geometry: distorted cameras at their own centres, and the surface they project onto.

Waymo conventions: ``intrinsic = [f_u, f_v, c_u, c_v, k1, k2, p1, p2, k3]``; ``extrinsic`` is the
4×4 row-major camera→vehicle transform; camera and vehicle frames have x forward, y left, z up.
A camera direction ``(x, y, z)`` has normalised coordinates ``(-y/x, -z/x)`` (right, down), which
OpenCV's radial-tangential model distorts before ``u = f_u x_d + c_u``, ``v = f_v y_d + c_v``.

The canvas is a cylinder around a centre ``c`` (by default the mean of the cameras' centres): a
canvas pixel ``(x, y)`` looks from ``c`` along azimuth ``theta = theta_left - x / f`` (growing to the
left) and height ``h = (c_y - y) / f`` per unit of horizontal distance. Where that ray meets the
:class:`Surface` (a vertical cylinder of finite radius, optionally with the ground plane in front of
it) is the 3-D point every camera is asked about, from its own centre: parallax vanishes on the
surface and grows with the distance from it. ``Surface(kind="infinity")`` is the rotation-only
model (translations ignored), the previous behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

SURFACES = ("cylinder", "ground+cylinder", "infinity")
#: Iteration criteria of ``cv2.undistortPoints`` (the inverse of the distortion has no closed form).
UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-10)


def yaw_matrix(yaw: float) -> np.ndarray:
    """Rotation about the vehicle's z axis by ``yaw`` radians (positive turns left)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def pitch_matrix(pitch: float) -> np.ndarray:
    """Rotation about y by ``pitch`` radians (positive tilts the optical axis down)."""
    c, s = np.cos(pitch), np.sin(pitch)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def roll_matrix(roll: float) -> np.ndarray:
    """Rotation about x (the optical axis) by ``roll`` radians."""
    c, s = np.cos(roll), np.sin(roll)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


@dataclass(frozen=True)
class PinholeCamera:
    """One calibrated camera: intrinsics, distortion, image size and its camera→vehicle pose."""

    fu: float
    fv: float
    cu: float
    cv: float
    width: int
    height: int
    rotation: np.ndarray  # 3×3 camera→vehicle
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    distortion: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)  # k1, k2, p1, p2, k3

    @property
    def yaw(self) -> float:
        """Azimuth of the optical axis in the vehicle frame, radians (left positive)."""
        return float(np.arctan2(self.rotation[1, 0], self.rotation[0, 0]))

    @property
    def half_fov(self) -> float:
        """Half the horizontal field of view of an undistorted centred camera, radians."""
        return float(np.arctan2(self.width / 2.0, self.fu))

    @property
    def k(self) -> np.ndarray:
        return np.array([[self.fu, 0.0, self.cu], [0.0, self.fv, self.cv], [0.0, 0.0, 1.0]])

    @property
    def distorted(self) -> bool:
        return any(float(d) != 0.0 for d in self.distortion)

    @classmethod
    def from_calibration(cls, calib) -> "PinholeCamera":
        """From a ``CameraCalibration`` proto (ours or the official one)."""
        k = list(calib.intrinsic)
        if len(k) < 4:
            raise ValueError(f"camera {calib.name}: intrinsic has {len(k)} values, need at least 4")
        t = np.asarray(list(calib.extrinsic.transform), dtype=np.float64)
        if t.size != 16:
            raise ValueError(f"camera {calib.name}: extrinsic has {t.size} values, need 16")
        t = t.reshape(4, 4)
        dist = tuple(float(v) for v in (k[4:9] + [0.0] * 5)[:5])
        return cls(k[0], k[1], k[2], k[3], int(calib.width), int(calib.height), t[:3, :3].copy(),
                   tuple(float(v) for v in t[:3, 3]), dist)

    def extrinsic(self) -> list[float]:
        """The 4×4 row-major camera→vehicle transform as Waymo stores it."""
        t = np.eye(4)
        t[:3, :3] = self.rotation
        t[:3, 3] = self.translation
        return [float(v) for v in t.reshape(-1)]

    def intrinsic(self) -> list[float]:
        return [self.fu, self.fv, self.cu, self.cv, *(float(d) for d in self.distortion)]

    @cached_property
    def max_r2(self) -> float:
        """Squared undistorted radius a little beyond the image corners: the polynomial folds back
        further out, so points there would land inside the image by mistake."""
        d = self.rays(*self.border(16))
        return float(((d[:, 1] ** 2 + d[:, 2] ** 2) / d[:, 0] ** 2).max() * 1.1)

    def project(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (u, v) of camera-frame directions ``d[..., 3]``; NaN behind the camera or outside
        its field of view (closed form)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            ok = d[..., 0] > 1e-6
            x = np.where(ok, -d[..., 1] / d[..., 0], np.nan)
            y = np.where(ok, -d[..., 2] / d[..., 0], np.nan)
        k1, k2, p1, p2, k3 = self.distortion
        if self.distorted:
            r2 = x * x + y * y
            far = r2 > self.max_r2
            x, y, r2 = np.where(far, np.nan, x), np.where(far, np.nan, y), np.where(far, np.nan, r2)
            radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
            x, y = (x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x),
                    y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y)
        return self.fu * x + self.cu, self.fv * y + self.cv

    def rays(self, us: np.ndarray, vs: np.ndarray) -> np.ndarray:
        """Camera-frame directions ``(1, -x, -y)`` of pixels, undistorted with ``cv2.undistortPoints``."""
        us, vs = np.asarray(us, np.float64), np.asarray(vs, np.float64)
        if self.distorted:
            pts = np.stack([us.reshape(-1), vs.reshape(-1)], -1)[:, None, :]
            und = cv2.undistortPoints(pts, self.k, np.asarray(self.distortion, np.float64),
                                      criteria=UNDISTORT_CRITERIA).reshape(us.shape + (2,))
            x, y = und[..., 0], und[..., 1]
        else:
            x, y = (us - self.cu) / self.fu, (vs - self.cv) / self.fv
        return np.stack([np.ones_like(x), -x, -y], axis=-1)

    def border(self, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates along the image's four edges."""
        t = np.linspace(0.0, 1.0, n)
        w, h = self.width - 0.5, self.height - 0.5
        us = np.concatenate([np.full(n, -0.5), np.full(n, w), -0.5 + t * (w + 0.5), -0.5 + t * (w + 0.5)])
        vs = np.concatenate([-0.5 + t * (h + 0.5), -0.5 + t * (h + 0.5), np.full(n, -0.5), np.full(n, h)])
        return us, vs


@dataclass(frozen=True)
class Surface:
    """Where canvas rays meet the world: a vertical cylinder of ``radius`` metres around the canvas
    centre, with (``ground+cylinder``) the ground plane at ``ground_z`` in front of it, or at
    infinity (rotation only)."""

    kind: str = "cylinder"
    radius: float = 20.0
    ground_z: float = 0.0

    def __post_init__(self):
        if self.kind not in SURFACES:
            raise ValueError(f"unknown projection surface {self.kind!r}; known: {', '.join(SURFACES)}")
        if self.radius <= 0:
            raise ValueError(f"surface radius must be positive, got {self.radius}")

    def distances(self, centre: np.ndarray, e: np.ndarray) -> np.ndarray:
        """Distance (in units of horizontal travel) along directions ``e`` from ``centre`` to the surface."""
        s = np.full(e.shape[:-1], float(self.radius))
        if self.kind == "ground+cylinder":
            with np.errstate(divide="ignore", invalid="ignore"):
                sg = np.where(e[..., 2] < 0, (self.ground_z - centre[2]) / e[..., 2], np.inf)
            s = np.minimum(s, sg)
        return s

    def intersect(self, centre: np.ndarray, origin: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Points where rays ``origin + s d`` (vehicle frame, s > 0) meet the surface."""
        o = np.asarray(origin, np.float64) - centre
        a = d[..., 0] ** 2 + d[..., 1] ** 2
        b = 2.0 * (o[0] * d[..., 0] + o[1] * d[..., 1])
        cc = o[0] ** 2 + o[1] ** 2 - self.radius**2
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (-b + np.sqrt(np.maximum(b * b - 4.0 * a * cc, 0.0))) / (2.0 * a)
            if self.kind == "ground+cylinder":
                sg = np.where(d[..., 2] < 0, (self.ground_z - origin[2]) / d[..., 2], np.inf)
                pg = o + sg[..., None] * d
                near = np.hypot(pg[..., 0], pg[..., 1]) <= self.radius
                s = np.where(near, sg, s)
        return np.asarray(origin, np.float64) + s[..., None] * d


@dataclass(frozen=True)
class Cylinder:
    """A cylindrical canvas: ``f`` pixels per radian, azimuth ``theta_left`` at column 0, the horizon
    at row ``cy``, of size ``width`` × ``height``, seen from ``centre`` and meeting ``surface``."""

    f: float
    theta_left: float
    cy: float
    width: int
    height: int
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0)
    surface: Surface = field(default_factory=lambda: Surface("infinity"))

    def directions(self, xs, ys) -> np.ndarray:
        """Vehicle-frame directions ``(cos, sin, h)`` of canvas points, as seen from the centre."""
        theta = self.theta_left - np.asarray(xs, np.float64) / self.f
        h = (self.cy - np.asarray(ys, np.float64)) / self.f
        return np.stack([np.cos(theta), np.sin(theta), h], axis=-1)

    def to_pixels(self, cam: PinholeCamera, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Camera pixel coordinates (u, v) seen at canvas points (xs, ys); NaN behind the camera."""
        e = self.directions(xs, ys)
        if self.surface.kind != "infinity":
            c = np.asarray(self.centre, np.float64)
            e = c + self.surface.distances(c, e)[..., None] * e - np.asarray(cam.translation, np.float64)
        return cam.project(e @ cam.rotation)  # vehicle→camera: R^T d

    def from_pixels(self, cam: PinholeCamera, us: np.ndarray, vs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canvas coordinates (x, y) of camera pixels (us, vs)."""
        d = cam.rays(us, vs) @ cam.rotation.T  # camera→vehicle
        if self.surface.kind != "infinity":
            c = np.asarray(self.centre, np.float64)
            d = self.surface.intersect(c, np.asarray(cam.translation, np.float64), d) - c
        theta = np.arctan2(d[..., 1], d[..., 0])
        h = d[..., 2] / np.hypot(d[..., 0], d[..., 1])
        return (self.theta_left - theta) * self.f, self.cy - h * self.f

    def camera_grid(self, cam: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
        """float32 ``cv2.remap`` maps that pull canvas pixels into the camera's image (rendering)."""
        vs, us = np.mgrid[0 : cam.height, 0 : cam.width].astype(np.float64)
        x, y = self.from_pixels(cam, us, vs)
        return x.astype(np.float32), y.astype(np.float32)


def cylinder_for(cams: list[PinholeCamera], f: float | None = None, surface: Surface | None = None) -> Cylinder:
    """The smallest canvas that holds every camera's full view, from their distorted edge rays.

    ``f`` defaults to the first camera's focal length, so the canvas keeps its pixel density. The
    centre is the mean of the cameras' centres.
    """
    f = float(f or cams[0].fu)
    thetas, hs = [], []
    for c in cams:
        d = c.rays(*c.border()) @ c.rotation.T
        thetas.append(np.arctan2(d[:, 1], d[:, 0]))
        hs.append(d[:, 2] / np.hypot(d[:, 0], d[:, 1]))
    theta, h = np.concatenate(thetas), np.concatenate(hs)
    left, right, top, bottom = theta.max(), theta.min(), h.max(), h.min()
    centre = tuple(float(v) for v in np.mean([c.translation for c in cams], axis=0))
    return Cylinder(f=f, theta_left=float(left), cy=float(top * f), width=int(np.ceil((left - right) * f)),
                    height=int(np.ceil((top - bottom) * f)), centre=centre, surface=surface or Surface("infinity"))
