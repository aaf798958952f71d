"""The real-dataset builder beside its floor, and our stitch beside OpenCV's ``cv2.Stitcher``.

1. Frames per second of ``build_real`` (decode, stitch, carry labels, caption, encode, write
   Parquet) with 1 and 2 worker processes, beside the floor: decoding the two camera JPEGs and
   encoding the stitched JPEG alone, on the same frames. The first multi-process build of a
   session also starts the fork server its workers come from; that one-off cost is printed apart.
2. Our calibrated stitch beside ``cv2.Stitcher`` (PANORAMA mode, features + bundle adjustment +
   seam finding + multi-band blending) on scenes rendered with a known panorama: time per frame
   and PSNR against the ground truth. The Stitcher's output has its own projection and placement,
   so it is registered to the ground truth with a SIFT + RANSAC homography first (this favours
   it), and both are scored where they cover the ground truth.

    .venv/bin/python benchmarks/build_real.py [--segments 4 --frames 6 --view 640x960 --size 512x1024 --scenes 8]

Measured 2026-11-24 on the 2-core CPU machine (no GPU), defaults:

    floor (decode 2 JPEGs + encode 1):  55.8 frames/s
    build_real, 1 process:              10.9 frames/s (0.19x the floor)
    build_real, 2 processes:            10.9 frames/s (1.00x of 1 process: 24 frames are too few
                                        to amortise the per-split pool and Parquet set-up)
    first 2-process build of a session: 3.0 frames/s (fork server start-up, 5.9 s once)
    stitch, ours (geometry cached):     9.6 ms/frame, 35.3 dB PSNR against the ground truth, 97 % covered
    stitch, ours (cold):                56.0 ms/frame
    cv2.Stitcher:                       70.0 ms/frame, failed on 8 of 8 (ERR_NEED_MORE_IMGS: the
                                        8.4 degree FRONT/FRONT_RIGHT overlap gives it no confident match)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from streetsynth.builders import stitch as stitch_mod
from streetsynth.builders.stitch import psnr, stitch
from streetsynth.builders.waymo import build_real
from streetsynth.builders.waymo_v1 import read_records
from streetsynth.commands.make_sample import parse_size
from streetsynth.sample import make_sample, render_scene


def floor_fps(files: list[Path], size: tuple[int, int]) -> tuple[float, int]:
    """Frames/s of decoding both JPEGs and encoding one output-sized JPEG (records read beforehand)."""
    jpegs = [(r.cameras["FRONT"].image, r.cameras["FRONT_RIGHT"].image) for f in files for r in read_records(f)]
    t = time.perf_counter()
    for a, b in jpegs:
        fa = cv2.imdecode(np.frombuffer(a, np.uint8), cv2.IMREAD_COLOR)
        fb = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
        out = cv2.resize(np.concatenate([fa, fb], axis=1), (size[1], size[0]), interpolation=cv2.INTER_AREA)
        cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return len(jpegs) / (time.perf_counter() - t), len(jpegs)


def builder_fps(source: Path, out: Path, size: tuple[int, int], num_proc: int, frames: int) -> float:
    t = time.perf_counter()
    build_real(source, out, size=size, num_proc=num_proc)
    return frames / (time.perf_counter() - t)


def register(result: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``result`` warped onto ``truth`` by a SIFT + RANSAC homography, and where it lands; None if unmatched."""
    sift = cv2.SIFT_create(nfeatures=5000)
    kr, dr = sift.detectAndCompute(cv2.cvtColor(result, cv2.COLOR_RGB2GRAY), None)
    kt, dt = sift.detectAndCompute(cv2.cvtColor(truth, cv2.COLOR_RGB2GRAY), None)
    if dr is None or dt is None:
        return None
    good = [p[0] for p in cv2.BFMatcher().knnMatch(dr, dt, k=2) if len(p) == 2 and p[0].distance < 0.75 * p[1].distance]
    if len(good) < 8:
        return None
    src = np.float32([kr[m.queryIdx].pt for m in good])
    dst = np.float32([kt[m.trainIdx].pt for m in good])
    h, _ = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    if h is None:
        return None
    size = (truth.shape[1], truth.shape[0])
    warped = cv2.warpPerspective(result, h, size, flags=cv2.INTER_LINEAR)
    drawn = result.any(axis=2).astype(np.uint8)  # the Stitcher leaves black outside its panorama
    covered = cv2.warpPerspective(drawn, h, size, flags=cv2.INTER_NEAREST)
    return warped, cv2.erode(covered.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0


STATUS = {cv2.Stitcher_ERR_NEED_MORE_IMGS: "ERR_NEED_MORE_IMGS (no confident match between the views)",
          cv2.Stitcher_ERR_HOMOGRAPHY_EST_FAIL: "ERR_HOMOGRAPHY_EST_FAIL",
          cv2.Stitcher_ERR_CAMERA_PARAMS_ADJUST_FAIL: "ERR_CAMERA_PARAMS_ADJUST_FAIL"}


def compare_stitchers(scenes: int, view: tuple[int, int]) -> dict[str, list[float]]:
    stats = {k: [] for k in ("ours_ms", "ours_cold_ms", "ours_psnr", "ours_cover",
                             "cv_ms", "cv_psnr", "cv_cover", "cv_fail")}
    cv_stitcher = cv2.Stitcher_create(cv2.Stitcher_PANORAMA)
    for seed in range(scenes):
        sc = render_scene(seed, view)
        truth = sc.panorama
        front, right = sc.views["FRONT"], sc.views["FRONT_RIGHT"]
        cams = sc.cameras
        stitch_mod._cached_calibrated.cache_clear()
        t = time.perf_counter()
        st = stitch(front, right, cams["FRONT"], cams["FRONT_RIGHT"], size=truth.shape[:2])
        stats["ours_cold_ms"].append(1e3 * (time.perf_counter() - t))
        t = time.perf_counter()
        st = stitch(front, right, cams["FRONT"], cams["FRONT_RIGHT"], size=truth.shape[:2])
        stats["ours_ms"].append(1e3 * (time.perf_counter() - t))
        valid = st.geometry.valid["FRONT"] | st.geometry.valid["FRONT_RIGHT"]
        stats["ours_psnr"].append(psnr(st.image, truth, valid))
        stats["ours_cover"].append(float(valid.mean()))

        t = time.perf_counter()
        status, pano = cv_stitcher.stitch([cv2.cvtColor(front, cv2.COLOR_RGB2BGR), cv2.cvtColor(right, cv2.COLOR_RGB2BGR)])
        stats["cv_ms"].append(1e3 * (time.perf_counter() - t))
        reg = register(cv2.cvtColor(pano, cv2.COLOR_BGR2RGB), truth) if status == cv2.Stitcher_OK else None
        if reg is None:
            stats["cv_fail"].append(1.0)
            stats.setdefault("cv_status", []).append(STATUS.get(status, str(status)) if status != cv2.Stitcher_OK
                                                     else "not registrable")
            continue
        warped, covered = reg
        stats["cv_fail"].append(0.0)
        stats["cv_psnr"].append(psnr(warped, truth, covered))
        stats["cv_cover"].append(float(covered.mean()))
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segments", type=int, default=4, help="sample segments (work is sharded by segment)")
    ap.add_argument("--frames", type=int, default=6, help="frames per segment")
    ap.add_argument("--view", type=parse_size, default=(640, 960), help="per-camera HxW of the sample")
    ap.add_argument("--size", type=parse_size, default=(512, 1024), help="stitched HxW")
    ap.add_argument("--scenes", type=int, default=8, help="rendered scenes for the stitcher comparison")
    ap.add_argument("--stitch-view", type=parse_size, default=(320, 480), help="per-camera HxW for the comparison")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = make_sample(tmp / "sample", args.segments, args.frames, seed=0, view_size=args.view)
        floor, n = floor_fps(files, args.size)
        fps = {1: builder_fps(tmp / "sample", tmp / "real1", args.size, 1, n)}
        cold = builder_fps(tmp / "sample", tmp / "real2cold", args.size, 2, n)  # starts the fork server
        fps[2] = builder_fps(tmp / "sample", tmp / "real2", args.size, 2, n)
    print(f"builder: {n} frames of {args.view[0]}x{args.view[1]} per camera -> {args.size[0]}x{args.size[1]} stitched")
    print(f"  floor (decode 2 JPEGs + encode 1):  {floor:7.1f} frames/s")
    for p, v in fps.items():
        print(f"  build_real, {p} process{'es' if p > 1 else '  '}:       {v:7.1f} frames/s   "
              f"({v / floor:.2f}x the floor)")
    print(f"  2 processes / 1 process:            {fps[2] / fps[1]:.2f}x")
    print(f"  first 2-process build of a session: {cold:7.1f} frames/s (starts the fork server: "
          f"{n / cold - n / fps[2]:.1f} s once)")

    s = compare_stitchers(args.scenes, args.stitch_view)
    print(f"\nstitchers: {args.scenes} rendered scenes, {args.stitch_view[0]}x{args.stitch_view[1]} per camera")
    print(f"  {'':22}{'ms/frame':>10}{'PSNR dB':>10}{'covers':>9}{'failed':>8}")
    print(f"  {'ours (geometry cached)':22}{np.median(s['ours_ms']):10.1f}{np.median(s['ours_psnr']):10.1f}"
          f"{np.median(s['ours_cover']):9.0%}{0:8d}")
    print(f"  {'ours (cold)':22}{np.median(s['ours_cold_ms']):10.1f}{'':10}{'':9}{'':8}")
    cv_psnr = f"{np.median(s['cv_psnr']):10.1f}" if s["cv_psnr"] else f"{'-':>10}"
    cv_cover = f"{np.median(s['cv_cover']):9.0%}" if s["cv_cover"] else f"{'-':>9}"
    print(f"  {'cv2.Stitcher':22}{np.median(s['cv_ms']):10.1f}{cv_psnr}{cv_cover}{int(sum(s['cv_fail'])):8d}")
    for reason in sorted(set(s.get("cv_status", []))):
        print(f"  cv2.Stitcher failed {s['cv_status'].count(reason)}x: {reason}")
    print(f"  speed: ours is {np.median(s['cv_ms']) / np.median(s['ours_ms']):.1f}x faster (cached), "
          f"{np.median(s['cv_ms']) / np.median(s['ours_cold_ms']):.1f}x (cold)")


if __name__ == "__main__":
    main()
