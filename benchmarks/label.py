"""Labeler merge cost: ours (box-first) beside a pairwise loop, and beside real-size model time.

SAM-like masks at 512x1024 (default): background regions that tile the frame (sky, buildings,
road, sidewalk), distinct objects (cars, people, poles) as filled shapes, and their parts
(wheels, windows, heads), with each object's detection mask slightly larger than it. The reference
loop is written as fast as a plain loop goes (boxes and areas once, every pair counted with
``np.count_nonzero`` inside its box intersection only, see :func:`combine_loop`). The loop and
ours are timed the same way (best of ``--repeat``) and must give the same answer. Model time is a
real-size ``maskrcnn_resnet50_fpn_v2`` and SAM vit_b, both with random weights, on the same image.
Run: ``python benchmarks/label.py [--height 512 --width 1024 --counts 50 200 --no-models]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from streetsynth.generators.label import combine


def scene_masks(n: int, height: int, width: int, seed: int = 0):
    """``(sam masks (n, H, W), detection masks, classes, scores)`` shaped like SAM output on a street scene.

    About a tenth are background regions, the rest split between objects and parts of objects.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    horizon = height * 0.45
    n_bg = max(4, n // 10)
    cuts = np.sort(rng.uniform(0, width, n_bg - 3))
    bg = [yy < horizon - 40, (yy >= horizon) & (yy < horizon + 30), yy >= horizon + 30]
    facade = (yy >= horizon - 40) & (yy < horizon)
    edges = np.concatenate([[0], cuts, [width]])
    bg += [facade & (xx >= a) & (xx < b) for a, b in zip(edges[:-1], edges[1:])]
    n_obj = max(1, (n - len(bg)) // 2)
    objects, dets = [], []
    for _ in range(n_obj):
        cy = rng.uniform(horizon, height - 10)
        scale = 0.2 + 0.8 * (cy - horizon) / (height - horizon)  # nearer objects are bigger
        ry, rx = scale * rng.uniform(15, 60), scale * rng.uniform(15, 120)
        cx = rng.uniform(rx, width - rx)
        m = (np.abs(yy - cy) / ry) ** 4 + (np.abs(xx - cx) / rx) ** 4 <= 1  # rounded box
        objects.append(m)
        dets.append((np.abs(yy - cy) / (ry + 3)) ** 4 + (np.abs(xx - cx) / (rx + 3)) ** 4 <= 1)
    parts = []
    while len(bg) + len(objects) + len(parts) < n:
        o = objects[rng.integers(0, len(objects))]
        ys, xs = np.nonzero(o.any(axis=1))[0], np.nonzero(o.any(axis=0))[0]
        y0, x0 = rng.integers(ys[0], ys[-1] + 1), rng.integers(xs[0], xs[-1] + 1)
        y1, x1 = y0 + rng.integers(2, max(3, (ys[-1] - ys[0]) // 2)), x0 + rng.integers(2, max(3, (xs[-1] - xs[0]) // 2))
        parts.append(o & (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1))
    sam = np.stack(bg + objects + parts)[rng.permutation(n)]
    det = np.stack(dets)
    return sam, det, rng.integers(0, 3, len(det)), rng.random(len(det)).astype(np.float32)


def _box(m: np.ndarray) -> tuple[int, int, int, int]:
    """Half-open ``(y0, x0, y1, x1)`` of a mask's pixels (an empty box for an empty mask)."""
    ys, xs = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    return (0, 0, 0, 0) if len(ys) == 0 else (ys[0], xs[0], ys[-1] + 1, xs[-1] + 1)


def _overlap(a: np.ndarray, ba, b: np.ndarray, bb) -> int:
    """Pixels of ``a & b``, counted with ``np.count_nonzero`` inside the intersection of their boxes only."""
    y0, x0 = max(ba[0], bb[0]), max(ba[1], bb[1])
    y1, x1 = min(ba[2], bb[2]), min(ba[3], bb[3])
    if y1 <= y0 or x1 <= x0:
        return 0
    return np.count_nonzero(a[y0:y1, x0:x1] & b[y0:y1, x0:x1])


def combine_loop(sam, dets, classes, scores, keep_overlap=0.9, merge_inside=0.99):
    """The reference a competent engineer writes: a pairwise loop, made fast the plain way.

    Each mask's box and area are found once; a pair is counted with ``np.count_nonzero`` inside the
    intersection of the two boxes only, and pairs whose boxes do not meet are skipped. Unioning ORs
    each member inside its box. What it does not do (ours does): skip pairs whose box intersection
    cannot reach the threshold, and vectorise the bookkeeping.
    """
    sam_boxes, det_boxes = [_box(m) for m in sam], [_box(d) for d in dets]
    areas = [np.count_nonzero(m[y0:y1, x0:x1]) for m, (y0, x0, y1, x1) in zip(sam, sam_boxes)]
    owner = []
    for m, bm, area in zip(sam, sam_boxes, areas):
        fr = [_overlap(m, bm, d, bd) / max(area, 1) for d, bd in zip(dets, det_boxes)]
        best = int(np.argmax(fr)) if fr else -1
        owner.append(best if fr and fr[best] >= keep_overlap else -1)
    kept = [i for i, o in enumerate(owner) if o >= 0]
    parent = {}
    for i in kept:
        best, best_area = i, -1
        for j in kept:
            bigger = areas[j] > areas[i] or (areas[j] == areas[i] and j < i)
            if j != i and bigger and areas[i] and areas[j] > best_area and \
                    _overlap(sam[i], sam_boxes[i], sam[j], sam_boxes[j]) / areas[i] >= merge_inside:
                best, best_area = j, areas[j]
        parent[i] = best
    groups: dict[int, np.ndarray] = {}
    for i in kept:
        root = i
        while parent[root] != root:
            root = parent[root]
        det = owner[root]
        if det not in groups:
            groups[det] = np.zeros(sam.shape[1:], bool)
        y0, x0, y1, x1 = sam_boxes[i]
        groups[det][y0:y1, x0:x1] |= sam[i, y0:y1, x0:x1]
    dets_out = sorted(groups)
    return np.stack([groups[d] for d in dets_out]) if dets_out else sam[:0], classes[dets_out], scores[dets_out]


def timed(fn, repeat: int):
    """Best wall time of ``repeat`` calls and the last answer."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def model_seconds(height: int, width: int, n_boxes: int, device: str = "cpu") -> tuple[float, float, float]:
    """Seconds for one image through real-size Mask R-CNN v2, SAM vit_b box mode with ``n_boxes``
    boxes (one embedding, one batched decode), and SAM's image embedding alone; random weights."""
    import torch
    import torchvision
    from segment_anything import SamPredictor, sam_model_registry

    from streetsynth.generators.label import sam_masks_for_boxes

    torch.manual_seed(0)
    image = (np.random.default_rng(0).random((height, width, 3)) * 255).astype(np.uint8)
    det = torchvision.models.detection.maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None).eval().to(device)
    x = (torch.from_numpy(image).permute(2, 0, 1).float() / 255).to(device)

    def detect():
        out = det([x])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return out

    with torch.no_grad():
        detect()
        t_det, _ = timed(detect, 1)
    predictor = SamPredictor(sam_model_registry["vit_b"](checkpoint=None).eval().to(device))
    rng = np.random.default_rng(1)
    xy = rng.uniform([0, 0], [width - 64, height - 64], (n_boxes, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(16, 64, (n_boxes, 2))], axis=1)
    with torch.no_grad():
        t_embed, _ = timed(lambda: predictor.set_image(image), 1)
    t_sam, masks = timed(lambda: sam_masks_for_boxes(predictor, image, boxes), 1)
    assert masks.shape == (n_boxes, height, width)
    return t_det, t_sam, t_embed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--counts", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--repeat", type=int, default=2, help="timings per side (best kept), the same for both")
    ap.add_argument("--boxes", type=int, default=20, help="boxes prompting SAM in the model timing")
    ap.add_argument("--device", default="cpu", help="torch device for the model timing")
    ap.add_argument("--no-models", action="store_true", help="skip the real-size model timing")
    args = ap.parse_args()
    h, w = args.height, args.width
    t_models = None
    if not args.no_models:
        t_det, t_sam, t_embed = model_seconds(h, w, args.boxes, args.device)
        t_models = t_det + t_sam
        print(f"image {h}x{w}; real-size models, random weights, one image on {args.device}: maskrcnn_resnet50_fpn_v2 "
              f"{t_det:.2f} s; SAM vit_b box mode, {args.boxes} boxes in one call: {t_sam:.2f} s "
              f"({args.boxes / t_sam:.1f} masks/s; embedding alone {t_embed:.2f} s, so "
              f"{args.boxes / max(t_sam - t_embed, 1e-9):.0f} masks/s decoded after it)")
    print(f"{'SAM masks':>9} {'ours ms':>9} {'loop ms':>9} {'loop/ours':>9} {'ours/models':>11}")
    for n in args.counts:
        sam, dets, classes, scores = scene_masks(n, h, w)
        t_ours, ours = timed(lambda: combine(sam, dets, classes, scores), args.repeat)
        t_loop, loop = timed(lambda: combine_loop(sam, dets, classes, scores), args.repeat)
        same = len(ours[0]) == len(loop[0]) and all(np.array_equal(a, b) for a, b in zip(ours[0], loop[0]))
        if not same:
            raise SystemExit(f"box-first and loop answers differ for {n} masks")
        share = f"{t_ours / t_models:>11.3%}" if t_models else f"{'-':>11}"
        print(f"{n:>9} {t_ours * 1e3:>9.1f} {t_loop * 1e3:>9.1f} {t_loop / t_ours:>9.1f} {share}"
              f"   ({len(ours[0])} objects, same answer)")


if __name__ == "__main__":
    main()
