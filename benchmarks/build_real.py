"""The real-dataset builder beside its floor, and our stitch beside OpenCV's ``cv2.Stitcher``.

1. Frames per second of ``build_real`` (read, decode, stitch, carry labels, caption, encode, write
   Parquet, lay out the repo) with 1 and 2 worker processes, beside the floor: decoding the two
   camera JPEGs of each frame and encoding one JPEG of the stitched output size (quality 95, as
   the builder), on the same frames, records read beforehand, best of ``--repeat``. The floor
   image is the two views side by side resized to the output size, made outside the timed loop.
   A second floor line decodes with PIL as the builder does (``CameraView.decode``). The first
   multi-process build of a session also starts the fork server its workers come from; that
   one-off cost is printed apart. A second one-process build (stitch geometry cached, first-use
   costs paid) gives the rate a long build runs at; the same with OpenCV on one thread gives one
   core's rate. Ratios are builder fps / floor fps (one core's floor). Before / after the seam
   (issue 24): the same build with the old feather and with the seam, in process (interleaved,
   best of two each) and as the command a user runs, ``streetsynth build`` in a new process,
   start-up included (the feather through ``stitch.BLEND``, set before the CLI runs; the seam also
   through the installed console script). ``--blend-only`` prints just the floor and these lines.
2. Our calibrated stitch beside ``cv2.Stitcher`` in PANORAMA mode (features, bundle adjustment,
   spherical warp, seam finding, multi-band blending) and SCANS mode (affine), default settings,
   on the builder's own frames (the decoded JPEGs and calibrations the builder stitches), with
   the ground-truth panorama re-rendered from the sample's seeds. Time per frame and PSNR
   against the ground truth. A failed ``stitch`` (status != OK) is counted with its reason.
   The same comparison is repeated on scenes rendered with a wider FRONT/FRONT_RIGHT overlap
   (``--wide-yaw``), where the Stitcher succeeds more often, so that its PSNR can be measured.

   Registration of the Stitcher's output (its own projection, size and placement) to the ground
   truth: SIFT matches (ratio test 0.75) between its output and the ground truth, inliers of a
   RANSAC homography (3 px), then a cubic 2-D polynomial from ground-truth pixels to output
   pixels fitted to those inliers by least squares, and ``cv2.remap``. The cubic absorbs the
   smooth spherical-vs-cylindrical difference a homography cannot (median residual about 0.1 px,
   against about 0.3 px and 2 dB less PSNR with the homography alone) but not local seam
   errors; it favours the Stitcher. Its PSNR is taken where its output lands (eroded by 2 px);
   ours is given both where ours covers and on the Stitcher's pixels of the same frames.

    .venv/bin/python benchmarks/build_real.py [--segments 6 --frames 20 --panoptic-every 20 --view 1280x1920]
                                              [--size 512x1024 --compare 6 --wide-yaw -25 --wide-scenes 4]

Defaults are honest about real segments: Waymo's 1280x1920 views, segments of 200 frames (20 s at
10 Hz; 20 rendered frames per segment repeated with new timestamps, each still decoded and
stitched in full, so the per-segment geometry is spread as on real data), panoptic labels on 5 %
of the frames (plus a panoptic-on-every-frame line and a per-frame box-only vs panoptic
comparison), segment files hashed into splits so each split holds several files, and the CPUs
the machine actually gave printed beside the 2-process scaling: two concurrent busy loops
against one, and the floor itself run in two processes at once against one (the ceiling two
workers of JPEG work reach on this machine).
Current figures: benchmarks/RESULTS.md, "Issue 12". The figures below are the previous model's.

Measured (previous model, before issue 12)
------------------------------------------

2026-11-24, the 2-core CPU machine (2 CPU cores, no GPU), defaults, nothing else running
(``time``: 1 min 7 s wall):

    builder: 40 frames (5 segments, the last one validation), 640x960 per camera -> 512x1024 stitched JPEG, template captions
                                               frames/s  x floor
      floor: cv2 decode 2 JPEGs + encode 1         84.4     1.00
      floor with PIL decode (as the builder)       67.0     0.79
      build_real, num_proc=1                       11.0     0.13
      build_real, num_proc=2                       14.1     0.17
      build_real, num_proc=2, first of session      4.4     0.05   (fork server start: 6.2 s once)
      num_proc=2 / num_proc=1: 1.28x

    stitchers on 16 of the builder's frames (640x960 per camera, 8.4 deg overlap), PSNR against the rendered panorama
                                 ms/frame ms if ok  stitched  PSNR dB  covers  ours there
      ours (geometry cached)         38.7     38.7     16/16     32.7     97%
      ours (cold: geometry built)    257.2
      cv2.Stitcher PANORAMA          91.0        -      0/16        -       -           -
      cv2.Stitcher SCANS             54.2        -      0/16        -       -           -
      PANORAMA failed 16x: ERR_NEED_MORE_IMGS (no confident match between the views)
      SCANS failed 16x: ERR_NEED_MORE_IMGS (no confident match between the views)

    stitchers on 12 scenes with a wider overlap (FRONT_RIGHT yaw -25 deg: 25.4 deg overlap)
                                 ms/frame ms if ok  stitched  PSNR dB  covers  ours there
      ours (geometry cached)         34.6     34.6     12/12     32.5     98%
      ours (cold: geometry built)    204.4
      cv2.Stitcher PANORAMA          92.7    256.3      5/12     31.0     97%        32.8
      cv2.Stitcher SCANS             54.9    189.6      1/12     22.1     98%        32.7
      PANORAMA failed 7x: ERR_NEED_MORE_IMGS (no confident match between the views)
      PANORAMA registered with a median residual of 0.13 px
      SCANS failed 11x: ERR_NEED_MORE_IMGS (no confident match between the views)
      SCANS registered with a median residual of 0.48 px

    (whole run 60 s)

Reading it: the builder runs at 0.13x the 1-core floor (91 ms a frame against 12 ms); two processes
give 1.28x, not 2x, because the validation split is one segment file (datasets runs a one-shard
split in one process, so at best 1.67x here: 32 training frames over two processes, then 8 in one)
and each multi-process split starts its own pool. ``cv2.Stitcher`` fails on every frame at Waymo's
8.4 deg FRONT/FRONT_RIGHT overlap, in both modes; with a 25 deg overlap PANORAMA succeeds on 5 of 12
and, registered generously, is 1.8 dB under our stitch on the same pixels and 7.4x slower than our
cached stitch when it succeeds (1.3x our cold one); SCANS (affine) cannot model the camera rotation.
Our PSNR is about 2 dB lower than on raw renders (34.7 dB) because the inputs went through JPEG at
quality 95.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from streetsynth.builders import stitch as stitch_mod
from streetsynth.builders.frames import decode_image
from streetsynth.builders.stitch import psnr, stitch
from streetsynth.builders.waymo import build_real, hash_split
from streetsynth.builders.waymo import segment_name as segment_name_of
from streetsynth.builders.waymo_v1 import read_frames, read_records
from streetsynth.config import parse_size
from streetsynth.builders.captions import make_captioner
from streetsynth.builders.sample import SCENE_SURFACE, make_sample, render_scene, segment_name
from streetsynth.builders.waymo import stitched_row
from streetsynth.seeds import derive_seed
from streetsynth.tfrecord import write_tfrecord

SEED = 0
MODES = {"PANORAMA": cv2.Stitcher_PANORAMA, "SCANS": cv2.Stitcher_SCANS}
STATUS = {cv2.Stitcher_ERR_NEED_MORE_IMGS: "ERR_NEED_MORE_IMGS (no confident match between the views)",
          cv2.Stitcher_ERR_HOMOGRAPHY_EST_FAIL: "ERR_HOMOGRAPHY_EST_FAIL",
          cv2.Stitcher_ERR_CAMERA_PARAMS_ADJUST_FAIL: "ERR_CAMERA_PARAMS_ADJUST_FAIL"}


# ----------------------------------------------------------------------------------------- builder

def floor_fps(jpegs: list[tuple[bytes, bytes]], size: tuple[int, int], repeat: int, pil: bool = False) -> float:
    """Frames/s of decoding both JPEGs and encoding one output-sized JPEG, best of ``repeat``."""
    outs = []
    for a, b in jpegs:  # the image to encode: made outside the timed loop
        both = np.concatenate([cv2.imdecode(np.frombuffer(x, np.uint8), cv2.IMREAD_COLOR) for x in (a, b)], axis=1)
        outs.append(cv2.resize(both, (size[1], size[0]), interpolation=cv2.INTER_AREA))
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for (a, b), out in zip(jpegs, outs):
            if pil:
                decode_image(a), decode_image(b)
            else:
                cv2.imdecode(np.frombuffer(a, np.uint8), cv2.IMREAD_COLOR)
                cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
            cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 95])
        best = min(best, time.perf_counter() - t)
    return len(jpegs) / best


def _floor_worker(args) -> float:
    jpegs, size, repeat = args
    cv2.setNumThreads(1)
    return floor_fps(jpegs, size, repeat)


def floor_scaling(jpegs: list[tuple[bytes, bytes]], size: tuple[int, int], repeat: int) -> tuple[float, float]:
    """(floor fps in one process, total floor fps of two processes at once, each on all the frames):
    what two workers of this kind of work (JPEG decode and encode) can reach on this machine."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(2) as pool:
        one = pool.map(_floor_worker, [(jpegs, size, repeat)])[0]
        two = sum(pool.map(_floor_worker, [(jpegs, size, repeat)] * 2))
    return one, two


