"""Calibrating the seam gate on composites of known kinds, with whole kinds held out.

The cue scales are fitted on good continuations only (each cue's ``quantile`` over them), the
threshold is the one that rejects ``target_fr`` of them, so no seam kind ever shapes the gate.
:func:`leave_one_kind_out` refits without each kind in turn and reports that kind's rate: the false
accepts of a seam kind and the false rejects of a good kind are those of a gate that never saw it.
"""

from __future__ import annotations

import numpy as np

from .seam import oriented_edges
from .seam_cues import CUE_FLOORS, CUES, edge_cues
from .seam_family import edge_mask


def cue_table(images: list[np.ndarray], edge: int, gap: int = 8) -> np.ndarray:
    """(N, len(CUES)) cue values of each image's edge at column ``edge`` (invented right); zeros where unscorable."""
    rows = []
    for img in images:
        c = [edge_cues(v, e, gap) for v, e in oriented_edges(img, edge_mask(img.shape, edge))]
        rows.append([c[0][q] for q in CUES] if c and c[0] is not None else [0.0] * len(CUES))
    return np.array(rows, float).reshape(len(images), len(CUES))


def scores(cues: np.ndarray, scales) -> np.ndarray:
    """The gate's score of each cue row: the largest cue over its scale."""
    return (np.clip(cues, 0, None) / np.asarray(scales, float)).max(axis=1)


def fit(good: np.ndarray, quantile: float = 0.99, target_fr: float = 0.03) -> tuple[np.ndarray, float]:
    """(cue scales, threshold) from good continuations' cue rows: each cue's ``quantile`` (at least its
    floor, :data:`CUE_FLOORS`), and the score that ``target_fr`` of them exceed."""
    scales = np.maximum(np.quantile(np.clip(good, 0, None), quantile, axis=0), CUE_FLOORS)
    return scales, float(np.quantile(scores(good, scales), 1.0 - target_fr))


def held_out_hits(tables: dict[str, np.ndarray], seam_kinds, good_kinds, quantile: float = 0.99,
                  target_fr: float = 0.03) -> dict[str, np.ndarray]:
    """Per kind, which of its images the gate fitted without that kind gets wrong (a seam accepted,
    a good continuation rejected)."""
    out = {}
    for kind in [*seam_kinds, *good_kinds]:
        scales, t = fit(np.concatenate([tables[g] for g in good_kinds if g != kind]), quantile, target_fr)
        s = scores(tables[kind], scales)
        out[kind] = s <= t if kind in seam_kinds else s > t
    return out


def leave_one_kind_out(tables: dict[str, np.ndarray], seam_kinds, good_kinds, quantile: float = 0.99,
                       target_fr: float = 0.03) -> dict[str, float]:
    """Held-out rate per kind (false accept for seam kinds, false reject for good ones, :func:`held_out_hits`)
    and the overall ``false_accept`` / ``false_reject`` over all held-out kinds."""
    hits = held_out_hits(tables, seam_kinds, good_kinds, quantile, target_fr)
    out = {k: float(v.mean()) for k, v in hits.items()}
    out["false_accept"] = float(np.concatenate([hits[k] for k in seam_kinds]).mean())
    out["false_reject"] = float(np.concatenate([hits[k] for k in good_kinds]).mean())
    return out


def roc_table(seam_scores: np.ndarray, clean_scores: np.ndarray) -> list[tuple[float, float, float]]:
    """(threshold, false-accept rate, false-reject rate) at every distinct score.

    False accept: a seamed image scoring <= threshold. False reject: a clean one scoring above.
    """
    seam_scores, clean_scores = np.asarray(seam_scores, float), np.asarray(clean_scores, float)
    ts = np.unique(np.concatenate([seam_scores, clean_scores, [0.0]]))
    far = (seam_scores[None, :] <= ts[:, None]).mean(axis=1) if seam_scores.size else np.zeros(len(ts))
    frr = (clean_scores[None, :] > ts[:, None]).mean(axis=1) if clean_scores.size else np.zeros(len(ts))
    return [(float(t), float(a), float(r)) for t, a, r in zip(ts, far, frr)]


def threshold_for_far(seam_scores: np.ndarray, clean_scores: np.ndarray, target_far: float) -> tuple[float, float, float]:
    """The largest threshold whose false-accept rate is <= ``target_far``: (threshold, far, frr)."""
    if not len(seam_scores):
        raise ValueError("calibration needs at least one seamed image")
    table = [row for row in roc_table(seam_scores, clean_scores) if row[1] <= target_far]
    if not table:
        raise ValueError(f"no threshold reaches a false-accept rate of {target_far}")
    return max(table, key=lambda r: r[0])


def family_tables(scenes: list[np.ndarray], edge: int, others: list[np.ndarray] | None = None,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Cue rows of every kind of composite (:mod:`.seam_family`) of ``scenes`` at ``edge``."""
    from .seam_family import ALL_KINDS, composites

    return {k: cue_table(v, edge) for k, v in composites(scenes, edge, ALL_KINDS, seed, others).items()}


def calibrate_scenes(scenes: list[np.ndarray], edge: int, others: list[np.ndarray] | None = None,
                     quantile: float = 0.99, target_fr: float = 0.03) -> dict:
    """Held-out rates per kind (:func:`leave_one_kind_out`), the scales and threshold fitted on every
    good kind, and each kind's scores under them (``scores``), for ``scenes`` composited at ``edge``."""
    from .seam_family import GOOD_KINDS, SEAM_KINDS

    tables = family_tables(scenes, edge, others)
    scales, threshold = fit(np.concatenate([tables[g] for g in GOOD_KINDS]), quantile, target_fr)
    return {"held_out": leave_one_kind_out(tables, SEAM_KINDS, GOOD_KINDS, quantile, target_fr),
            "scales": scales, "threshold": threshold, "scores": {k: scores(t, scales) for k, t in tables.items()}}
