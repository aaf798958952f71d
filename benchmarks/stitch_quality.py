"""Stitch quality on Waymo-like cameras from the independent ray-caster (tests/render_scene.py).

For each variant (distortion only, exposure only, offsets + pitch/roll, everything) and each model
(the full model on several projection surfaces, and the previous pinhole model: distortion and
translations ignored, rays from one centre to infinity, no gain), it prints the residual shift
of the two warped views per row band of their overlap (phase correlation, full-resolution pixels;
top bands are facades/sky, bottom bands the road), the mean grey difference in the overlap before
and after the exposure gain, the method the stitcher chose, and ms per frame of ``stitch`` with
the geometry cached (as in the builder) at the stitched size, all in one run.

Ghosts (issue 24): on the street and on a busier one (poles, pedestrians and a cyclist 7-15 m away
in the overlap, ``render_scene.BUSY_BOXES``), with the rendered objects boxed as labels, the share
of the overlap where the two warped views disagree (|A - B| > 24 grey levels, B after the gain) and,
among those pixels, the share where the output matches neither (|out - A| > 12 and |out - B| > 12),
for the feather across the whole overlap (before) and the seam (after), on the natural canvas;
with ms per frame of each at the stitched size (seam: its keeps from the labels included).

    .venv/bin/python benchmarks/stitch_quality.py [--scale 1.0 --size 512x1024 --repeat 5] [--ghosts-only]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from render_scene import BOXES, BUSY_BOXES, render_pair  # noqa: E402
from test_stitch_render import BANDS, _camera, band_shifts  # noqa: E402
from test_stitch_seam import ghost_share, record  # noqa: E402
from timing import best_ms  # noqa: E402

from streetsynth.builders.stitch import stitch  # noqa: E402
from streetsynth.builders.stitch_labels import seam_objects  # noqa: E402
from streetsynth.camera import Surface  # noqa: E402
from streetsynth.commands.make_sample import parse_size  # noqa: E402

VARIANTS = {
    "distortion only": dict(distortion=True, offsets=False, tilt=False, exposure=False),
    "exposure only": dict(distortion=False, offsets=False, tilt=False, exposure=True),
    "offsets + pitch/roll": dict(distortion=False, offsets=True, tilt=True, exposure=False),
    "everything": dict(distortion=True, offsets=True, tilt=True, exposure=True),
}
SURFACES = {
    "ground+cyl 30 m (default)": Surface("ground+cylinder", 30.0),
    "ground+cyl 20 m": Surface("ground+cylinder", 20.0),
    "ground+cyl 50 m": Surface("ground+cylinder", 50.0),
    "cylinder 20 m": Surface("cylinder", 20.0),
    "cylinder 40 m": Surface("cylinder", 40.0),
    "infinity (rotation only)": Surface("infinity"),
}


def pinhole(cam):
    """The previous model's view of a camera: no distortion, centred at the vehicle origin."""
    return replace(cam, distortion=(0.0,) * 5, translation=(0.0, 0.0, 0.0))


def run(views, cams, surface, old: bool, size, repeat: int, scale: float):
    f, r = _camera(cams["FRONT"]), _camera(cams["FRONT_RIGHT"])
    if old:
        f, r = pinhole(f), pinhole(r)
    kw = dict(surface=surface, gain=not old)
    st = stitch(views["FRONT"], views["FRONT_RIGHT"], f, r, None, **kw)  # natural canvas: residuals
    shifts = band_shifts(st, views, scale)
    stitch(views["FRONT"], views["FRONT_RIGHT"], f, r, size, **kw)  # warm the geometry cache
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        stitch(views["FRONT"], views["FRONT_RIGHT"], f, r, size, **kw)
        best = min(best, time.perf_counter() - t)
    return shifts, st, 1e3 * best


def ghosts(scale: float, size, repeat: int) -> None:
    """Ghost share and ms per frame, feather (before) vs seam (after), per street and camera variant."""
    print(f"\nghosts: views {int(1280 * scale)}x{int(1920 * scale)}, natural canvas; ms at {size[0]}x{size[1]}")
    print(f"  {'street, cameras':40}{'disagree':>9}{'ghosts feather':>16}{'ghosts seam':>13}{'ms feather':>12}{'ms seam':>9}")
    for street, boxes in (("street", BOXES), ("busy street", BUSY_BOXES)):
        for variant in ("everything", "distortion only"):
            cams, views, ids = render_pair(scale, boxes=boxes, **VARIANTS[variant])
            rec = record(cams, ids, len(boxes))
            f, r = _camera(cams["FRONT"]), _camera(cams["FRONT_RIGHT"])

            def run(blend, out_size):
                return stitch(views["FRONT"], views["FRONT_RIGHT"], f, r, out_size, blend=blend,
                              keep=lambda g: seam_objects(rec, g))

            (g_f, differ), (g_s, _) = ghost_share(run("feather", None), views), ghost_share(run("seam", None), views)
            ms_f, ms_s = (best_ms(lambda b=b: run(b, size), repeat, warm=True) for b in ("feather", "seam"))
            print(f"  {street + ', ' + variant:40}{differ:9.1%}{g_f:16.1%}{g_s:13.1%}{ms_f:12.1f}{ms_s:9.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="render size as a share of Waymo's 1280x1920")
    ap.add_argument("--size", type=parse_size, default=(512, 1024), help="stitched HxW timed")
    ap.add_argument("--repeat", type=int, default=5, help="timings: best of this many")
    ap.add_argument("--surfaces", default="all", help="'all' or 'default' (the default surface only)")
    ap.add_argument("--ghosts-only", action="store_true", help="only the ghost-share table")
    args = ap.parse_args()
    ghosts(args.scale, args.size, args.repeat)
    if args.ghosts_only:
        return
    surfaces = SURFACES if args.surfaces == "all" else dict(list(SURFACES.items())[:1])
    print(f"views {int(1280 * args.scale)}x{int(1920 * args.scale)}, shifts in full-resolution px per row band "
          f"(top -> bottom, {BANDS} bands), stitched {args.size[0]}x{args.size[1]} for ms/frame")
    for variant, kw in VARIANTS.items():
        cams, views, _ = render_pair(args.scale, **kw)
        print(f"\n{variant}")
        print(f"  {'model':34}{'median':>7}{'max':>7}  {'per band':<48}{'grey raw':>9}{'gain':>7}{'method':>13}{'ms':>7}")
        rows = [(f"new, {name}", s, False) for name, s in surfaces.items()]
        rows.append(("previous pinhole model", Surface("infinity"), True))
        for label, surface, old in rows:
            shifts, st, ms = run(views, cams, surface, old, args.size, args.repeat, args.scale)
            bands = " ".join(f"{v:5.1f}" if np.isfinite(v) else "    -" for v in shifts)
            print(f"  {label:34}{np.nanmedian(shifts):7.2f}{np.nanmax(shifts):7.1f}  {bands:<48}"
                  f"{st.overlap_error_raw:9.1f}{st.overlap_error:7.1f}{st.method:>13}{ms:7.1f}")


if __name__ == "__main__":
    main()
