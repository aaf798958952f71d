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
#: A feature registration may move FRONT_RIGHT's calibrated rotation by at most this many degrees.
MAX_REGISTRATION_DEG = 3.0


def _spread(values: np.ndarray, size: int) -> float:
    return float(values.max() - values.min()) / size if values.size else 0.0


def geometry_problem(geo) -> str | None:
    """Why a :class:`StitchGeometry` cannot be a Waymo FRONT + FRONT_RIGHT pair, or None."""
    for name in ("FRONT", "FRONT_RIGHT"):
        share = float(geo.valid[name].mean())
        if share < MIN_VIEW_SHARE:
            return f"{name} covers {100 * share:.0f}% of the stitched canvas (at least {100 * MIN_VIEW_SHARE:.0f}% expected)"
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
