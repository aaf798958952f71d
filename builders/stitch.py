"""Stitch FRONT and FRONT_RIGHT into one wide scene on the shared cylinder, with feathered blending.

Alignment comes from the calibrations: both views are pulled onto the cylinder of
:mod:`streetsynth.camera` with ``cv2.remap``, each placed by its yaw. Where a calibration is missing,
or the two warped views disagree in their overlap (a wrong calibration), a feature homography
(SIFT + RANSAC) maps FRONT_RIGHT into FRONT's image plane instead, and FRONT's ray model places
it on the cylinder. The method used is recorded.

Blending: each view's weight rises from 0 at the edge of its valid area to 1 at ``ramp`` pixels
inside it (``cv2.distanceTransform``); the stitched pixel is the weight-normalised sum. With the
ramp equal to the overlap width this is an exact linear cross-fade across the overlap.

A :class:`StitchGeometry` keeps the mapping both ways (canvas -> camera pixels for warping,
camera pixels -> canvas for labels). Geometries from calibrations are cached, since every frame of
a segment shares them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from streetsynth.camera import Cylinder, PinholeCamera, cylinder_for, yaw_matrix

from .frames import FrameError

VIEWS = ("FRONT", "FRONT_RIGHT")
CALIBRATION, HOMOGRAPHY = "calibration", "homography"
#: Waymo cameras see about ±25.2° horizontally; used when FRONT has no calibration.
DEFAULT_HALF_FOV_DEG = 25.2
#: Mean absolute grey-level difference in the overlap above which a calibration is distrusted.
MAX_OVERLAP_ERROR = 6.0
#: Fewest RANSAC inliers for a homography to be trusted.
MIN_INLIERS = 12


@dataclass(frozen=True)
class ViewMap:
    """How one camera lands on the canvas.

    Canvas points go to the cylinder, then to ``ray_cam``'s pixels; with a homography ``h``
    (camera pixels -> ``ray_cam`` pixels) they are then pulled back into this camera's image.
    """

    cylinder: Cylinder
    ray_cam: PinholeCamera
    width: int  # this camera's image size
    height: int
    scale: tuple[float, float]  # (sx, sy): natural cylinder pixels per output pixel
    h: np.ndarray | None = None

    def canvas_to_view(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Camera pixel coordinates seen at output canvas points (NaN where none)."""
        sx, sy = self.scale
        u, v = self.cylinder.to_pixels(self.ray_cam, (np.asarray(xs) + 0.5) * sx - 0.5, (np.asarray(ys) + 0.5) * sy - 0.5)
        if self.h is not None:
            u, v = _apply_h(np.linalg.inv(self.h), u, v)
        return u, v

    def view_to_canvas(self, us: np.ndarray, vs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output canvas coordinates of camera pixels."""
        us, vs = np.asarray(us, np.float64), np.asarray(vs, np.float64)
        if self.h is not None:
            us, vs = _apply_h(self.h, us, vs)
        x, y = self.cylinder.from_pixels(self.ray_cam, us, vs)
        sx, sy = self.scale
        return (x + 0.5) / sx - 0.5, (y + 0.5) / sy - 0.5


@dataclass
class StitchGeometry:
    """The two views' maps onto one output canvas, their valid areas and blend weights."""

    method: str
    size: tuple[int, int]  # (H, W) of the output
    views: dict[str, ViewMap]
    maps: dict[str, tuple[np.ndarray, np.ndarray]]  # float32 cv2.remap maps, canvas -> camera
    valid: dict[str, np.ndarray]  # (H, W) bool
    weights: dict[str, np.ndarray]  # (H, W) float32, normalised: they sum to 1 where any view is valid
    yaw_deg: float  # FRONT_RIGHT's yaw relative to FRONT
    front_x1: int
    right_x0: int

    def to_canvas(self, view: str, us, vs) -> tuple[np.ndarray, np.ndarray]:
        """Canvas coordinates of points of camera ``view``."""
        return self.views[view].view_to_canvas(us, vs)

    def warp_image(self, view: str, image: np.ndarray) -> np.ndarray:
        """A camera image on the canvas (bilinear), zero where the camera does not see."""
        mx, my = self.maps[view]
        return cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def warp_labels(self, view: str, labels: np.ndarray) -> np.ndarray:
        """A label image (ids, classes) on the canvas, nearest-neighbour, 0 where unseen."""
        mx, my = self.maps[view]
        src = labels.astype(np.int32) if labels.dtype not in (np.uint8, np.uint16, np.int16, np.float32) else labels
        out = cv2.remap(src, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return np.where(self.valid[view], out, 0).astype(labels.dtype)

    def blend(self, images: dict[str, np.ndarray]) -> np.ndarray:
        """Feather-blend camera images (RGB uint8) into the stitched canvas."""
        acc = np.zeros((*self.size, 3), np.float32)
        for name, img in images.items():
            acc += self.warp_image(name, img).astype(np.float32) * self.weights[name][..., None]
        return np.clip(acc + 0.5, 0, 255).astype(np.uint8)


@dataclass
class Stitched:
    """A stitched scene: the image and how it was made (see ``schema.stitch_feature``)."""

    image: np.ndarray  # (H, W, 3) uint8
    geometry: StitchGeometry
    overlap_error: float  # mean |grey difference| of the two views in their overlap

    @property
    def method(self) -> str:
        return self.geometry.method

    def to_feature(self) -> dict:
        g = self.geometry
        return {"method": g.method, "yaw_deg": float(g.yaw_deg), "front_x1": int(g.front_x1), "right_x0": int(g.right_x0)}


def _apply_h(h: np.ndarray, us: np.ndarray, vs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.stack([us, vs, np.ones_like(us)], axis=-1) @ h.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return p[..., 0] / p[..., 2], p[..., 1] / p[..., 2]


def default_camera(width: int, height: int, yaw: float = 0.0) -> PinholeCamera:
    """A Waymo-like pinhole camera (±25.2° horizontally, centred principal point) for uncalibrated views."""
    f = (width / 2.0) / np.tan(np.radians(DEFAULT_HALF_FOV_DEG))
    return PinholeCamera(f, f, width / 2.0, height / 2.0, width, height, yaw_matrix(yaw))


def _natural_cylinder(cams: list[PinholeCamera]) -> Cylinder:
    return cylinder_for(cams, height=cams[0].height, f=cams[0].fu)


def make_geometry(method: str, cams: dict[str, PinholeCamera], view_sizes: dict[str, tuple[int, int]],
                  size: tuple[int, int] | None, h_right: np.ndarray | None = None) -> StitchGeometry:
    """Maps, valid areas and feather weights for ``cams`` (the ray models) on an output of ``size``.

    ``size=None`` keeps the natural cylinder (FRONT's pixel density). ``h_right`` maps FRONT_RIGHT
    pixels into FRONT's image (homography method); ``cams`` must then hold FRONT_RIGHT's estimated pose.
    """
    cyl = _natural_cylinder([cams["FRONT"], cams["FRONT_RIGHT"]])
    out_h, out_w = size if size is not None else (cyl.height, cyl.width)
    if out_h < 8 or out_w < 8:
        raise ValueError(f"stitched size must be at least 8x8, got {out_h}x{out_w}")
    scale = (cyl.width / out_w, cyl.height / out_h)
    ys, xs = np.mgrid[0:out_h, 0:out_w].astype(np.float64)
    views, maps, valid = {}, {}, {}
    for name in VIEWS:
        vh, vw = view_sizes[name]
        ray_cam = cams["FRONT"] if (name == "FRONT_RIGHT" and h_right is not None) else cams[name]
        vm = ViewMap(cyl, ray_cam, vw, vh, scale, h_right if name == "FRONT_RIGHT" else None)
        u, v = vm.canvas_to_view(xs, ys)
        ok = np.isfinite(u) & np.isfinite(v) & (u >= -0.5) & (u <= vw - 0.5) & (v >= -0.5) & (v <= vh - 0.5)
        views[name] = vm
        maps[name] = (np.where(ok, u, -1e4).astype(np.float32), np.where(ok, v, -1e4).astype(np.float32))
        valid[name] = ok
    mid = out_h // 2
    front_cols = np.flatnonzero(valid["FRONT"][mid])
    right_cols = np.flatnonzero(valid["FRONT_RIGHT"][mid])
    front_x1 = int(front_cols[-1] + 1) if len(front_cols) else 0
    right_x0 = int(right_cols[0]) if len(right_cols) else out_w
    ramp = float(max(1, front_x1 - right_x0))
    raw = {n: np.minimum(cv2.distanceTransform(valid[n].astype(np.uint8), cv2.DIST_L2, 3) / ramp, 1.0) for n in VIEWS}
    total = raw["FRONT"] + raw["FRONT_RIGHT"]
    weights = {n: np.divide(raw[n], total, out=np.zeros_like(total), where=total > 0).astype(np.float32) for n in VIEWS}
    if h_right is not None:
        centre = np.array([[view_sizes["FRONT_RIGHT"][1] / 2.0], [view_sizes["FRONT_RIGHT"][0] / 2.0]])
        u, _ = _apply_h(h_right, centre[0], centre[1])
        yaw = float(np.degrees(np.arctan2(cams["FRONT"].cu - u[0], cams["FRONT"].fu)))
    else:
        yaw = float(np.degrees(cams["FRONT_RIGHT"].yaw - cams["FRONT"].yaw))
    return StitchGeometry(method, (out_h, out_w), views, maps, valid, weights, yaw, front_x1, right_x0)


def _cam_key(cam: PinholeCamera) -> tuple:
    return (cam.fu, cam.fv, cam.cu, cam.cv, cam.width, cam.height, tuple(np.round(cam.rotation, 9).reshape(-1)))


@lru_cache(maxsize=16)
def _cached_calibrated(front_key: tuple, right_key: tuple, view_sizes: tuple, size: tuple | None) -> StitchGeometry:
    cams = {}
    for name, key in zip(VIEWS, (front_key, right_key)):
        fu, fv, cu, cv, w, h, rot = key
        cams[name] = PinholeCamera(fu, fv, cu, cv, w, h, np.asarray(rot, np.float64).reshape(3, 3))
    return make_geometry(CALIBRATION, cams, dict(zip(VIEWS, view_sizes)), size)


def calibrated_geometry(front: PinholeCamera, right: PinholeCamera, size: tuple[int, int] | None = None) -> StitchGeometry:
    """The (cached) geometry of two calibrated cameras."""
    sizes = ((front.height, front.width), (right.height, right.width))
    return _cached_calibrated(_cam_key(front), _cam_key(right), sizes, None if size is None else tuple(size))


def _ray_matrix(k: np.ndarray) -> np.ndarray:
    """3×3 taking homogeneous pixels (u, v, 1) to Waymo camera rays (x forward, y left, z up)."""
    fu, fv, cu, cv = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    return np.array([[0.0, 0.0, 1.0], [-1.0 / fu, 0.0, cu / fu], [0.0, -1.0 / fv, cv / fv]])


def rotation_homography(front_k: np.ndarray, right_k: np.ndarray, yaw: float) -> np.ndarray:
    """The homography FRONT_RIGHT pixels -> FRONT pixels of a camera turned by ``yaw`` about the vertical."""
    h = np.linalg.inv(_ray_matrix(front_k)) @ yaw_matrix(yaw) @ _ray_matrix(right_k)
    return h / h[2, 2]


def estimate_homography(front: np.ndarray, right: np.ndarray, front_k: np.ndarray, right_k: np.ndarray,
                        min_inliers: int = MIN_INLIERS, tol_px: float = 3.0) -> np.ndarray | None:
    """3×3 homography taking FRONT_RIGHT pixels to FRONT pixels; None if the evidence is weak.

    SIFT features on the sides that can overlap (FRONT's right half, FRONT_RIGHT's left half) and
    Lowe's ratio test give matches. The cameras share (almost) one centre and are level, so the
    homography is the rotation-induced ``K_f R(yaw) K_r^-1`` with one unknown: RANSAC over the yaw
    each match implies (a full 8-parameter ``cv2.findHomography`` fitted on the narrow overlap
    strip bends badly away from it), then the median yaw of the inliers.
    """
    sift = cv2.SIFT_create(nfeatures=4000)
    gf, gr = cv2.cvtColor(front, cv2.COLOR_RGB2GRAY), cv2.cvtColor(right, cv2.COLOR_RGB2GRAY)
    mf, mr = np.zeros_like(gf), np.zeros_like(gr)
    mf[:, gf.shape[1] // 2 :] = 255
    mr[:, : gr.shape[1] // 2] = 255
    kf, df = sift.detectAndCompute(gf, mf)
    kr, dr = sift.detectAndCompute(gr, mr)
    if df is None or dr is None or len(kf) < 2 or len(kr) < 2:
        return None
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(dr, df, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
    if len(good) < min_inliers:
        return None
    src = np.float64([kr[m.queryIdx].pt for m in good])
    dst = np.float64([kf[m.trainIdx].pt for m in good])
    az_f = np.arctan((front_k[0, 2] - dst[:, 0]) / front_k[0, 0])
    az_r = np.arctan((right_k[0, 2] - src[:, 0]) / right_k[0, 0])
    candidates = az_f - az_r

    def residuals(yaw: float) -> np.ndarray:
        u, v = _apply_h(rotation_homography(front_k, right_k, yaw), src[:, 0], src[:, 1])
        return np.hypot(u - dst[:, 0], v - dst[:, 1])

    counts = np.array([(residuals(c) < tol_px).sum() for c in candidates])
    best = candidates[int(np.argmax(counts))]
    inliers = residuals(best) < tol_px
    if inliers.sum() < min_inliers:
        return None
    return rotation_homography(front_k, right_k, float(np.median(candidates[inliers])))


def _k(cam: PinholeCamera) -> np.ndarray:
    return np.array([[cam.fu, 0.0, cam.cu], [0.0, cam.fv, cam.cv], [0.0, 0.0, 1.0]])


def overlap_error(geometry: StitchGeometry, images: dict[str, np.ndarray]) -> float:
    """Mean absolute grey-level difference of the two warped views where both see (inf if nowhere)."""
    both = geometry.valid["FRONT"] & geometry.valid["FRONT_RIGHT"]
    if both.sum() < 16:
        return float("inf")
    cols = np.flatnonzero(both.any(axis=0))
    sl = slice(cols[0], cols[-1] + 1)
    grey = {}
    for name in VIEWS:
        mx, my = geometry.maps[name]
        g = cv2.cvtColor(images[name], cv2.COLOR_RGB2GRAY)
        grey[name] = cv2.remap(g, mx[:, sl], my[:, sl], cv2.INTER_LINEAR).astype(np.float32)
    diff = np.abs(grey["FRONT"] - grey["FRONT_RIGHT"])[both[:, sl]]
    return float(diff.mean())


def homography_geometry(images: dict[str, np.ndarray], front_cam: PinholeCamera | None,
                        size: tuple[int, int] | None) -> StitchGeometry | None:
    """A geometry from features; FRONT's calibration (or a default camera) gives the ray model."""
    fh, fw = images["FRONT"].shape[:2]
    rh, rw = images["FRONT_RIGHT"].shape[:2]
    front = front_cam or default_camera(fw, fh)
    # FRONT_RIGHT's intrinsics are taken as FRONT's, scaled to its image size (Waymo's are alike).
    right_k = np.array([[front.fu * rw / fw, 0.0, rw / 2.0], [0.0, front.fv * rh / fh, rh / 2.0], [0.0, 0.0, 1.0]])
    h_right = estimate_homography(images["FRONT"], images["FRONT_RIGHT"], _k(front), right_k)
    if h_right is None:
        return None
    u, _ = _apply_h(h_right, np.array([rw / 2.0]), np.array([rh / 2.0]))
    yaw = float(np.arctan2(front.cu - u[0], front.fu))
    right = PinholeCamera(right_k[0, 0], right_k[1, 1], rw / 2.0, rh / 2.0, rw, rh, front.rotation @ yaw_matrix(yaw))
    return make_geometry(HOMOGRAPHY, {"FRONT": front, "FRONT_RIGHT": right},
                         {"FRONT": (fh, fw), "FRONT_RIGHT": (rh, rw)}, size, h_right=h_right)


def stitch(front: np.ndarray, right: np.ndarray, front_cam: PinholeCamera | None, right_cam: PinholeCamera | None,
           size: tuple[int, int] | None = None, max_overlap_error: float = MAX_OVERLAP_ERROR,
           what: str = "frame") -> Stitched:
    """Stitch FRONT and FRONT_RIGHT RGB images into one (H, W) = ``size`` scene.

    Uses the calibrations when both are present and agree with the pixels in the overlap;
    otherwise the feature homography. FrameError (naming ``what``) when neither works.
    """
    images = {"FRONT": front, "FRONT_RIGHT": right}
    for name, img, cam in (("FRONT", front, front_cam), ("FRONT_RIGHT", right, right_cam)):
        if cam is not None and (img.shape[0], img.shape[1]) != (cam.height, cam.width):
            raise FrameError(f"{what}: camera {name} image is {img.shape[1]}x{img.shape[0]} but its calibration "
                             f"says {cam.width}x{cam.height}")
    geo, err = None, float("inf")
    if front_cam is not None and right_cam is not None:
        geo = calibrated_geometry(front_cam, right_cam, size)
        err = overlap_error(geo, images)
    if geo is None or err > max_overlap_error:
        alt = homography_geometry(images, front_cam, size)
        alt_err = overlap_error(alt, images) if alt is not None else float("inf")
        if alt is not None and (geo is None or alt_err < 0.8 * err):
            geo, err = alt, alt_err
    if geo is None:
        raise FrameError(f"{what}: cannot align FRONT_RIGHT to FRONT: calibration missing and too few "
                         "feature matches for a homography")
    return Stitched(geo.blend(images), geo, err)


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio (dB) of two uint8 images, optionally over a boolean area."""
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if where is not None:
        d = d[where]
    mse = float(d.mean()) if d.size else 0.0
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
