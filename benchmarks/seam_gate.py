"""The seam gate on kinds of fill it was never calibrated on: held-out rates per kind, and ms per score.

Scenes come from two independent renderers: the sample maker (``render_panorama``) and the
ray-caster of ``tests/render_scene.py`` seen by random realistic cameras (``tests/seam_scenes.py``).
Every scene gets every kind of fill of ``streetsynth.generators.seam_family`` composited as the
generator does (edge at 2/3 of the width). The gate is refitted with each kind left out
(``leave_one_kind_out``) and that kind's rate is printed, per source and together; then the shipped
gate as it is (scales and threshold fitted on scenes 100-199, which ``--scenes`` below 100 never
reaches) on the same images: new scenes as well as unseen kinds. ``--compare``
scores the same images with the methods the gate replaced (``seam_methods.py``) at their own
thresholds. The plausibility score is printed for the mirrored / repeated fills beside the good
ones. Timings run on one core (OMP_NUM_THREADS=1, OpenCV threads 1). ``--out`` saves pictures of
the seam kinds the shipped gate passes most often, of why 2-px shifts are reported apart, and of the
8-level steps and 4-px shifts it passes on the ray-caster's scenes beside their true continuations.

    .venv/bin/python benchmarks/seam_gate.py --scenes 30 --sizes 256x512,512x1024 --compare profile,column-sum --out seam-bench
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from seam_methods import SCORES, THRESHOLDS  # noqa: E402
from seam_scenes import SOURCES, sample_pairs  # noqa: E402

from streetsynth.config import parse_size  # noqa: E402
from streetsynth.generators.seam import CUE_SCALES, DEFAULT_THRESHOLD, SeamGate  # noqa: E402
from streetsynth.generators.seam_calibration import cue_table, held_out_hits, scores  # noqa: E402
from streetsynth.generators.seam_cues import crossing_blocks  # noqa: E402
from streetsynth.generators.seam_family import (ALL_KINDS, GOOD_KINDS, IMPLAUSIBLE_KINDS, SEAM_KINDS,  # noqa: E402
                                                composites, edge_mask)
from streetsynth.generators.seam_plausibility import plausibility_score  # noqa: E402

def _family(n: int, h: int, w: int, edge: int) -> dict[str, dict[str, list[np.ndarray]]]:
    """Per source, every kind's composites of ``n`` scenes."""
    out = {}
    for name, make in SOURCES.items():
        pairs = make(range(n), h, w)
        out[name] = composites([p[0] for p in pairs], edge, ALL_KINDS, others=[p[1] for p in pairs])
    return out


def _tables(family: dict, edge: int) -> dict[str, np.ndarray]:
    """Per kind, the cue rows of both sources' images (in order): computed once, read by every rate below."""
    return {k: np.concatenate([cue_table(family[s][k], edge) for s in SOURCES]) for k in ALL_KINDS}


def _print_rates(hits: dict[str, np.ndarray], n: int) -> None:
    print(f"  {'kind':<14} {'rate':>6} {'sample':>7} {'raycast':>8}   (seam kinds: false accept; good: false reject)")
    for kind, v in hits.items():
        print(f"  {kind:<14} {v.mean():6.3f} {v[:n].mean():7.3f} {v[n:].mean():8.3f}")
    fa = np.concatenate([hits[k] for k in SEAM_KINDS])
    fr = np.concatenate([hits[k] for k in GOOD_KINDS])
    worst = max(SEAM_KINDS, key=lambda k: hits[k].mean())
    print(f"  held out: false accept {fa.mean():.3f}, false reject {fr.mean():.3f}; "
          f"worst seam kind {worst} {hits[worst].mean():.3f}")