def lengthen(files: list[Path], frames: int, to: Path) -> list[Path]:
    """Each segment file rewritten with ``frames`` frames: its rendered frames repeated in order with
    new timestamps (10 Hz), so a segment is as long as Waymo's (about 200 frames in 20 s) without
    rendering every frame. Every frame is still read, decoded and stitched in full; only the
    per-segment one-off costs (stitch geometry per calibration) are spread as on real segments."""
    to.mkdir(parents=True, exist_ok=True)
    out = []
    for f in files:
        rendered = [fr for _, fr in read_frames(f)]
        t0 = rendered[0].timestamp_micros

        def payloads():
            for k in range(frames):
                fr = rendered[k % len(rendered)]
                fr.timestamp_micros = t0 + 100_000 * k
                yield fr.SerializeToString()

        write_tfrecord(to / f.name, payloads())
        out.append(to / f.name)
    return out


def builder_fps(source: Path, out: Path, size: tuple[int, int], num_proc: int, frames: int) -> float:
    t = time.perf_counter()
    summary = build_real(source, out, size=size, num_proc=num_proc, validation_percent=40)
    took = time.perf_counter() - t
    assert sum(summary["rows"].values()) == frames, summary["rows"]
    return frames / took


def flatten(files: list[Path], to: Path) -> dict[str, int]:
    """Segment files moved into one folder, so the builder hashes them into splits (several per split)."""
    to.mkdir(parents=True, exist_ok=True)
    for f in files:
        f.rename(to / f.name)
    counts: dict[str, int] = {}
    for f in files:
        split = hash_split(segment_name_of(f), 40)
        counts[split] = counts.get(split, 0) + 1
    return counts


