"""An independent ray-caster of a simple 3-D street seen by Waymo-like FRONT and FRONT_RIGHT cameras.

It shares no code with ``streetsynth.camera`` on purpose: its own pinhole + radial-tangential
camera (undistortion by fixed-point iteration, not OpenCV), its own poses (yaw, pitch, roll,
translation) and its own scene, so a stitch test against it proves the stitcher right, not merely
consistent with itself.

The world (vehicle frame, x forward, y left, z up, metres): textured ground at z = 0 with dashed
lane marks, a textured facade along the right of the street (y = -12), one across the end
(x = 70), and a few boxes (vehicles, a pedestrian) on the road, two of them in the cameras'
overlap. Each render returns RGB and an object-id image (1.. for the boxes, 0 elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

FULL = (1280, 1920)  # Waymo camera image (H, W)
HALF_FOV_DEG = 25.2
DISTORTION = (0.04, -0.35, 0.0008, -0.0003, 0.0)


def _rot(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """camera→vehicle rotation: yaw about z, then pitch about y (down positive), then roll about x."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1.0]])
    ry = np.array([[cp, 0, sp], [0, 1.0, 0], [-sp, 0, cp]])
    rx = np.array([[1.0, 0, 0], [0, cr, -sr], [0, sr, cr]])
    return rz @ ry @ rx


@dataclass
class Cam:
    """A camera as Waymo stores it: intrinsic [fu, fv, cu, cv, k1, k2, p1, p2, k3], 4×4 extrinsic."""

    height: int
    width: int
    fu: float
    fv: float
    cu: float
    cv: float
    dist: tuple = (0.0,) * 5
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    centre: tuple = (0.0, 0.0, 0.0)

    @property
    def intrinsic(self) -> list[float]:
        return [self.fu, self.fv, self.cu, self.cv, *self.dist]

    @property
    def extrinsic(self) -> list[float]:
        t = np.eye(4)
        t[:3, :3], t[:3, 3] = self.rotation, self.centre
        return [float(v) for v in t.reshape(-1)]

    def pixel_rays(self) -> np.ndarray:
        """(H, W, 3) vehicle-frame unit directions of every pixel centre."""
        v, u = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        xd, yd = (u - self.cu) / self.fu, (v - self.cv) / self.fv
        k1, k2, p1, p2, k3 = self.dist
        x, y = xd.copy(), yd.copy()
        for _ in range(30):  # fixed point of x_d = x * radial + tangential
            r2 = x * x + y * y
            radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 ** 3
            tx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
            ty = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
            x, y = (xd - tx) / radial, (yd - ty) / radial
        d = np.stack([np.ones_like(x), -x, -y], -1) @ self.rotation.T
        return d / np.linalg.norm(d, axis=-1, keepdims=True)


def waymo_cams(scale: float = 1.0, distortion: bool = True, offsets: bool = True, tilt: bool = True,
               right_yaw_deg: float = -45.0) -> dict[str, Cam]:
    """FRONT and FRONT_RIGHT at ``scale`` of Waymo's size, with the parts of the real model switched on."""
    h, w = int(round(FULL[0] * scale)), int(round(FULL[1] * scale))
    f = (FULL[1] / 2) / np.tan(np.radians(HALF_FOV_DEG)) * scale
    dist = DISTORTION if distortion else (0.0,) * 5
    front = Cam(h, w, f, f * 1.001, w / 2 + 6.3 * scale, h / 2 - 4.1 * scale, dist,
                _rot(0.0, np.radians(0.6) if tilt else 0.0, np.radians(-0.3) if tilt else 0.0),
                (1.54, -0.02, 2.12) if offsets else (1.5, 0.0, 2.1))
    right = Cam(h, w, f * 0.997, f * 0.998, w / 2 - 5.2 * scale, h / 2 + 3.7 * scale, dist,
                _rot(np.radians(right_yaw_deg), np.radians(-0.4) if tilt else 0.0, np.radians(0.5) if tilt else 0.0),
                (1.48, -0.09, 2.10) if offsets else (1.5, 0.0, 2.1))
    return {"FRONT": front, "FRONT_RIGHT": right}


def _texture(seed: int, size: int = 512, blur: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), blur)
    return (t - t.min()) / (t.max() - t.min())


def _sample(tex: np.ndarray, a: np.ndarray, b: np.ndarray, metres_per_texel: float) -> np.ndarray:
    """Bilinear, wrapped texture lookup at plane coordinates (a, b) in metres."""
    n = tex.shape[0]
    mx = np.mod(a / metres_per_texel, n).astype(np.float32)
    my = np.mod(b / metres_per_texel, n).astype(np.float32)
    return cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


#: Boxes: (x0, x1, y0, y1, z1, colour); two sit in the FRONT/FRONT_RIGHT overlap (azimuth about -20°).
BOXES = (
    (11.0, 15.5, -6.8, -4.9, 1.5, (170, 40, 40)),   # vehicle in the overlap
    (8.0, 8.6, -3.8, -3.2, 1.8, (40, 60, 170)),     # pedestrian in the overlap
    (22.0, 26.5, 1.0, 2.9, 1.6, (40, 150, 60)),     # vehicle ahead, FRONT only
    (6.0, 10.0, -11.0, -9.1, 1.5, (200, 180, 40)),  # vehicle to the right, FRONT_RIGHT only
)


