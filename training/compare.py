"""The same Mask R-CNN recipe on several real/synthetic mixes, side by side, at equal compute.

Every mix gets the same optimizer steps and the same number of images: a ``steps`` budget, or
the real-only run's (one pass over the real rows the missing-mask policy keeps, per epoch).
Every mix runs once per seed (seed ``base.seed + k``), so model initialisation and augmentation
draws are paired across mixes; each run trains in ``out/<mix slug>/seed-<k>/`` (an interrupted
comparison resumes run by run) and is evaluated on the REAL validation split after every epoch.

The table gives mean ± standard deviation over seeds of box and mask AP (AP, AP50, AP75, per
class) and the change against real-only: the mean of the per-seed paired differences with a 95 %
Student-t interval. ``results.json`` holds every run and ``learning_curves.png`` the loss and AP
curves (mean over seeds with their spread).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from streetsynth import schema
from streetsynth.repo import INFO_PATH, atomic_write_text, load_split
from streetsynth.versions import list_versions

from .data import DetectionSources, format_mix, parse_mix
from .maskrcnn import EVAL_FILE, TrainConfig, read_metrics, train_maskrcnn

RESULTS_FILE = "results.json"
CURVES_FILE = "learning_curves.png"
DEFAULT_SEEDS = 3
MEASURES = ("AP", "AP50", "AP75")
#: Two-sided 95 % quantiles of Student's t by degrees of freedom (larger df use the next lower entry).
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def resolve_synthetic(path: str | Path) -> Path:
    """A synthetic version folder; a store folder (``STORE/vX.Y.Z/...``) resolves to its newest version."""
    path = Path(path)
    if (path / INFO_PATH).exists():
        return path
    versions = list_versions(path)
    if not versions:
        raise FileNotFoundError(f"{path}: neither a dataset version folder ({INFO_PATH}) nor a store of versions")
    return Path(versions[-1]["path"])


def mix_slug(mix: dict[str, float]) -> str:
    """A folder name for a mix: ``real-1_synthetic-0.5``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", format_mix(mix).replace(",", "_").replace("=", "-"))