def _shipped(tables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per kind, which images the shipped default gate (its scales and threshold) gets wrong (a seam
    accepted, a good one rejected)."""
    out = {}
    for kind in [*SEAM_KINDS, *GOOD_KINDS]:
        accepted = scores(tables[kind], CUE_SCALES) <= DEFAULT_THRESHOLD
        out[kind] = accepted if kind in SEAM_KINDS else ~accepted
    return out


def _compare(family: dict, edge: int, methods: list[str]) -> None:
    mask = None
    for method in methods:
        score = SCORES[method]
        rates = {}
        for kind in [*SEAM_KINDS, *GOOD_KINDS]:
            imgs = [i for s in SOURCES for i in family[s][kind]]
            mask = edge_mask(imgs[0].shape, edge) if mask is None else mask
            v = np.array([score(i, mask) for i in imgs])
            rates[kind] = np.mean(v <= THRESHOLDS[method]) if kind in SEAM_KINDS else np.mean(v > THRESHOLDS[method])
        fa = np.mean([rates[k] for k in SEAM_KINDS])
        fr = np.mean([rates[k] for k in GOOD_KINDS])
        print(f"  {method:<10} (threshold {THRESHOLDS[method]}): false accept {fa:.3f}, false reject {fr:.3f} | "
              + " ".join(f"{k} {v:.2f}" for k, v in rates.items()))


def _plausibility(family: dict, edge: int) -> None:
    mask = edge_mask(family["sample"]["true"][0].shape, edge)
    for kind in [*IMPLAUSIBLE_KINDS, *GOOD_KINDS]:
        v = np.array([plausibility_score(i, mask) for s in SOURCES for i in family[s][kind]])
        print(f"  plausibility {kind:<10} median {np.median(v):.2f}, share below 0.3: {np.mean(v < 0.3):.3f}")


def _picture(family: dict, hits: dict[str, np.ndarray], edge: int, path: Path) -> None:
    """Crops around the edge of accepted seams of the three kinds accepted most, one row per kind."""
    rows = []
    for kind in sorted(SEAM_KINDS, key=lambda k: -hits[k].mean())[:3]:
        imgs = [i for s in SOURCES for i in family[s][kind]]
        picks = [imgs[j] for j in np.flatnonzero(hits[kind])[:4]]
        crops = [_crop(i, edge) for i in picks] or [np.zeros_like(_crop(imgs[0], edge))]
        row = np.concatenate(crops + [np.zeros_like(crops[0])] * (4 - len(crops)), axis=1)
        cv2.putText(row, f"{kind}: accepted", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
        rows.append(row)
    _save(rows, path)


def _save(rows: list[np.ndarray], path: Path) -> None:
    """Write the RGB ``rows`` stacked top to bottom as one PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    print(f"  picture: {path}")


def _crop(img: np.ndarray, edge: int) -> np.ndarray:
    """The whole height of ``img``, a sixth of its width either side of the edge."""
    w = img.shape[1] // 6
    return img[:, edge - w:edge + w]


def _beside_truth_picture(family: dict, tables: dict[str, np.ndarray], hits: dict[str, np.ndarray], edge: int,
                          path: Path, source: str = "raycast", kinds: tuple[str, ...] = ("step-8", "shift-4")) -> None:
    """Seams of ``kinds`` that the shipped gate passes on ``source``'s scenes, each beside the same scene's
    true continuation (the edge ticked in red, the shipped score from ``tables`` in the corner): what the gate
    misses is a step or a shift that the scene's own texture matches at the edge."""
    n, at = len(family[source]["true"]), list(SOURCES).index(source)
    blank = np.zeros_like(_crop(family[source]["true"][0], edge))
    sep = np.zeros((blank.shape[0], 4, 3), np.uint8)
    rows = []
    for kind in kinds:
        tiles = []
        for j in np.flatnonzero(hits[kind][at * n:(at + 1) * n])[:3]:
            for name in ("true", kind):
                tile = _crop(family[source][name][j], edge).copy()
                tile[:6, tile.shape[1] // 2] = (255, 0, 0)
                score = scores(tables[name][at * n + j][None], CUE_SCALES)[0]
                cv2.putText(tile, f"{name} {score:.2f}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                            (255, 255, 0), 1)
                tiles += [tile, sep]
        tiles += [blank, sep, blank, sep] * (3 - len(tiles) // 4)
        rows.append(np.concatenate(tiles[:-1], axis=1))
    _save(rows, path)


def _enlarged(img: np.ndarray, y: int, edge: int, label: str) -> np.ndarray:
    """48 rows x 64 columns of ``img`` around (``y``, ``edge``), 4x enlarged, the edge ticked in red."""
    y = int(np.clip(y, 24, img.shape[0] - 24))
    big = cv2.resize(img[y - 24:y + 24, edge - 32:edge + 32], None, fx=4, fy=4, interpolation=cv2.INTER_NEAREST)
    big[:6, 127:129] = big[-6:, 127:129] = (255, 0, 0)
    cv2.putText(big, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
    return big


def _apart_picture(family: dict, edge: int, path: Path) -> None:
    """Why 2-px shifts are reported apart. Rows 1-2, per source: one scene's true, recompressed, smoothed
    and 2-px-shifted composites around the strongest horizontal structure that crosses the edge. Row 3:
    the good continuation whose structure lands furthest off its line (``crossing_blocks``) but by no
    more than a 2-px shift does (3 rows), beside the same scene shifted by 2 px."""
    rows = []
    sep = np.zeros((192, 4, 3), np.uint8)
    for s in SOURCES:
        true = family[s]["true"]
        grad = [np.abs(np.diff(cv2.cvtColor(i, cv2.COLOR_RGB2GRAY)[:, edge - 8:edge].astype(np.float32), axis=0))
                .mean(axis=1)[24:-24] for i in true]
        j = int(np.argmax([g.max() for g in grad]))
        y = int(np.argmax(grad[j])) + 24
        tiles = [_enlarged(family[s][kind][j], y, edge, kind) for kind in ("true", "jpeg-75", "smooth-1", "shift-2")]
        rows.append(np.concatenate([t for tile in tiles for t in (tile, sep)][:-1], axis=1))
    worst = (-np.inf, None)
    for s in SOURCES:
        for kind in GOOD_KINDS:
            for j, img in enumerate(family[s][kind]):
                starts, p, off, ok = crossing_blocks(img, edge)
                like = np.where(ok & (off <= 3.0), off, -np.inf)  # displaced by as much as a 2-px shift
                b = np.unravel_index(np.argmax(like), like.shape) if like.size else None
                if b is not None and like[b] > worst[0]:
                    worst = (float(like[b]), (s, kind, j, int(starts[b[0]] + p // 2)))
    if worst[1] is not None:
        s, kind, j, y = worst[1]
        tiles = [_enlarged(family[s][kind][j], y, edge, f"{kind}: {worst[0]:.1f} rows off"),
                 _enlarged(family[s]["shift-2"][j], y, edge, "same scene, shift-2")]
        row = np.concatenate([tiles[0], sep, tiles[1]], axis=1)
        rows.append(np.concatenate([row, np.zeros((192, rows[0].shape[1] - row.shape[1], 3), np.uint8)], axis=1))
    _save(rows, path)


def _timing(size: str) -> None:
    h, w = parse_size(size)
    img = sample_pairs([7], h, w)[0][0]
    mask = edge_mask(img.shape, round(w * 2 / 3))
    gate = SeamGate()
    fns = {"seam gate": lambda: gate.score(img, mask), "plausibility": lambda: plausibility_score(img, mask)}
    fns |= {f"{m} (old)": (lambda f=f: f(img, mask)) for m, f in SCORES.items()}
    times = {}
    for name, fn in fns.items():
        fn()
        best = []
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(20):
                fn()
            best.append((time.perf_counter() - t) / 20)
        times[name] = min(best)
    print(f"\nms per score at {h}x{w}, one core (best of 3 x 20): "
          + ", ".join(f"{k} {v * 1e3:.2f}" for k, v in times.items()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=40, help="scenes per source")
    p.add_argument("--sizes", default="256x512,512x1024", help="comma-separated HxW")
    p.add_argument("--compare", default="", help="comma-separated replaced methods (profile, column-sum, row-band) "
                   "to score the same images with, at their own thresholds")
    p.add_argument("--out", default=None, help="folder for the picture of the seams passed most")
    p.add_argument("--time-size", default="512x1024", help="size at which one score is timed")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    for size in args.sizes.split(","):
        h, w = parse_size(size)
        edge = round(w * 2 / 3)
        family = _family(args.scenes, h, w, edge)
        print(f"\n{h}x{w}, edge at x={edge}, {args.scenes} scenes per source x {len(ALL_KINDS)} kinds")
        tables, n = _tables(family, edge), len(family["sample"]["true"])
        _print_rates(held_out_hits(tables, SEAM_KINDS, GOOD_KINDS), n)
        print(f"  the shipped gate (threshold {DEFAULT_THRESHOLD}, fitted on scenes 100-199) on these scenes:")
        shipped = _shipped(tables)
        _print_rates(shipped, n)
        _plausibility(family, edge)
        if args.compare:
            _compare(family, edge, args.compare.split(","))
        if args.out:
            _picture(family, shipped, edge, Path(args.out) / f"accepted_{h}x{w}.png")
            _apart_picture(family, edge, Path(args.out) / f"shift2_apart_{h}x{w}.png")
            _beside_truth_picture(family, tables, shipped, edge, Path(args.out) / f"missed_raycast_{h}x{w}.png")
    _timing(args.time_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
