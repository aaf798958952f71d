"""Waymo camera geometry: pinhole cameras and the shared cylindrical surface they project onto.

Waymo conventions: ``intrinsic = [f_u, f_v, c_u, c_v, k1, k2, p1, p2, k3]``; ``extrinsic`` is the
4×4 row-major camera→vehicle transform; the camera frame has x forward (optical axis), y left,
z up, so a pixel ``(u, v)`` looks along ``(1, (c_u - u)/f_u, (c_v - v)/f_v)``.

The cylinder is centred on the vehicle with its axis vertical. A canvas pixel ``(x, y)`` looks at
azimuth ``theta = theta_left - x / f`` (azimuth grows to the left) and height
``h = (c_y - y) / f`` on a unit-radius cylinder. FRONT and FRONT_RIGHT, which differ mainly by
yaw, land side by side on it; the sample maker renders scenes on it and the stitcher warps onto it,
so the two agree by construction. Lens distortion is not modelled (the sample maker writes none).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def yaw_matrix(yaw: float) -> np.ndarray:
    """Rotation about the vehicle's z axis by ``yaw`` radians (positive turns left)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class PinholeCamera:
    """One calibrated camera: intrinsics, image size and its camera→vehicle rotation."""

    fu: float
    fv: float
    cu: float
    cv: float
    width: int
    height: int
    rotation: np.ndarray  # 3×3 camera→vehicle
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def yaw(self) -> float:
        """Azimuth of the optical axis in the vehicle frame, radians (left positive)."""
        return float(np.arctan2(self.rotation[1, 0], self.rotation[0, 0]))

    @property
    def half_fov(self) -> float:
        """Half the horizontal field of view, radians."""
        return float(np.arctan2(self.width / 2.0, self.fu))

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
        return cls(k[0], k[1], k[2], k[3], int(calib.width), int(calib.height), t[:3, :3].copy(), tuple(t[:3, 3]))

    def extrinsic(self) -> list[float]:
        """The 4×4 row-major camera→vehicle transform as Waymo stores it."""
        t = np.eye(4)
        t[:3, :3] = self.rotation
        t[:3, 3] = self.translation
        return [float(v) for v in t.reshape(-1)]

    def intrinsic(self) -> list[float]:
        return [self.fu, self.fv, self.cu, self.cv, 0.0, 0.0, 0.0, 0.0, 0.0]


@dataclass(frozen=True)
class Cylinder:
    """A cylindrical canvas: ``f`` pixels per radian, azimuth ``theta_left`` at column 0,
    the horizon at row ``cy``, of size ``width`` × ``height``."""

    f: float
    theta_left: float
    cy: float
    width: int
    height: int

    def to_pixels(self, cam: PinholeCamera, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Camera pixel coordinates (u, v) seen at canvas points (xs, ys); NaN behind the camera."""
        theta = self.theta_left - np.asarray(xs, np.float64) / self.f
        h = (self.cy - np.asarray(ys, np.float64)) / self.f
        d = np.stack([np.cos(theta), np.sin(theta), h], axis=-1) @ cam.rotation  # vehicle→camera: R^T d
        with np.errstate(divide="ignore", invalid="ignore"):
            ok = d[..., 0] > 1e-6
            u = np.where(ok, cam.cu - cam.fu * d[..., 1] / d[..., 0], np.nan)
            v = np.where(ok, cam.cv - cam.fv * d[..., 2] / d[..., 0], np.nan)
        return u, v

    def from_pixels(self, cam: PinholeCamera, us: np.ndarray, vs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canvas coordinates (x, y) of camera pixels (us, vs)."""
        us, vs = np.asarray(us, np.float64), np.asarray(vs, np.float64)
        d = np.stack([np.ones_like(us), (cam.cu - us) / cam.fu, (cam.cv - vs) / cam.fv], axis=-1)
        d = d @ cam.rotation.T  # camera→vehicle
        theta = np.arctan2(d[..., 1], d[..., 0])
        h = d[..., 2] / np.hypot(d[..., 0], d[..., 1])
        return (self.theta_left - theta) * self.f, self.cy - h * self.f

    def remap_grid(self, cam: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
        """float32 ``cv2.remap`` maps that pull camera pixels onto the whole canvas."""
        ys, xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        u, v = self.to_pixels(cam, xs, ys)
        return np.nan_to_num(u, nan=-1e4).astype(np.float32), np.nan_to_num(v, nan=-1e4).astype(np.float32)

    def camera_grid(self, cam: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
        """float32 ``cv2.remap`` maps that pull canvas pixels into the camera's image (rendering)."""
        vs, us = np.mgrid[0 : cam.height, 0 : cam.width].astype(np.float64)
        x, y = self.from_pixels(cam, us, vs)
        return x.astype(np.float32), y.astype(np.float32)


def cylinder_for(cams: list[PinholeCamera], height: int | None = None, f: float | None = None) -> Cylinder:
    """The smallest cylinder that holds every camera's full view side by side.

    ``f`` defaults to the first camera's focal length, so the canvas keeps its pixel density.
    """
    f = float(f or cams[0].fu)
    left = max(c.yaw + c.half_fov for c in cams)
    right = min(c.yaw - c.half_fov for c in cams)
    width = int(np.ceil((left - right) * f))
    if height is None:
        height = max(c.height for c in cams)
    return Cylinder(f=f, theta_left=left, cy=(height - 1) / 2.0, width=width, height=int(height))