def render(cam: Cam, gain: tuple[float, float, float] = (1.0, 1.0, 1.0), boxes: tuple = BOXES) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8, object ids uint8) of the street with ``boxes`` seen by ``cam``, pixel values times ``gain``."""
    d = cam.pixel_rays()
    o = np.asarray(cam.centre, np.float64)
    shape = d.shape[:2]
    t = np.full(shape, np.inf)
    kind = np.zeros(shape, np.int32)  # 0 sky, 1 ground, 2 right facade, 3 end facade, 10+i box i
    with np.errstate(divide="ignore", invalid="ignore"):
        tg = np.where(d[..., 2] < 0, -o[2] / d[..., 2], np.inf)
        hit = tg < t
        t, kind = np.where(hit, tg, t), np.where(hit, 1, kind)
        tf = np.where(d[..., 1] < 0, (-12.0 - o[1]) / d[..., 1], np.inf)
        zf = o[2] + tf * d[..., 2]
        hit = (tf < t) & (zf >= 0) & (zf <= 18.0)
        t, kind = np.where(hit, tf, t), np.where(hit, 2, kind)
        te = np.where(d[..., 0] > 0, (70.0 - o[0]) / d[..., 0], np.inf)
        ze = o[2] + te * d[..., 2]
        hit = (te < t) & (ze >= 0) & (ze <= 25.0)
        t, kind = np.where(hit, te, t), np.where(hit, 3, kind)
        for i, (x0, x1, y0, y1, z1, _) in enumerate(boxes):
            lo, hi = np.array([x0, y0, 0.0]), np.array([x1, y1, z1])
            ta, tb = (lo - o) / d, (hi - o) / d
            tnear = np.minimum(ta, tb).max(axis=-1)
            tfar = np.maximum(ta, tb).min(axis=-1)
            hit = (tnear <= tfar) & (tnear > 0) & (tnear < t)
            t, kind = np.where(hit, tnear, t), np.where(hit, 10 + i, kind)
    p = o + np.where(np.isfinite(t), t, 0.0)[..., None] * d
    rgb = np.zeros((*shape, 3), np.float32)
    sky = np.clip(d[..., 2] * 3, 0, 1)[..., None]
    rgb[:] = (190 * (1 - sky) + 80 * sky)[..., 0:1] * np.array([0.8, 0.9, 1.1], np.float32)
    tex_g, tex_f, tex_b = _texture(1), _texture(2, blur=1.5), _texture(3)
    g = _sample(tex_g, p[..., 0], p[..., 1], 0.04)
    lane = ((np.abs(np.abs(p[..., 1] + 1.8) - 0.0) < 0.08) | (np.abs(p[..., 1] + 5.4) < 0.08)) & (np.mod(p[..., 0], 6.0) < 3.0)
    ground = (70 + 70 * g + 110 * lane)[..., None] * np.array([1.0, 1.0, 1.03], np.float32)
    rgb = np.where((kind == 1)[..., None], ground, rgb)
    fac = _sample(tex_f, p[..., 0], p[..., 2], 0.05)
    win = (np.mod(p[..., 0], 3.0) < 1.4) & (np.mod(p[..., 2], 3.2) > 1.2) & (np.mod(p[..., 2], 3.2) < 2.6) & (p[..., 2] > 3.0)
    facade = (90 + 90 * fac - 60 * win)[..., None] * np.array([1.05, 0.95, 0.85], np.float32)
    rgb = np.where((kind == 2)[..., None], facade, rgb)
    end = _sample(tex_f, p[..., 1], p[..., 2], 0.08)
    rgb = np.where((kind == 3)[..., None], (100 + 80 * end)[..., None] * np.array([0.9, 0.95, 1.05], np.float32), rgb)
    bt = _sample(tex_b, p[..., 0] + p[..., 1], p[..., 2], 0.03)
    for i, (*_, colour) in enumerate(boxes):
        rgb = np.where((kind == 10 + i)[..., None], np.asarray(colour, np.float32) * (0.6 + 0.6 * bt)[..., None], rgb)
    rgb = rgb * np.asarray(gain, np.float32)
    ids = np.where(kind >= 10, kind - 9, 0).astype(np.uint8)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8), ids


def render_pair(scale: float = 0.25, distortion: bool = True, offsets: bool = True, tilt: bool = True,
                exposure: bool = True, boxes: tuple = BOXES) -> tuple[dict[str, Cam], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(cameras, RGB views, id views) of FRONT and FRONT_RIGHT; FRONT_RIGHT 15 % darker with a cast."""
    cams = waymo_cams(scale, distortion, offsets, tilt)
    gains = {"FRONT": (1.0, 1.0, 1.0), "FRONT_RIGHT": (0.85, 0.83, 0.88) if exposure else (1.0, 1.0, 1.0)}
    views, ids = {}, {}
    for name, cam in cams.items():
        views[name], ids[name] = render(cam, gains[name], boxes)
    return cams, views, ids


#: A busier street: BOXES plus poles, pedestrians and a cyclist 7-15 m away in the overlap (azimuth
#: -18° to -27°), off the projection surface, where the two views disagree most.
BUSY_BOXES = BOXES + (
    (7.2, 7.5, -3.1, -2.8, 3.2, (120, 120, 120)),   # pole
    (9.6, 10.2, -4.6, -4.0, 1.7, (160, 60, 150)),   # pedestrian
    (12.6, 12.9, -5.9, -5.6, 3.5, (110, 110, 120)),  # pole
    (13.5, 15.0, -6.6, -6.0, 1.6, (60, 160, 170)),  # cyclist
    (10.0, 10.6, -3.2, -2.6, 1.8, (180, 120, 60)),  # pedestrian
)
