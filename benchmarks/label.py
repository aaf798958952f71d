"""Labeler post-processing cost beside model time, and our vectorised merge beside a pairwise loop.

Prints, for 50 and 200 SAM masks on one image: the time of ``combine`` (overlap + merge), the time
of a plain pairwise loop computing the same answer, their ratio, and the tiny models' time for one
image. Run: ``python benchmarks/label.py [--height 256 --width 512 --counts 50 200]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from streetsynth.generators.label import build_labeler, combine


def make_masks(n: int, n_det: int, height: int, width: int, seed: int = 0):
    """Random rectangles as SAM masks (some parts of detections, some stuff) and detection masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    det_boxes = rng.integers([0, 0, height // 4, width // 8], [height // 2, width // 2, height, width], (n_det, 4))
    det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], det_boxes[:, :2] + 8)
    dets = np.stack([(yy >= b[0]) & (yy < b[2]) & (xx >= b[1]) & (xx < b[3]) for b in det_boxes])
    owners = rng.integers(0, n_det, n)
    boxes = []
    for o in owners:
        y0, x0, y1, x1 = det_boxes[o]
        a, b = np.sort(rng.integers(y0, y1 + 1, 2)), np.sort(rng.integers(x0, x1 + 1, 2))
        stuff = rng.random() < 0.3
        boxes.append((0, 0, height, width) if stuff else (a[0], b[0], a[1] + 1, b[1] + 1))
    sam = np.stack([(yy >= b[0]) & (yy < b[2]) & (xx >= b[1]) & (xx < b[3]) for b in boxes])
    return sam, dets, rng.integers(0, 2, n_det), rng.random(n_det).astype(np.float32)


def combine_loop(sam, dets, classes, scores, keep_overlap=0.9, merge_inside=0.99):
    """The plain way: every pair of masks intersected one at a time."""
    owner = []
    for m in sam:
        area = max(int(m.sum()), 1)
        fr = [(m & d).sum() / area for d in dets]
        best = int(np.argmax(fr)) if fr else -1
        owner.append(best if fr and fr[best] >= keep_overlap else -1)
    kept = [i for i, o in enumerate(owner) if o >= 0]
    areas = {i: int(sam[i].sum()) for i in kept}
    parent = {}
    for i in kept:
        best, best_area = i, -1
        for j in kept:
            bigger = areas[j] > areas[i] or (areas[j] == areas[i] and j < i)
            if j != i and bigger and areas[i] and (sam[i] & sam[j]).sum() / areas[i] >= merge_inside and areas[j] > best_area:
                best, best_area = j, areas[j]
        parent[i] = best
    groups: dict[int, np.ndarray] = {}
    for i in kept:
        root = i
        while parent[root] != root:
            root = parent[root]
        det = owner[root]
        groups[det] = groups[det] | sam[i] if det in groups else sam[i].copy()
    dets_out = sorted(groups)
    return np.stack([groups[d] for d in dets_out]) if dets_out else sam[:0], classes[dets_out], scores[dets_out]


def timed(fn, repeat: int = 3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--counts", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--detections", type=int, default=12)
    args = ap.parse_args()
    h, w = args.height, args.width

    labeler = build_labeler("tiny", "tiny", score_threshold=0.1, keep_overlap=0.0)
    image = (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8)
    labeler(image)
    t_det, (boxes, *_rest) = timed(lambda: labeler.detect(image), 1)
    t_sam, _ = timed(lambda: labeler.segment(image, boxes), 1)
    print(f"image {h}x{w}; tiny models, one image: detector {t_det * 1e3:.0f} ms, "
          f"SAM box mode ({len(boxes)} boxes) {t_sam * 1e3:.0f} ms")
    print(f"{'SAM masks':>9} {'ours ms':>9} {'loop ms':>9} {'loop/ours':>9} {'ours/models':>11}")
    for n in args.counts:
        sam, dets, classes, scores = make_masks(n, args.detections, h, w)
        t_ours, ours = timed(lambda: combine(sam, dets, classes, scores))
        t_loop, loop = timed(lambda: combine_loop(sam, dets, classes, scores), 1)
        same = len(ours[0]) == len(loop[0]) and all(np.array_equal(a, b) for a, b in zip(ours[0], loop[0]))
        if not same:
            raise SystemExit(f"vectorised and loop answers differ for {n} masks")
        print(f"{n:>9} {t_ours * 1e3:>9.1f} {t_loop * 1e3:>9.1f} {t_loop / t_ours:>9.1f} "
              f"{t_ours / (t_det + t_sam):>11.3f}   ({len(ours[0])} objects, same answer)")


if __name__ == "__main__":
    main()
