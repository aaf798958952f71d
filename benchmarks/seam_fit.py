"""Rebuild the seam gate's shipped constants (``CUE_SCALES``, ``DEFAULT_THRESHOLD`` in generators/seam.py).

The fit of the module docstring there: good continuations only (true, JPEG q75, smoothed, grainy,
half resolution) of scenes 100-199 of both renderers at 256x512 and 512x1024, composited as
``benchmarks/seam_gate.py`` does (edge at 2/3 of the width; scenes 100-129 and 130-199 in two batches,
so that the random kinds draw what the shipped fit drew), pooled; each cue's 99th percentile (at least
its floor) and the score that 3 % of them exceed (``seam_calibration.fit``). Prints the constants as
they are written in the module and whether they are the shipped ones. About 5 minutes on one core.

``--cross-validate`` instead cuts the fit scenes and the benchmark's scenes 0-29 (130 per renderer) into
5 folds by scene and scores each fold, every kind, with scales and a threshold fitted the same way on the
good kinds of the other four: one split of 30 scenes moves a false-reject rate by 1.7 % per scene (its five
good kinds move together), the folds average that out. About 8 minutes on one core.

    .venv/bin/python benchmarks/seam_fit.py
    .venv/bin/python benchmarks/seam_fit.py --cross-validate
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from seam_scenes import SOURCES  # noqa: E402

from streetsynth.generators.seam import CUE_SCALES, DEFAULT_THRESHOLD  # noqa: E402
from streetsynth.generators.seam_calibration import cue_table, fit, scores  # noqa: E402
from streetsynth.generators.seam_family import ALL_KINDS, GOOD_KINDS, SEAM_KINDS, composites  # noqa: E402

SIZES = ((256, 512), (512, 1024))
BATCHES = (range(100, 130), range(130, 200))
#: The benchmark's scenes (``benchmarks/seam_gate.py --scenes 30``), joined to the fit scenes for cross-validation.
REPORT = range(0, 30)


def kind_rows(batches, kinds) -> dict[tuple[int, str, str], np.ndarray]:
    """Cue rows of each of ``kinds``, per (width, renderer, kind), scenes in the order of ``batches``; the
    composites are made with every kind, so that the random kinds draw what the shipped fit drew."""
    rows: dict[tuple[int, str, str], list[np.ndarray]] = {}
    jobs = [(size, name, seeds) for size in SIZES for name in SOURCES for seeds in batches]
    for (h, w), name, seeds in tqdm(jobs, desc="scenes", unit="batch"):
        edge = round(2 * w / 3)
        pairs = SOURCES[name](seeds, h, w)
        family = composites([p[0] for p in pairs], edge, ALL_KINDS, others=[p[1] for p in pairs])
        for k in kinds:
            rows.setdefault((w, name, k), []).append(cue_table(family[k], edge))
    return {key: np.concatenate(v) for key, v in rows.items()}


def cross_validate(rows: dict[tuple[int, str, str], np.ndarray], folds: int = 5) -> None:
    """Print each size's false accept (with and without 2-px shifts), false reject and per-kind rates, every
    fold scored by a fit (``seam_calibration.fit``, both sizes pooled) on the other folds' good kinds."""
    n = len(next(iter(rows.values())))
    fold = np.random.default_rng(0).permutation(n) % folds
    wrong = {key: np.zeros(n, bool) for key in rows}
    for f in range(folds):
        scales, threshold = fit(np.concatenate([v[fold != f] for (w, s, k), v in rows.items() if k in GOOD_KINDS]))
        for (w, s, k), v in rows.items():
            score = scores(v[fold == f], scales)
            wrong[(w, s, k)][fold == f] = score <= threshold if k in SEAM_KINDS else score > threshold
    for h, w in SIZES:
        rate = {(s, k): float(wrong[(w, s, k)].mean()) for s in SOURCES for k in [*SEAM_KINDS, *GOOD_KINDS]}
        fa = np.mean([v for (s, k), v in rate.items() if k in SEAM_KINDS])
        fa2 = np.mean([v for (s, k), v in rate.items() if k in SEAM_KINDS and k != "shift-2"])
        fr = np.mean([v for (s, k), v in rate.items() if k in GOOD_KINDS])
        print(f"{h}x{w}, {n} scenes per renderer in {folds} folds: false accept {fa:.3f} "
              f"({fa2:.3f} without 2-px shifts), false reject {fr:.3f}")
        print("  " + " ".join(f"{k} {rate[('sample', k)]:.2f}/{rate[('raycast', k)]:.2f}"
                              for k in [*SEAM_KINDS, *GOOD_KINDS]) + "  (sample/ray-cast)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cross-validate", action="store_true", help="rates over 5 folds of scenes instead of the fit")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    if args.cross_validate:
        cross_validate(kind_rows((REPORT, *BATCHES), [*SEAM_KINDS, *GOOD_KINDS]))
        return 0
    good = np.concatenate(list(kind_rows(BATCHES, GOOD_KINDS).values()))
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
