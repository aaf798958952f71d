"""Geometric plausibility of a stitch: what a FRONT + FRONT_RIGHT pair on a Waymo vehicle can look like.

A calibration can be finite and orthonormal and still impossible: a focal length of 1e12 makes a
view cover nothing, one of 1e-9 or a translation of 1e9 squeezes the whole canvas into a few of
its pixels, a huge k1 folds the image. The stitch would still write a row. These checks turn such
geometry into a per-frame error that names the camera as users know it.

Limits: Waymo's cameras see about ±25.2° and FRONT_RIGHT is yawed about 45° from FRONT, so each
view covers roughly half of the cropped canvas, uses all of its image, and the two overlap by
about 5.4°. The limits below are several times wider than the spread of real calibrations.
"""

from __future__ import annotations

import numpy as np

#: A view must cover at least this share of the stitched canvas (Waymo: about 55 %).
MIN_VIEW_SHARE = 0.15
#: The canvas must show at least this share of each view's image width and height.
MIN_IMAGE_SPREAD = 0.25
#: Accepted overlap of the two views, degrees of azimuth (Waymo: about 5.4°).
OVERLAP_DEG = (1.0, 20.0)
#: Accepted horizontal field of view of one camera, degrees (Waymo: about 50.4°).
FOV_DEG = (25.0, 100.0)
#: Accepted distance of a camera's centre from the vehicle origin, metres (Waymo: about 1.5-2.5 m).
MAX_CENTRE_M = 10.0
#: A feature registration may move FRONT_RIGHT's calibrated rotation by at most this many degrees.
MAX_REGISTRATION_DEG = 3.0


def _spread(values: np.ndarray, size: int) -> float:
    return float(values.max() - values.min()) / size if values.size else 0.0


def camera_problem(name: str, cam) -> str | None:
    """Why one camera cannot be a Waymo camera (its field of view through its own lens model, its
    distance from the vehicle origin), or None."""
    d = cam.rays(np.array([0.0, cam.width - 1.0]), np.array([cam.cv, cam.cv]))
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    fov = float(np.degrees(np.arccos(np.clip(d[0] @ d[1], -1.0, 1.0)))) if np.isfinite(d).all() else float("nan")
    if not FOV_DEG[0] <= fov <= FOV_DEG[1]:
        return (f"{name} sees {fov:.1f}° horizontally through its intrinsics ({FOV_DEG[0]:g}-{FOV_DEG[1]:g}° expected, "
                f"Waymo: about 50°): fu={cam.fu:g}, distortion k1, k2, p1, p2, k3 = {list(cam.distortion)}")
    centre = float(np.linalg.norm(cam.translation))
    if not centre <= MAX_CENTRE_M:
        return f"{name}'s centre is {centre:g} m from the vehicle origin (at most {MAX_CENTRE_M:g} m expected)"
    return None


def geometry_problem(geo) -> str | None:
    """Why a :class:`StitchGeometry` cannot be a Waymo FRONT + FRONT_RIGHT pair, or None."""
    names = ("FRONT", "FRONT_RIGHT")
    for name in names:
        problem = camera_problem(name, geo.views[name].cam)
        if problem:
            return problem
    shares = {n: float(geo.valid[n].mean()) for n in names}
    if min(shares.values()) < MIN_VIEW_SHARE:
        return (f"FRONT covers {100 * shares['FRONT']:.0f}% and FRONT_RIGHT {100 * shares['FRONT_RIGHT']:.0f}% of the "
                f"stitched canvas (each at least {100 * MIN_VIEW_SHARE:.0f}% expected, about 55% on Waymo)")
    for name in names:
        cam = geo.views[name].cam
        c0 = geo.cols[name][0]
        ok = geo.valid[name][::4, c0 : geo.cols[name][1] : 4]
        u, v = (m[::4, ::4][ok] for m in geo.maps[name])
        su, sv = _spread(u, cam.width), _spread(v, cam.height)
        if min(su, sv) < MIN_IMAGE_SPREAD:
            return (f"the canvas shows only {100 * su:.0f}% x {100 * sv:.0f}% of {name}'s image "
                    f"(at least {100 * MIN_IMAGE_SPREAD:.0f}% expected)")
    front = geo.views["FRONT"]
    deg = float(np.degrees((geo.front_x1 - geo.right_x0) * front.scale[0] / front.cylinder.f))
    if not OVERLAP_DEG[0] <= deg <= OVERLAP_DEG[1]:
        return (f"FRONT and FRONT_RIGHT overlap by {deg:.1f}° of azimuth ({OVERLAP_DEG[0]:g}-{OVERLAP_DEG[1]:g}° "
                "expected for Waymo's cameras about 45° apart)")
    return None


def rotation_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (degrees) of the rotation between two 3×3 rotation matrices."""
    c = (np.trace(np.asarray(a).T @ np.asarray(b)) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def registration_problem(registered: np.ndarray, calibrated: np.ndarray) -> str | None:
    """Why a registered FRONT_RIGHT rotation contradicts its calibration, or None."""
    deg = rotation_deg(registered, calibrated)
    if deg > MAX_REGISTRATION_DEG:
        return (f"FRONT_RIGHT's calibration disagrees with a feature registration by {deg:.1f}° "
                f"(at most {MAX_REGISTRATION_DEG:g}° expected): its extrinsic cannot be right")
    return None
