"""The same Mask R-CNN recipe on several real/synthetic mixes, side by side, at equal compute.

Every mix gets the same optimizer steps and the same number of images: a ``steps`` budget, or
the real-only run's (one pass over the real rows the missing-mask policy keeps, per epoch).
Every mix runs once per seed (seed ``base.seed + k``), so model initialisation and augmentation
draws are paired across mixes; each run trains in ``out/<mix slug>/seed-<k>/`` (an interrupted
comparison resumes run by run) and is evaluated on the REAL validation split after every epoch.

The protocol, in every comparison (README "Fair comparisons"):

- a real-only control trained for twice the steps: is a mix's gain just more training?
- ``real_fractions``: every mix again on a share of the real train segments (whole segments, drawn
  per seed and shared by every mix of that seed), where synthetic data should matter most;
- the table gives mean ± standard deviation over seeds of box and mask AP (AP, AP50, AP75, per
  class) and the change against real-only: the mean of the per-seed paired differences with a
  95 % Student-t interval, per class too; the interval's half-width is the smallest effect the run
  could have detected, and fewer than 3 seeds draws a warning.

``results.json`` holds every run, ``learning_curves.png`` the loss and AP curves (mean over seeds
with their spread) and ``delta.png`` Δ AP with its interval per mix and real fraction.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, replace
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
DELTA_FILE = "delta.png"
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


@dataclass
class MixSpec:
    """One mix of a comparison: its label, sampling weights, and the synthetic versions it draws from."""

    label: str
    mix: str
    synthetic: list[str]
    control: str | None = None  # "2x steps" for the longer-training real-only control


def mix_specs(mixes: list[str | MixSpec], synthetic: list[str]) -> list[MixSpec]:
    """Specs for the given mixes (strings draw from ``synthetic``); real-only first, added if missing."""
    specs = [m if isinstance(m, MixSpec) else MixSpec(format_mix(parse_mix(m)), format_mix(parse_mix(m)),
                                                      list(synthetic)) for m in mixes]
    if not specs:
        raise ValueError("give at least one mix, e.g. real=1")
    if not any(_is_real_only(parse_mix(s.mix)) for s in specs):
        specs.insert(0, MixSpec("real=1", "real=1", []))
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"mixes repeat: {', '.join(labels)}")
    return specs


def _run_one(cfg: TrainConfig) -> dict[str, Any]:
    """Train one run and collect what the comparison keeps of it."""
    import torch
    from accelerate import PartialState

    if cfg.cpu or not torch.cuda.is_available():
        torch.set_num_threads(1)  # one run per core (--jobs) beats two threads fighting over one
    result = train_maskrcnn(cfg)
    eval_path = Path(cfg.out) / EVAL_FILE
    records = read_metrics(cfg.out)
    run_path = Path(cfg.out) / "run.json"
    return {
        "seed": cfg.seed, "out": cfg.out, "steps": result.steps,
        "synthetic_filter": json.loads(run_path.read_text()).get("synthetic_filter") if run_path.exists() else None,
        "images": result.steps * cfg.batch_size * PartialState().num_processes,
        "metrics": json.loads(eval_path.read_text()) if eval_path.exists() else None,
        "curves": {
            "eval": [{"epoch": r["epoch"], "step": r["step"], "box_AP": r["box_AP"], "mask_AP": r["mask_AP"]}
                     for r in records if r["type"] == "eval"],
            "loss": [{"step": r["step"], "loss": r["loss"]} for r in records if r["type"] == "train"],
        },
    }


def _run_all(configs: list[TrainConfig], jobs: int) -> list[dict[str, Any]]:
    """Every run, ``jobs`` at a time in separate processes (1: in this process), in the given order."""
    if jobs <= 1 or len(configs) <= 1:
        return [_run_one(c) for c in configs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_run_one, configs))


def _plan(base: TrainConfig, specs: list[MixSpec], out: Path, seeds: int, fractions: list[float],
          per_epoch: int, total: int, control_2x: bool) -> list[tuple[dict[str, Any], list[TrainConfig]]]:
    """(row head, its per-seed configs) for every real fraction and mix, plus the 2x real-only control."""
    plan = []
    for fraction in fractions:
        group = out / f"real-{fraction:g}" if fractions != [1.0] else out
        todo = list(specs) + ([MixSpec("real=1 2x steps", "real=1", [], control="2x steps")] if control_2x else [])
        for spec in todo:
            steps = 2 * total if spec.control else total
            slug = mix_slug(parse_mix(spec.mix)) + ("_2x-steps" if spec.control else "")
            if spec.label != spec.mix and not spec.control:
                slug = re.sub(r"[^A-Za-z0-9_.-]", "-", spec.label.split(":")[0].strip())
            weighs_syn = parse_mix(spec.mix)["synthetic"] > 0
            cfgs = [replace(base, mix=spec.mix, out=str(group / slug / f"seed-{k}"), eval_each_epoch=True,
                            seed=base.seed + k, steps_per_epoch=per_epoch, epochs=math.ceil(steps / per_epoch),
                            max_steps=steps, real_fraction=fraction,
                            synthetic=list(spec.synthetic) if weighs_syn else [])
                    for k in range(seeds)]
            plan.append(({"mix": spec.label, "weights": spec.mix, "control": spec.control,
                          "real_fraction": fraction}, cfgs))
    return plan


def parse_fractions(text: str | None) -> list[float]:
    """``"0.1,1.0"`` -> ``[0.1, 1.0]`` (default ``[1.0]``); ValueError naming the flag otherwise."""
    try:
        values = [float(p) for p in (text or "1.0").split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"--real-fraction takes numbers in (0, 1] separated by commas, got {text!r}") from None
    if not values or any(not 0 < v <= 1 for v in values) or len(set(values)) != len(values):
        raise ValueError(f"--real-fraction takes distinct numbers in (0, 1], got {text!r}")
    return values


def control_specs(real: str | Path, controls: list[str], store: str | Path, seed: int = 0) -> list[MixSpec]:
    """One real=1,synthetic=1 mix per control (training/control.py), its version written under ``store``."""
    from .control import write_control

    return [MixSpec(f"{kind}: real=1,synthetic=1", "real=1,synthetic=1",
                    [str(write_control(real, Path(store) / kind, kind, seed))]) for kind in controls]


def compare_mixes(base: TrainConfig, mixes: list[str | MixSpec], out: str | Path, seeds: int = DEFAULT_SEEDS,
                  steps: int | None = None, real_fractions: list[float] | None = None, control_2x: bool = True,
                  jobs: int = 1) -> list[dict[str, Any]]:
    """Train ``base`` on every mix, ``seeds`` times each, at equal compute; one summary row per mix and
    real fraction, plus a real-only control trained for twice the steps (``control_2x``).

    Row keys: mix (label), weights, control, real_fraction, steps, images, seeds (per run: seed, out,
    steps, metrics, curves), summary (kind -> measure -> mean/std/n), delta (kind -> measure -> paired
    mean and 95 % interval against real-only at the same fraction), delta_vs_2x (against the 2x
    control), and the headline means box_AP, mask_AP, their std and delta_box_AP, delta_mask_AP.
    """
    from accelerate import PartialState

    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    fractions = parse_fractions(",".join(str(f) for f in real_fractions) if real_fractions else None)
    specs = mix_specs(mixes, base.synthetic)
    out = Path(out)
    per_epoch, total = step_budget(base, steps, PartialState().num_processes)
    plan = _plan(base, specs, out, seeds, fractions, per_epoch, total, control_2x)
    results = _run_all([c for _, cfgs in plan for c in cfgs], jobs)
    rows = []
    for head, cfgs in plan:
        runs, results = results[:len(cfgs)], results[len(cfgs):]
        rows.append({**head, "steps": runs[0]["steps"], "images": runs[0]["images"], "seeds": runs})
    _add_deltas(rows)
    atomic_write_text(out / RESULTS_FILE, json.dumps({
        "config": asdict(base), "seeds": seeds, "steps": total, "steps_per_epoch": per_epoch,
        "real_fractions": fractions, "warnings": comparison_warnings(seeds), "runs": rows}, indent=2) + "\n")
    plot_learning_curves(rows, out / CURVES_FILE)
    plot_deltas(rows, out / DELTA_FILE)
    return rows


def _add_deltas(rows: list[dict[str, Any]]) -> None:
    """Summaries and paired differences against real-only and the 2x control of the same fraction."""
    for r in rows:
        same = [x for x in rows if x["real_fraction"] == r["real_fraction"]]
        base = next((x for x in same if not x["control"] and _is_real_only(parse_mix(x["weights"]))), None)
        longer = next((x for x in same if x["control"]), None)
        r["summary"], r["delta"] = _summarise(r["seeds"], None if base is None else base["seeds"])
        r["delta_vs_2x"] = None if longer is None or r is longer or r is base else \
            _summarise(r["seeds"], longer["seeds"])[1]
        for kind in ("box", "mask"):
            ms = r["summary"][kind]["AP"]
            r[f"{kind}_AP"] = None if ms is None else ms["mean"]
            r[f"{kind}_AP_std"] = None if ms is None else ms["std"]
            d = None if r["delta"] is None else r["delta"][kind]["AP"]
            r[f"delta_{kind}_AP"] = None if d is None else d["mean"]


def comparison_warnings(seeds: int) -> list[str]:
    """What the reader must know about the intervals of a run with this many seeds."""
    if seeds >= 3:
        return []
    return [f"only {seeds} seed(s): a paired 95 % interval over {seeds} seed(s) "
            + ("does not exist" if seeds < 2 else f"has t = {t_quantile(seeds - 1):.1f} and can hardly exclude 0")
            + "; use --seeds 3 or more for an interval that means something"]


def half_width(d: dict[str, Any] | None) -> float | None:
    """The half-width of a paired interval: the smallest effect the run could have told from 0."""
    return None if d is None or d["low"] is None else (d["high"] - d["low"]) / 2


def _pm(ms: dict[str, Any] | None) -> str:
    return "-" if ms is None else f"{100 * ms['mean']:.1f}±{100 * ms['std']:.1f}"


def _delta(d: dict[str, Any] | None) -> str:
    if d is None:
        return "-"
    if d["low"] is None:
        return f"{100 * d['mean']:+.1f}"
    return f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f},{100 * d['high']:+.1f}]"


def _name(r: dict[str, Any], fractions: int) -> str:
    return r["mix"] + (f" @real {r['real_fraction']:g}" if fractions > 1 else "")


def format_comparison(rows: list[dict[str, Any]]) -> str:
    """AP x100 per mix (and real fraction) as mean±std over seeds, Δ against real-only and against the
    2x-steps control with 95 % intervals, the smallest detectable effect, per-class Δ, and warnings."""
    fractions = len({r["real_fraction"] for r in rows})
    width = max([len("mix")] + [len(_name(r, fractions)) for r in rows])
    n = max(len(r["seeds"]) for r in rows) if rows else 0
    lines = [f"AP x100 on the REAL validation split, mean±std over {n} seed(s); Δ = paired mean difference "
             "from real-only at the same real fraction [95% interval]; vs 2x = the same against real-only "
             "trained for twice the steps",
             f"{'mix':<{width}}  {'box AP':>10}  {'mask AP':>10}  {'Δ box':>20}  {'Δ mask':>20}  "
             f"{'Δ mask vs 2x':>20}  {'steps':>6}  {'images':>7}"]
    for r in rows:
        d, d2 = r.get("delta") or {}, r.get("delta_vs_2x") or {}
        box, mask = r["summary"]["box"]["AP"], r["summary"]["mask"]["AP"]
        lines.append(f"{_name(r, fractions):<{width}}  {_pm(box):>10}  {_pm(mask):>10}  "
                     f"{_delta((d.get('box') or {}).get('AP')):>20}  {_delta((d.get('mask') or {}).get('AP')):>20}  "
                     f"{_delta((d2.get('mask') or {}).get('AP')):>20}  {r['steps']:>6}  {r['images']:>7}")
    widths = [half_width(((r.get("delta") or {}).get("mask") or {}).get("AP")) for r in rows]
    widths = [w for w in widths if w is not None]
    if widths:
        lines.append(f"smallest detectable effect (half-width of the Δ mask AP interval): "
                     f"{100 * min(widths):.1f} to {100 * max(widths):.1f} AP points")
    lines += ["", "per-class Δ AP x100 against real-only [95% interval]"]
    for r in (r for r in rows if r.get("delta") is not None):
        for kind in ("box", "mask"):
            d = r["delta"][kind]
            lines.append(f"{_name(r, fractions):<{width}}  {kind:4}  " + "  ".join(
                f"{c}: {_delta(d.get(c))}" for c in schema.CLASS_NAMES if d.get(c) is not None))
    keys = list(MEASURES) + list(schema.CLASS_NAMES)
    lines += ["", f"{'mix':<{width}}  {'':4}  " + "  ".join(f"{k[:10]:>10}" for k in keys)]
    for r in rows:
        for kind in ("box", "mask"):
            lines.append(f"{_name(r, fractions):<{width}}  {kind:4}  "
                         + "  ".join(f"{_pm(r['summary'][kind][k]):>10}" for k in keys))
    lines += [f"WARNING: {w}" for w in comparison_warnings(n)]
    return "\n".join(lines)


#: Say it where the table is shown: on tiny random models the numbers carry no information.
TINY_MODELS_NOTE = ("Tiny RANDOM models trained for a few steps: these AP numbers mean nothing about synthetic "
                    "data; they only show the comparison runs end to end.")


def comparison_table(rows: list[dict[str, Any]]) -> list[list[str]]:
    """Header + one row per mix and real fraction for a report: box and mask AP as mean±std over seeds
    (x100), the paired Δ against real-only and against the 2x-steps control with 95 % intervals, the
    smallest detectable effect, steps, images and seeds."""
    header = ["mix", "real fraction", "box AP", "mask AP", "Δ box AP [95%]", "Δ mask AP [95%]",
              "Δ mask AP vs 2x steps", "smallest detectable Δ mask", "steps", "images", "seeds"]
    body = []
    for r in rows:
        d, d2 = r.get("delta") or {}, r.get("delta_vs_2x") or {}
        hw = half_width((d.get("mask") or {}).get("AP"))
        body.append([r["mix"], f"{r['real_fraction']:g}", _pm(r["summary"]["box"]["AP"]),
                     _pm(r["summary"]["mask"]["AP"]), _delta((d.get("box") or {}).get("AP")),
                     _delta((d.get("mask") or {}).get("AP")), _delta((d2.get("mask") or {}).get("AP")),
                     "-" if hw is None else f"±{100 * hw:.1f}", str(r["steps"]), str(r["images"]),
                     str(len(r["seeds"]))])
    return [header, *body]


def plot_deltas(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Δ box and mask AP against real-only with 95 % error bars, one point per mix, grouped by real
    fraction (matplotlib Agg); a mix without an interval (one seed) is drawn without a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r.get("delta") and not (_is_real_only(parse_mix(r["weights"])) and not r["control"])]
    fractions = sorted({r["real_fraction"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, kind in zip(axes, ("box", "mask")):
        labels = sorted({r["mix"] for r in shown}, key=[r["mix"] for r in shown].index)
        for j, fraction in enumerate(fractions):
            xs, ys, lo, hi = [], [], [], []
            for r in (r for r in shown if r["real_fraction"] == fraction):
                d = r["delta"][kind]["AP"]
                if d is None:
                    continue
                xs.append(labels.index(r["mix"]) + 0.15 * (j - (len(fractions) - 1) / 2))
                ys.append(100 * d["mean"])
                lo.append(0.0 if d["low"] is None else 100 * (d["mean"] - d["low"]))
                hi.append(0.0 if d["high"] is None else 100 * (d["high"] - d["mean"]))
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=4, label=f"real fraction {fraction:g}")
        ax.axhline(0.0, color="grey", linewidth=1)
        ax.set_xticks(range(len(labels)), labels, rotation=15, fontsize=8)
        ax.set(title=f"Δ {kind} AP vs real-only (95 % interval)", ylabel="Δ AP x100")
        ax.legend(fontsize=8)
    return _save_figure(fig, path)


def _save_figure(fig, path: str | Path) -> Path:
    """Lay out, save at 100 dpi (creating the folder) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
    return _save_figure(fig, path)