def t_quantile(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom (conservative between table rows)."""
    return T_975[max(k for k in T_975 if k <= df)]


def mean_std(values: list[float | None]) -> dict[str, Any] | None:
    """Mean, sample standard deviation (0 for one value) and count of the values that are not None."""
    v = np.array([x for x in values if x is not None], np.float64)
    if not v.size:
        return None
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def paired_difference(values: list[float | None], reference: list[float | None]) -> dict[str, Any] | None:
    """Mean of the per-seed differences with a 95 % t interval (None bounds with fewer than 2 pairs)."""
    d = np.array([a - b for a, b in zip(values, reference) if a is not None and b is not None], np.float64)
    if not d.size:
        return None
    mean = float(d.mean())
    if d.size < 2:
        return {"mean": mean, "low": None, "high": None, "n": 1}
    half = t_quantile(d.size - 1) * float(d.std(ddof=1)) / math.sqrt(d.size)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": int(d.size)}


def _values(metrics: dict[str, Any] | None, kind: str) -> dict[str, float | None]:
    """A run's measures of one kind (box/mask) as a flat dict: AP, AP50, AP75, class names."""
    part = (metrics or {}).get(kind) or {}
    out = {m: part.get(m) for m in MEASURES}
    out.update({n: (part.get("per_class") or {}).get(n) for n in schema.CLASS_NAMES})
    return out


def _summarise(runs: list[dict[str, Any]], reference: list[dict[str, Any]] | None) -> tuple[dict, dict | None]:
    summary, delta = {}, ({} if reference is not None else None)
    for kind in ("box", "mask"):
        per_seed = [_values(r["metrics"], kind) for r in runs]
        ref = None if reference is None else [_values(r["metrics"], kind) for r in reference]
        summary[kind] = {k: mean_std([v[k] for v in per_seed]) for k in per_seed[0]}
        if delta is not None:
            delta[kind] = {k: paired_difference([v[k] for v in per_seed], [v[k] for v in ref]) for k in per_seed[0]}
    return summary, delta


def step_budget(base: TrainConfig, steps: int | None, num_processes: int = 1) -> tuple[int, int]:
    """``(steps_per_epoch, total_steps)`` every mix gets: ``steps`` if given, else the real-only run's."""
    if steps is not None:
        if steps < 1:
            raise ValueError(f"--steps must be >= 1, got {steps}")
        return base.steps_per_epoch or math.ceil(steps / max(base.epochs, 1)), steps
    per_epoch = base.steps_per_epoch
    if per_epoch is None:
        rows = load_split(base.real, schema.STITCHED, "train")
        kept = DetectionSources({"real": rows}, "none", base.missing_masks).sizes()["real"]
        per_epoch = max(1, math.ceil(kept / (base.batch_size * num_processes)))
    total = per_epoch * base.epochs
    return per_epoch, total if base.max_steps is None else min(total, base.max_steps)


def _is_real_only(mix: dict[str, float]) -> bool:
    return mix["real"] > 0 and all(v == 0 for k, v in mix.items() if k != "real")


def compare_mixes(base: TrainConfig, mixes: list[str], out: str | Path, seeds: int = DEFAULT_SEEDS,
                  steps: int | None = None) -> list[dict[str, Any]]:
    """Train ``base`` on every mix, ``seeds`` times each, at equal compute; one summary row per mix.

    Row keys: mix, steps, images (per run, equal across mixes), seeds (per run: seed, out, steps,
    metrics, curves), summary (kind -> measure -> mean/std/n), delta (kind -> measure -> paired
    mean and 95 % interval against real-only, None without a real-only mix), and the headline
    means box_AP, mask_AP with box_AP_std, mask_AP_std, delta_box_AP, delta_mask_AP.
    """
    from accelerate import PartialState

    parsed = [parse_mix(m) for m in mixes]
    if not parsed:
        raise ValueError("give at least one mix, e.g. real=1")
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    slugs = [mix_slug(m) for m in parsed]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"mixes repeat: {', '.join(format_mix(m) for m in parsed)}")
    out = Path(out)
    procs = PartialState().num_processes
    per_epoch, total = step_budget(base, steps, procs)
    rows = []
    for mix, slug in zip(parsed, slugs):
        runs = []
        for k in range(seeds):
            cfg = replace(base, mix=format_mix(mix), out=str(out / slug / f"seed-{k}"), eval_each_epoch=True,
                          seed=base.seed + k, steps_per_epoch=per_epoch, epochs=math.ceil(total / per_epoch),
                          max_steps=total, synthetic=list(base.synthetic) if mix["synthetic"] > 0 else [])
            result = train_maskrcnn(cfg)
            eval_path = Path(cfg.out) / EVAL_FILE
            records = read_metrics(cfg.out)
            runs.append({
                "seed": cfg.seed, "out": cfg.out, "steps": result.steps,
                "images": result.steps * cfg.batch_size * procs,
                "metrics": json.loads(eval_path.read_text()) if eval_path.exists() else None,
                "curves": {
                    "eval": [{"epoch": r["epoch"], "step": r["step"], "box_AP": r["box_AP"], "mask_AP": r["mask_AP"]}
                             for r in records if r["type"] == "eval"],
                    "loss": [{"step": r["step"], "loss": r["loss"]} for r in records if r["type"] == "train"],
                },
            })
        rows.append({"mix": format_mix(mix), "steps": runs[0]["steps"], "images": runs[0]["images"], "seeds": runs})
    base_row = next((r for r, m in zip(rows, parsed) if _is_real_only(m)), None)
    for r in rows:
        r["summary"], r["delta"] = _summarise(r["seeds"], None if base_row is None else base_row["seeds"])
        for kind in ("box", "mask"):
            ms = r["summary"][kind]["AP"]
            r[f"{kind}_AP"] = None if ms is None else ms["mean"]
            r[f"{kind}_AP_std"] = None if ms is None else ms["std"]
            d = None if r["delta"] is None else r["delta"][kind]["AP"]
            r[f"delta_{kind}_AP"] = None if d is None else d["mean"]
    atomic_write_text(out / RESULTS_FILE, json.dumps({"config": asdict(base), "seeds": seeds, "steps": total,
                                                      "steps_per_epoch": per_epoch, "runs": rows}, indent=2) + "\n")
    plot_learning_curves(rows, out / CURVES_FILE)
    return rows


def _pm(ms: dict[str, Any] | None) -> str:
    return "-" if ms is None else f"{100 * ms['mean']:.1f}±{100 * ms['std']:.1f}"


def _delta(d: dict[str, Any] | None) -> str:
    if d is None:
        return "-"
    if d["low"] is None:
        return f"{100 * d['mean']:+.1f}"
    return f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f},{100 * d['high']:+.1f}]"


