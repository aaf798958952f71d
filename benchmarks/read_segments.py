"""Reading + parsing + decoding FRONT and FRONT_RIGHT, beside decoding the same JPEGs alone.

    python benchmarks/read_segments.py [--frames 20] [--size 1280x1920] [--repeat 3]

Reading must add little to decoding: the ratio printed last is (read+parse+decode) / (decode).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from streetsynth.builders.waymo_v1 import read_records
from streetsynth.commands.make_sample import parse_size
from streetsynth.builders.sample import make_sample


def _decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--size", type=parse_size, default=(1280, 1920), help="per-view HxW (Waymo: 1280x1920)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = make_sample(tmp, segments=1, frames=args.frames, seed=0, view_size=args.size)[0]
        size_mb = Path(path).stat().st_size / 1e6
        jpegs = [(r.cameras["FRONT"].image, r.cameras["FRONT_RIGHT"].image) for r in read_records(path)]
        full, alone = [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            for rec in read_records(path):
                _decode(rec.cameras["FRONT"].image)
                _decode(rec.cameras["FRONT_RIGHT"].image)
            full.append(time.perf_counter() - t)
            t = time.perf_counter()
            for a, b in jpegs:
                _decode(a)
                _decode(b)
            alone.append(time.perf_counter() - t)
    n = len(jpegs)
    t_full, t_alone = min(full), min(alone)
    print(f"segment: {n} frames at {args.size[0]}x{args.size[1]} per view, {size_mb:.1f} MB")
    print(f"read + parse + decode 2 JPEGs: {n / t_full:8.1f} frames/s")
    print(f"decode 2 JPEGs alone:          {n / t_alone:8.1f} frames/s")
    print(f"ratio (read+parse+decode) / decode: {t_full / t_alone:.3f}  (reading adds {100 * (t_full / t_alone - 1):.1f}%)")


if __name__ == "__main__":
    main()