def _busy(seconds: float) -> int:
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        n += 1
    return n


def _one_thread_build(args) -> float:
    source, out, size, frames = args
    cv2.setNumThreads(1)
    return builder_fps(Path(source), Path(out), size, 1, frames)


def independent_builds(source: Path, out: Path, size: tuple[int, int], frames: int) -> float:
    """Total frames/s of two one-process, one-thread builds of ``source`` run at once in separate
    processes: what two workers get from this machine with no datasets pool between them."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(2) as pool:
        return sum(pool.map(_one_thread_build, [(source, out / f"ind{i}", size, frames) for i in range(2)]))


def cores_given(seconds: float = 1.0) -> float:
    """Work of two concurrent busy loops over one alone: the CPUs this run actually got (<= 2)."""
    import multiprocessing as mp

    one = _busy(seconds)
    with mp.get_context("spawn").Pool(2) as pool:
        two = sum(pool.map(_busy, [seconds, seconds]))
    return two / max(one, 1)


def row_ms(records, size: tuple[int, int], repeat: int) -> float:
    """Median ms of ``stitched_row`` per frame, in this process (geometry cached after the first)."""
    cap = make_captioner("template")
    stitched_row(records[0], size, cap)
    out = []
    for _ in range(repeat):
        for rec in records:
            for v in rec.cameras.values():  # a fresh label decode each time, as in a build
                if v.panoptic is not None:
                    v.panoptic.__dict__.pop("label", None)
            t = time.perf_counter()
            stitched_row(rec, size, cap)
            out.append(1e3 * (time.perf_counter() - t))
    return float(np.median(out))


def with_blend(blend: str, fn, *args):
    """``fn(*args)`` with the stitch's default blend set to ``blend`` in this process (feather: the
    path before the seam, kept callable for this comparison)."""
    old, stitch_mod.BLEND = stitch_mod.BLEND, blend
    try:
        return fn(*args)
    finally:
        stitch_mod.BLEND = old


#: The CLI with the stitch's default blend set first (the feather line of the CLI comparison).
CLI_WITH_BLEND = ("import sys; import streetsynth.builders.stitch as s; s.BLEND = sys.argv[1]; "
                  "from streetsynth.cli import main; sys.exit(main(sys.argv[2:]))")


def cli_fps(source: Path, out: Path, size: tuple[int, int], frames: int, blend: str | None = None) -> float:
    """Frames/s of the command a user runs, ``streetsynth build`` in a new process, start-up (imports,
    parser, first geometry) included. ``blend=None``: the installed console script itself."""
    args = ["build", "--source", str(source), "--out", str(out), "--size", f"{size[0]}x{size[1]}"]
    cmd = ([str(Path(sys.executable).with_name("streetsynth")), *args] if blend is None
           else [sys.executable, "-c", CLI_WITH_BLEND, blend, *args])
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - t
    rows = sum(int(line.split(":")[1].split()[0]) for line in done.stdout.splitlines() if line.strip().endswith(" rows"))
    if done.returncode != 0 or rows != frames:
        raise SystemExit(f"streetsynth build gave {rows} of {frames} rows (rc {done.returncode}): {done.stderr[-2000:]}")
    return frames / took


def blend_lines(source: Path, tmp: Path, size: tuple[int, int], frames: int) -> dict[str, float]:
    """Frames/s of the builder with the feather (before the seam) and the seam (after), in this process
    (num_proc=1, geometry cached) and as the CLI in a new process, interleaved so load drifts hit both."""
    out = {}
    for k, blend in enumerate(("feather", "seam", "seam", "feather")):
        v = with_blend(blend, builder_fps, source, tmp / f"blend{k}", size, 1, frames)
        out[f"in-process {blend}"] = max(out.get(f"in-process {blend}", 0.0), v)
    out["CLI feather"] = cli_fps(source, tmp / "cli_feather", size, frames, "feather")
    out["CLI seam"] = cli_fps(source, tmp / "cli_seam", size, frames, "seam")
    out["CLI streetsynth build"] = cli_fps(source, tmp / "cli", size, frames)
    return out


# --------------------------------------------------------------------------------------- stitchers

def _poly(x: np.ndarray, y: np.ndarray, deg: int = 3) -> np.ndarray:
    return np.stack([x**i * y**j for i in range(deg + 1) for j in range(deg + 1 - i)], axis=-1)


class Truth:
    """A ground-truth panorama with its SIFT features computed once (shared by the modes)."""

    def __init__(self, image: np.ndarray, sift):
        self.image = image
        self.kp, self.desc = sift.detectAndCompute(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), None)


def register(result: np.ndarray, truth: Truth, sift) -> tuple[np.ndarray, np.ndarray, float] | None:
    """``result`` resampled onto the ground truth's pixels, where it lands, and the median fit
    residual (px); None when too few matches (see the module docstring for the method)."""
    kr, dr = sift.detectAndCompute(cv2.cvtColor(result, cv2.COLOR_RGB2GRAY), None)
    if dr is None or truth.desc is None:
        return None
    good = [p[0] for p in cv2.BFMatcher().knnMatch(dr, truth.desc, k=2)
            if len(p) == 2 and p[0].distance < 0.75 * p[1].distance]
    if len(good) < 30:
        return None
    src = np.float64([kr[m.queryIdx].pt for m in good])  # in the Stitcher's output
    dst = np.float64([truth.kp[m.trainIdx].pt for m in good])  # in the ground truth
    h, inl = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    if h is None or inl.sum() < 30:
        return None
    inl = inl.ravel().astype(bool)
    th, tw = truth.image.shape[:2]
    a = _poly(dst[inl, 0] / tw, dst[inl, 1] / th)
    cx = np.linalg.lstsq(a, src[inl, 0], rcond=None)[0]
    cy = np.linalg.lstsq(a, src[inl, 1], rcond=None)[0]
    residual = float(np.median(np.hypot(a @ cx - src[inl, 0], a @ cy - src[inl, 1])))
    ys, xs = np.mgrid[0:th, 0:tw]
    grid = _poly(xs.ravel() / tw, ys.ravel() / th)
    mx = (grid @ cx).reshape(th, tw).astype(np.float32)
    my = (grid @ cy).reshape(th, tw).astype(np.float32)
    warped = cv2.remap(result, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    drawn = result.any(axis=2).astype(np.uint8)  # the Stitcher leaves black outside its panorama
    lands = cv2.remap(drawn, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped, cv2.erode(lands, np.ones((5, 5), np.uint8)) > 0, residual


def compare(frames, modes: dict[str, int]) -> dict:
    """``frames``: (front RGB, right RGB, front cam, right cam, truth RGB). Per-stitcher stats."""
    sift = cv2.SIFT_create(nfeatures=5000)
    stitchers = {name: cv2.Stitcher_create(mode) for name, mode in modes.items()}
    s: dict = {"ours": {"ms": [], "cold_ms": [], "psnr": [], "cover": []}}
    for name in modes:
        s[name] = {"ms": [], "ok_ms": [], "psnr": [], "cover": [], "ours_psnr": [], "residual": [], "fail": []}
    for front, right, fcam, rcam, panorama in frames:
        stitch_mod._cached_calibrated.cache_clear()  # cold: the geometry (remap tables) is built
        t = time.perf_counter()
        stitch(front, right, fcam, rcam, size=None, surface=SCENE_SURFACE, check=False)  # wide scenes: not Waymo's overlap
        s["ours"]["cold_ms"].append(1e3 * (time.perf_counter() - t))
        t = time.perf_counter()  # cached: as in the builder, one geometry per calibration pair
        ours = stitch(front, right, fcam, rcam, size=None, surface=SCENE_SURFACE, check=False)
        s["ours"]["ms"].append(1e3 * (time.perf_counter() - t))
        x0, y0, x1, y1 = ours.geometry.crop  # our output is the covered rectangle of the panorama's canvas
        truth_rgb = np.ascontiguousarray(panorama[y0:y1, x0:x1])
        truth = Truth(truth_rgb, sift)
        valid = ours.geometry.valid["FRONT"] | ours.geometry.valid["FRONT_RIGHT"]
        s["ours"]["psnr"].append(psnr(ours.image, truth_rgb, valid))
        s["ours"]["cover"].append(float(valid.mean()))
        bgr = [cv2.cvtColor(front, cv2.COLOR_RGB2BGR), cv2.cvtColor(right, cv2.COLOR_RGB2BGR)]
        for name, stitcher in stitchers.items():
            t = time.perf_counter()
            status, pano = stitcher.stitch(bgr)
            ms = 1e3 * (time.perf_counter() - t)
            s[name]["ms"].append(ms)
            if status != cv2.Stitcher_OK:
                s[name]["fail"].append(STATUS.get(status, f"status {status}"))
                continue
            s[name]["ok_ms"].append(ms)
            reg = register(cv2.cvtColor(pano, cv2.COLOR_BGR2RGB), truth, sift)
            if reg is None:
                s[name]["fail"].append("stitched, but too few matches to register it to the ground truth")
                continue
            warped, lands, residual = reg
            s[name]["psnr"].append(psnr(warped, truth_rgb, lands))
            s[name]["cover"].append(float(lands.mean()))
            s[name]["ours_psnr"].append(psnr(ours.image, truth_rgb, lands & valid))
            s[name]["residual"].append(residual)
    return s


def builder_frames(files: list[Path], view: tuple[int, int], limit: int):
    """The builder's inputs (decoded JPEGs, calibrations) with their re-rendered ground truth."""
    n = 0
    for s, path in enumerate(files):
        name = segment_name(SEED, s)
        for k, rec in enumerate(read_records(path)):
            if n >= limit:
                return
            f, r = rec.cameras["FRONT"], rec.cameras["FRONT_RIGHT"]
            scene = render_scene(derive_seed(SEED, name, k), view)  # as make_sample renders it
            front = f.decode()
            if psnr(front, scene.views["FRONT"]) < 30:
                raise RuntimeError(f"{path}: frame {k} does not match its re-rendered scene")
            yield front, r.decode(), f.calibration, r.calibration, scene.panorama
            n += 1