def format_comparison(rows: list[dict[str, Any]]) -> str:
    """AP x100 per mix as mean±std over seeds, Δ against real-only with its 95 % interval, then a
    detailed table (AP, AP50, AP75, per class) per mix and measure."""
    width = max([len("mix")] + [len(r["mix"]) for r in rows])
    n = max(len(r["seeds"]) for r in rows) if rows else 0
    lines = [f"AP x100 on the REAL validation split, mean±std over {n} seed(s); Δ = paired mean difference "
             "from real-only [95% interval]",
             f"{'mix':<{width}}  {'box AP':>10}  {'mask AP':>10}  {'Δ box':>20}  {'Δ mask':>20}  {'steps':>6}  "
             f"{'images':>7}"]
    for r in rows:
        d = r.get("delta") or {}
        box, mask = r["summary"]["box"]["AP"], r["summary"]["mask"]["AP"]
        lines.append(f"{r['mix']:<{width}}  {_pm(box):>10}  {_pm(mask):>10}  "
                     f"{_delta((d.get('box') or {}).get('AP')):>20}  {_delta((d.get('mask') or {}).get('AP')):>20}  "
                     f"{r['steps']:>6}  {r['images']:>7}")
    keys = list(MEASURES) + list(schema.CLASS_NAMES)
    lines += ["", f"{'mix':<{width}}  {'':4}  " + "  ".join(f"{k[:10]:>10}" for k in keys)]
    for r in rows:
        for kind in ("box", "mask"):
            lines.append(f"{r['mix']:<{width}}  {kind:4}  "
                         + "  ".join(f"{_pm(r['summary'][kind][k]):>10}" for k in keys))
    return "\n".join(lines)


#: Say it where the table is shown: on tiny random models the numbers carry no information.
TINY_MODELS_NOTE = ("Tiny RANDOM models trained for a few steps: these AP numbers mean nothing about synthetic "
                    "data; they only show the comparison runs end to end.")


def comparison_table(rows: list[dict[str, Any]]) -> list[list[str]]:
    """Header + one row per mix for a report: box and mask AP as mean±std over seeds (x100), the
    paired Δ against real-only with its 95 % interval, steps, images and seeds."""
    header = ["mix", "box AP", "mask AP", "Δ box AP [95%]", "Δ mask AP [95%]", "steps", "images", "seeds"]
    body = []
    for r in rows:
        d = r.get("delta") or {}
        body.append([r["mix"], _pm(r["summary"]["box"]["AP"]), _pm(r["summary"]["mask"]["AP"]),
                     _delta((d.get("box") or {}).get("AP")), _delta((d.get("mask") or {}).get("AP")),
                     str(r["steps"]), str(r["images"]), str(len(r["seeds"]))])
    return [header, *body]


def _spread(series: list[list[tuple[float, float]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, mean and std over runs of (x, y) series, on the x values every run has."""
    common = sorted(set.intersection(*(set(x for x, _ in s) for s in series))) if series else []
    ys = np.array([[dict(s)[x] for x in common] for s in series], np.float64).reshape(len(series), len(common))
    std = ys.std(axis=0, ddof=1) if len(series) > 1 else np.zeros(len(common))
    return np.array(common, np.float64), ys.mean(axis=0) if len(common) else np.zeros(0), std


def plot_learning_curves(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Training loss by step and validation AP by epoch, one line per mix: the mean over seeds with a
    ±1 std band (loss) or error bars (AP) (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_ap) = plt.subplots(1, 2, figsize=(11, 4))
    for r in rows:
        runs = r["seeds"]
        x, mean, std = _spread([[(p["step"], p["loss"]) for p in run["curves"]["loss"]] for run in runs])
        (line,) = ax_loss.plot(x, mean, label=f"{r['mix']} (n={len(runs)})")
        ax_loss.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        for kind, marker, style in (("mask_AP", "o", "-"), ("box_AP", "x", "--")):
            x, mean, std = _spread([[(p["epoch"], p[kind]) for p in run["curves"]["eval"] if p[kind] is not None]
                                    for run in runs])
            ax_ap.errorbar(x, mean, yerr=std, marker=marker, linestyle=style, capsize=3, color=line.get_color(),
                           label=f"{r['mix']} {kind.split('_')[0]}")
    ax_loss.set(xlabel="step", ylabel="training loss", title="loss")
    ax_ap.set(xlabel="epoch", ylabel="AP (real validation)", title="AP (mean ± std over seeds)")
    ax_loss.legend(fontsize=8)
    ax_ap.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
