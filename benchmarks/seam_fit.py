"""Rebuild the seam gate's shipped constants (``CUE_SCALES``, ``DEFAULT_THRESHOLD`` in generators/seam.py).

The fit of the module docstring there: good continuations only (true, JPEG q75, smoothed, grainy,
half resolution) of scenes 100-199 of both renderers at 256x512 and 512x1024, composited as
``benchmarks/seam_gate.py`` does (edge at 2/3 of the width; scenes 100-129 and 130-199 in two batches,
so that the random kinds draw what the shipped fit drew), pooled; each cue's 99th percentile (at least
its floor) and the score that 3 % of them exceed (``seam_calibration.fit``). Prints the constants as
they are written in the module and whether they are the shipped ones. About 5 minutes on one core.

    .venv/bin/python benchmarks/seam_fit.py
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from seam_scenes import raycast_pairs, sample_pairs  # noqa: E402

from streetsynth.generators.seam import CUE_SCALES, DEFAULT_THRESHOLD  # noqa: E402
from streetsynth.generators.seam_calibration import cue_table, fit, scores  # noqa: E402
from streetsynth.generators.seam_family import ALL_KINDS, GOOD_KINDS, composites  # noqa: E402

SIZES = ((256, 512), (512, 1024))
BATCHES = (range(100, 130), range(130, 200))


def good_rows() -> np.ndarray:
    """Cue rows of every good continuation of the fit scenes, both renderers and sizes."""
    rows = []
    jobs = [(size, make, seeds) for size in SIZES for make in (sample_pairs, raycast_pairs) for seeds in BATCHES]
    for (h, w), make, seeds in tqdm(jobs, desc="fit scenes", unit="batch"):
        edge = round(2 * w / 3)
        pairs = make(seeds, h, w)
        family = composites([p[0] for p in pairs], edge, ALL_KINDS, others=[p[1] for p in pairs])
        rows += [cue_table(family[k], edge) for k in GOOD_KINDS]
    return np.concatenate(rows)


def main() -> int:
    cv2.setNumThreads(1)
    good = good_rows()
    scales = tuple(float(f"{s:.3g}") for s in fit(good)[0])
    # the threshold of the scales as written (3 digits), which is what the gate divides by
    threshold = round(float(np.quantile(scores(good, scales), 0.97)), 2)
    print(f"{len(good)} good continuations")
    print(f"CUE_SCALES = {scales}\nDEFAULT_THRESHOLD = {threshold}")
    same = scales == tuple(CUE_SCALES) and threshold == DEFAULT_THRESHOLD
    print("the shipped constants" if same else f"differs from the shipped {tuple(CUE_SCALES)}, {DEFAULT_THRESHOLD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