def wide_frames(view: tuple[int, int], yaw: float, count: int):
    """Scenes rendered with FRONT_RIGHT at ``yaw`` degrees, views through a JPEG round trip (q 95)."""
    for i in range(count):
        scene = render_scene(derive_seed(SEED, "wide", i), view, right_yaw_deg=yaw)
        views = []
        for cam in ("FRONT", "FRONT_RIGHT"):
            bgr = cv2.cvtColor(scene.views[cam], cv2.COLOR_RGB2BGR)
            ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
            views.append(cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
        yield views[0], views[1], scene.cameras["FRONT"], scene.cameras["FRONT_RIGHT"], scene.panorama


def _med(v: list[float], fmt: str, width: int) -> str:
    return f"{np.median(v):{width}{fmt}}" if v else f"{'-':>{width}}"


def print_comparison(title: str, s: dict, n: int) -> None:
    print(f"\n{title}")
    print(f"  {'':26}{'ms/frame':>9}{'ms if ok':>9}{'stitched':>10}{'PSNR dB':>9}{'covers':>8}{'ours there':>12}")
    o = s["ours"]
    print(f"  {'ours (geometry cached)':26}{_med(o['ms'], '.1f', 9)}{_med(o['ms'], '.1f', 9)}{f'{n}/{n}':>10}"
          f"{_med(o['psnr'], '.1f', 9)}{_med(o['cover'], '.0%', 8)}")
    print(f"  {'ours (cold: geometry built)':26}{_med(o['cold_ms'], '.1f', 9)}")
    for name, m in s.items():
        if name == "ours":
            continue
        ok = n - len(m["fail"])
        print(f"  {'cv2.Stitcher ' + name:26}{_med(m['ms'], '.1f', 9)}{_med(m['ok_ms'], '.1f', 9)}{f'{ok}/{n}':>10}"
              f"{_med(m['psnr'], '.1f', 9)}{_med(m['cover'], '.0%', 8)}{_med(m['ours_psnr'], '.1f', 12)}")
    for name, m in s.items():
        if name == "ours":
            continue
        for reason in sorted(set(m["fail"])):
            print(f"  {name} failed {m['fail'].count(reason)}x: {reason}")
        if m["residual"]:
            print(f"  {name} registered with a median residual of {np.median(m['residual']):.2f} px")


def print_header(args, n: int, n_pan: int, split_files: dict[str, int]) -> None:
    per_seg = f"{n // args.segments} frames each" + (f", {args.frames} rendered ones repeated" if args.segment_frames else "")
    print(f"builder: {n} frames ({args.segments} segments of {per_seg}: "
          + ", ".join(f"{k} {v} files" for k, v in sorted(split_files.items()))
          + f"), {args.view[0]}x{args.view[1]} per camera -> {args.size[0]}x{args.size[1]} stitched JPEG, template "
          f"captions, panoptic labels on {n_pan} frames ({n_pan / n:.0%})")
    print(f"  {'':40}{'frames/s':>9}{'x floor':>9}")


def print_blend_only(floor: float, first: float, blends: dict[str, float], t_all: float) -> None:
    print(f"  {'floor: cv2 decode 2 JPEGs + encode 1':40}{floor:9.1f}{1:9.2f}")
    print(f"  {'build_real, num_proc=1, first build':40}{first:9.1f}{first / floor:9.2f}   (in process, geometry built)")
    print_blend_lines(blends, floor)
    print(f"\n(whole run {time.perf_counter() - t_all:.0f} s)")


def print_blend_lines(blends: dict[str, float], floor: float) -> None:
    """The builder before (feather) and after (seam) the seam, in process and as the CLI, to the floor."""
    notes = {"in-process feather": "build_real in process, feather (before)", "in-process seam": "build_real in process, seam (after)",
             "CLI feather": "CLI, feather (before)", "CLI seam": "CLI, seam (after)",
             "CLI streetsynth build": "CLI: streetsynth build (as installed)"}
    for key, label in notes.items():
        extra = "   (num_proc=1, geometry cached, best of 2)" if key.startswith("in-process") else \
            "   (a new process: start-up, imports, geometry included)"
        print(f"  {label:40}{blends[key]:9.1f}{blends[key] / floor:9.2f}{extra}")
    print(f"  seam / feather: in process {blends['in-process seam'] / blends['in-process feather']:.2f}x, "
          f"CLI {blends['CLI seam'] / blends['CLI feather']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segments", type=int, default=6,
                    help="sample segments, hashed into splits (work is sharded by segment)")
    ap.add_argument("--frames", type=int, default=20, help="frames rendered per segment")
    ap.add_argument("--segment-frames", type=int, default=200,
                    help="frames per segment in the build: the rendered ones repeated with new timestamps "
                         "(Waymo: about 200; 0: as rendered)")
    ap.add_argument("--panoptic-every", type=int, default=20, help="panoptic labels on every N-th frame (20: 5%%)")
    ap.add_argument("--view", type=parse_size, default=(1280, 1920), help="per-camera HxW of the sample (Waymo's)")
    ap.add_argument("--size", type=parse_size, default=(512, 1024), help="stitched HxW the builder writes")
    ap.add_argument("--repeat", type=int, default=3, help="floor timings: best of this many")
    ap.add_argument("--compare", type=int, default=6, help="builder frames used for the stitcher comparison")
    ap.add_argument("--wide-yaw", type=float, default=-25.0, help="FRONT_RIGHT yaw (deg) of the wide-overlap scenes")
    ap.add_argument("--wide-scenes", type=int, default=4, help="wide-overlap scenes (0: skip)")
    ap.add_argument("--blend-only", action="store_true",
                    help="only the floor and the feather/seam and CLI lines (a shorter run)")
    args = ap.parse_args()
    t_all = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = make_sample(tmp / "sample", args.segments, args.frames, seed=SEED, view_size=args.view,
                            panoptic_every=args.panoptic_every)
        rendered = files
        if args.segment_frames:
            files = lengthen(files, args.segment_frames, tmp / "long")
        split_files = flatten(files, tmp / "flat")
        files = [tmp / "flat" / f.name for f in files]
        records = [r for f in rendered for r in read_records(f)]  # the distinct frames
        jpegs = [(r.cameras["FRONT"].image, r.cameras["FRONT_RIGHT"].image) for r in records]
        n = sum(1 for f in files for _ in read_frames(f))
        n_pan = sum(r.cameras["FRONT"].panoptic is not None for r in records) * n // len(records)
        floor = floor_fps(jpegs, args.size, args.repeat)
        floor_pil = floor_fps(jpegs, args.size, args.repeat, pil=True)
        fps = {1: builder_fps(tmp / "flat", tmp / "real1", args.size, 1, n)}
        blends = blend_lines(tmp / "flat", tmp, args.size, n)
        if args.blend_only:
            floor = max(floor, floor_fps(jpegs, args.size, args.repeat))  # once more, after the builds: the faster
            print_header(args, n, n_pan, split_files)
            print_blend_only(floor, fps[1], blends, t_all)
            return
        floor_one, floor_two = floor_scaling(jpegs, args.size, args.repeat)
        floor = max(floor, floor_one)  # the faster of two one-core measurements: ratios are not flattered by a slow one
        warm = builder_fps(tmp / "flat", tmp / "real1w", args.size, 1, n)  # geometry cached, first-use costs paid
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)  # the floor's decode and encode use one core; so does each datasets worker
        one_thread = builder_fps(tmp / "flat", tmp / "real1t", args.size, 1, n)
        cv2.setNumThreads(threads)
        cold = builder_fps(tmp / "flat", tmp / "real2cold", args.size, 2, n)  # starts the fork server
        fps[2] = builder_fps(tmp / "flat", tmp / "real2", args.size, 2, n)
        both = independent_builds(tmp / "flat", tmp, args.size, n)
        cores = cores_given()
        pan = [r for r in records if r.cameras["FRONT"].panoptic is not None][:4]
        box = [r for r in records if r.cameras["FRONT"].panoptic is None][:4]
        ms_box, ms_pan = row_ms(box, args.size, args.repeat), (row_ms(pan, args.size, args.repeat) if pan else float("nan"))
        make_sample(tmp / "pan", 2, 4, seed=SEED + 1, view_size=args.view, panoptic_every=1)
        fps_pan = builder_fps(tmp / "pan", tmp / "realpan", args.size, 1, 8)
        s = compare(builder_frames(rendered, args.view, args.compare), MODES)
        n_cmp = len(s["ours"]["ms"])

    overlap = render_scene(0, (64, 96)).overlap_deg  # the sample's geometry
    print_header(args, n, n_pan, split_files)
    print(f"  {'floor: cv2 decode 2 JPEGs + encode 1':40}{floor:9.1f}{1:9.2f}")
    print(f"  {'floor with PIL decode (as the builder)':40}{floor_pil:9.1f}{floor_pil / floor:9.2f}")
    for p, v in fps.items():
        print(f"  {f'build_real, num_proc={p}':40}{v:9.1f}{v / floor:9.2f}")
    print(f"  {'build_real, num_proc=1, second build':40}{warm:9.1f}{warm / floor:9.2f}"
          "   (stitch geometry cached, first-use costs paid: what a long build runs at)")
    print(f"  {'  the same, OpenCV on one thread':40}{one_thread:9.1f}{one_thread / floor:9.2f}"
          "   (one core, as the floor and each worker)")
    print(f"  {'build_real, num_proc=2, first of session':40}{cold:9.1f}{cold / floor:9.2f}"
          f"   (fork server start: {n / cold - n / fps[2]:.1f} s once)")
    print(f"  {'build_real, panoptic on every frame':40}{fps_pan:9.1f}{fps_pan / floor:9.2f}   (8 frames, num_proc=1)")
    print(f"  num_proc=2 / num_proc=1: {fps[2] / fps[1]:.2f}x ({fps[2] / one_thread:.2f}x the one-thread build, "
          f"as each worker runs), with {cores:.2f} CPUs actually given "
          "(two concurrent busy loops / one)")
    jobs = sum(-(-v // 2) for v in split_files.values())  # datasets gives each of 2 workers a contiguous half of a split's files
    print(f"  2 workers can reach at most {sum(split_files.values()) / jobs:.2f}x here: each split runs on its own, "
          "and a split of one file runs in one worker")
    print(f"  two independent one-thread builds at once / one: {both / one_thread:.2f}x ({both:.1f} frames/s): "
          "the same work without datasets' pool")
    print(f"  the floor in 2 processes at once / in 1: {floor_two / floor_one:.2f}x "
          f"({floor_one:.1f} -> {floor_two:.1f} frames/s): what this machine gives two workers of this kind of work")
    print(f"  stitched_row per frame, one process: box-only {ms_box:.1f} ms, panoptic {ms_pan:.1f} ms "
          f"({ms_pan / ms_box:.2f}x)")
    print_blend_lines(blends, floor)

    print_comparison(f"stitchers on {n_cmp} of the builder's frames ({args.view[0]}x{args.view[1]} per camera, "
                     f"{overlap:.1f} deg overlap), PSNR against the rendered panorama", s, n_cmp)
    if args.wide_scenes > 0:
        w = compare(wide_frames(args.view, args.wide_yaw, args.wide_scenes), MODES)
        wide_overlap = render_scene(0, (64, 96), right_yaw_deg=args.wide_yaw).overlap_deg
        print_comparison(f"stitchers on {args.wide_scenes} scenes with a wider overlap (FRONT_RIGHT yaw "
                         f"{args.wide_yaw:g} deg: {wide_overlap:.1f} deg overlap)", w, args.wide_scenes)
    print(f"\n(whole run {time.perf_counter() - t_all:.0f} s)")


if __name__ == "__main__":
    main()