def parse_sweep(text: str) -> tuple[str, list[float]]:
    """``"min-instance-score=0.3,0.5,0.7"`` -> ``("min_instance_score", [0.3, 0.5, 0.7])``; ValueError
    naming the known filters (training/data.py FILTERS) otherwise."""
    from .data import FILTERS

    name, sep, values = (text or "").partition("=")
    name = name.strip().replace("-", "_")
    if not sep or name not in FILTERS:
        raise ValueError(f"--sweep takes FILTER=V1,V2,... with FILTER one of "
                         f"{', '.join(f.replace('_', '-') for f in FILTERS)}; got {text!r}")
    try:
        thresholds = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--sweep {text!r}: thresholds must be numbers") from None
    if not thresholds or len(set(thresholds)) != len(thresholds) or not all(math.isfinite(v) for v in thresholds):
        raise ValueError(f"--sweep {text!r}: give distinct finite thresholds")
    return name, thresholds


def sweep_filters(base: TrainConfig, sweep: str, out: str | Path, mix: str = "real=1,synthetic=1",
                  seeds: int = DEFAULT_SEEDS, steps: int | None = None, jobs: int = 1) -> list[dict[str, Any]]:
    """One ``mix`` per threshold of a load-time filter (``sweep``, see :func:`parse_sweep`), plus the
    unfiltered mix and real-only, at equal steps and images, ``seeds`` times each (paired by seed).

    Rows are :func:`compare_mixes`'s (format_comparison, plot_deltas and comparison_table read them),
    labelled ``<filter>=<threshold>: <mix>``, each with ``filter`` and, per seed, what the filter
    dropped (``synthetic_filter``). Writes ``results.json`` (with ``sweep``) and ``delta.png`` to ``out``.
    """
    from accelerate import PartialState

    name, thresholds = parse_sweep(sweep)
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    if parse_mix(mix)["synthetic"] <= 0:
        raise ValueError(f"--sweep filters synthetic rows: the mix {mix!r} must weigh synthetic data")
    if not base.synthetic:
        raise ValueError("--sweep needs --synthetic versions to filter")
    mix = format_mix(parse_mix(mix))
    flag = name.replace("_", "-")
    unfiltered = replace(base, **{name: None})
    specs = [MixSpec("real=1", "real=1", []), MixSpec(f"unfiltered: {mix}", mix, list(base.synthetic))]
    specs += [MixSpec(f"{flag}={v:g}: {mix}", mix, list(base.synthetic)) for v in thresholds]
    out = Path(out)
    per_epoch, total = step_budget(base, steps, PartialState().num_processes)
    plan = _plan(unfiltered, specs, out, seeds, [1.0], per_epoch, total, control_2x=False)
    values = [None, None] + thresholds
    plan = [({**head, "filter": None if v is None else f"{flag}={v:g}"},
             [replace(c, **{name: v}) for c in cfgs]) for (head, cfgs), v in zip(plan, values)]
    results = _run_all([c for _, cfgs in plan for c in cfgs], jobs)
    rows = []
    for head, cfgs in plan:
        runs, results = results[:len(cfgs)], results[len(cfgs):]
        rows.append({**head, "steps": runs[0]["steps"], "images": runs[0]["images"], "seeds": runs})
    _add_deltas(rows)
    atomic_write_text(out / RESULTS_FILE, json.dumps({
        "config": asdict(base), "sweep": {"filter": name, "thresholds": thresholds, "mix": mix}, "seeds": seeds,
        "steps": total, "steps_per_epoch": per_epoch, "real_fractions": [1.0],
        "warnings": comparison_warnings(seeds), "runs": rows}, indent=2) + "\n")
    plot_deltas(rows, out / DELTA_FILE)
    return rows


def format_sweep_drops(rows: list[dict[str, Any]]) -> str:
    """Per swept mix, what its filter left out of the synthetic rows (first seed's run; every seed reads the same)."""
    lines = []
    for r in rows:
        rec = (r["seeds"][0].get("synthetic_filter") or {}) if r["seeds"] else {}
        if r.get("filter") and rec.get("rows"):
            lines.append(f"{r['mix']}: dropped {rec['rows_dropped']} of {rec['rows']} rows, "
                         f"{rec['instances_dropped_score'] + rec['instances_dropped_sam_iou']} of "
                         f"{rec['instances']} instances ({rec['instances_kept']} kept)")
    return "\n".join(lines)
