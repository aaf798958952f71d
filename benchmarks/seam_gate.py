"""Seam-gate methods side by side: false accept / false reject per kind on the same images, and time per score.

Scenes come from the sample maker's renderer; each one gets the realistic mismatches of
``seamed_variants`` (composited as the generator does) and the hard clean content of
``hard_clean_variants``. Every method scores the same images at its own calibrated threshold.
Seeds 0..29 are the calibration seeds the thresholds were picked on; other seeds are held out.

    .venv/bin/python benchmarks/seam_gate.py                                  # held-out seeds 100..159
    .venv/bin/python benchmarks/seam_gate.py --seeds 0:30 --sizes 96x192,256x512
    .venv/bin/python benchmarks/seam_gate.py --seeds 100:140 --sizes 512x1024
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from streetsynth.builders.sample import render_panorama
from streetsynth.config import parse_size
from streetsynth.generators.seam import METHODS, THRESHOLDS, SeamGate, calibration_scores, edge_mask, rates


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="100:160", help="scene seeds START:STOP (0:30 are the calibration seeds)")
    p.add_argument("--sizes", default="96x192,256x512", help="comma-separated HxW; the edge sits at 2/3 of the width")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--time-size", default="512x1024", help="size at which one score is timed")
    args = p.parse_args(argv)
    start, stop = (int(x) for x in args.seeds.split(":"))
    methods = args.methods.split(",")
    for h, w in map(parse_size, args.sizes.split(",")):
        edge = int(round(w * 2 / 3))
        imgs = [render_panorama(np.random.default_rng(s), h, w, h * 0.43, s % 5 == 4, 4, 3)[0] for s in range(start, stop)]
        print(f"\n{h}x{w}, edge at x={edge}, seeds {start}..{stop - 1} ({len(imgs)} scenes x 5 seamed + 5 clean)")
        for m in methods:
            r = rates(*calibration_scores(imgs, edge, m), THRESHOLDS[m])
            kinds = " ".join(f"{k.split(':')[1]} {v:.2f}" for k, v in r.items() if ":" in k)
            print(f"  {m:<10} threshold {THRESHOLDS[m]:<4} false accept {r['false_accept']:.3f}  "
                  f"false reject {r['false_reject']:.3f}  | {kinds}")
    h, w = parse_size(args.time_size)
    img = render_panorama(np.random.default_rng(7), h, w, h * 0.43, False, 4, 3)[0]
    mask = edge_mask(img.shape, int(round(w * 2 / 3)))
    times = {}
    for m in methods:
        gate = SeamGate(method=m)
        gate.score(img, mask)
        best = []
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(20):
                gate.score(img, mask)
            best.append((time.perf_counter() - t) / 20)
        times[m] = min(best)
    base = times.get("column-sum", next(iter(times.values())))
    print(f"\ntime per score at {h}x{w} (best of 3 x 20): "
          + ", ".join(f"{m} {t * 1e3:.1f} ms ({t / base:.1f}x column-sum)" for m, t in times.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
