"""The same Mask R-CNN recipe on several real/synthetic mixes, side by side.

Each mix trains in ``out/<mix slug>/`` (so an interrupted comparison resumes run by run), is
evaluated on the REAL validation split after every epoch, and lands in one table: box AP, mask
AP and their change against the real-only mix. ``results.json`` holds the rows and
``learning_curves.png`` the loss and AP curves of every mix.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from streetsynth.repo import INFO_PATH, atomic_write_text
from streetsynth.versions import list_versions

from .data import format_mix, parse_mix
from .maskrcnn import EVAL_FILE, TrainConfig, read_metrics, train_maskrcnn

RESULTS_FILE = "results.json"
CURVES_FILE = "learning_curves.png"


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


def _is_real_only(mix: dict[str, float]) -> bool:
    return mix["real"] > 0 and all(v == 0 for k, v in mix.items() if k != "real")


def _ap(metrics: dict[str, Any] | None, kind: str, key: str = "AP") -> float | None:
    part = (metrics or {}).get(kind)
    return None if part is None else part.get(key)


def compare_mixes(base: TrainConfig, mixes: list[str], out: str | Path) -> list[dict[str, Any]]:
    """Train ``base`` once per mix under ``out`` and return one row per mix (see module notes).

    Rows: mix, out, box_AP, box_AP50, mask_AP, mask_AP50, delta_box_AP, delta_mask_AP (None
    without a real-only mix), steps, curves (per-epoch eval and per-step loss).
    """
    parsed = [parse_mix(m) for m in mixes]
    if not parsed:
        raise ValueError("give at least one mix, e.g. real=1")
    slugs = [mix_slug(m) for m in parsed]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"mixes repeat: {', '.join(format_mix(m) for m in parsed)}")
    out = Path(out)
    rows = []
    for mix, slug in zip(parsed, slugs):
        cfg = replace(base, mix=format_mix(mix), out=str(out / slug), eval_each_epoch=True,
                      synthetic=list(base.synthetic) if mix["synthetic"] > 0 else [])
        result = train_maskrcnn(cfg)
        eval_path = Path(cfg.out) / EVAL_FILE
        metrics = json.loads(eval_path.read_text()) if eval_path.exists() else None
        records = read_metrics(cfg.out)
        rows.append({
            "mix": format_mix(mix),
            "out": cfg.out,
            "steps": result.steps,
            "box_AP": _ap(metrics, "box"), "box_AP50": _ap(metrics, "box", "AP50"),
            "mask_AP": _ap(metrics, "mask"), "mask_AP50": _ap(metrics, "mask", "AP50"),
            "metrics": metrics,
            "curves": {
                "eval": [{"epoch": r["epoch"], "step": r["step"], "box_AP": r["box_AP"], "mask_AP": r["mask_AP"]}
                         for r in records if r["type"] == "eval"],
                "loss": [{"step": r["step"], "loss": r["loss"]} for r in records if r["type"] == "train"],
            },
        })
    base_row = next((r for r, m in zip(rows, parsed) if _is_real_only(m)), None)
    for r in rows:
        for kind in ("box_AP", "mask_AP"):
            ref = None if base_row is None else base_row[kind]
            r[f"delta_{kind}"] = None if ref is None or r[kind] is None else r[kind] - ref
    atomic_write_text(out / RESULTS_FILE, json.dumps({"config": asdict(base), "runs": rows}, indent=2) + "\n")
    plot_learning_curves(rows, out / CURVES_FILE)
    return rows


def format_comparison(rows: list[dict[str, Any]]) -> str:
    """One line per mix: box AP, mask AP (x100) and their change against real-only."""
    def f(v: float | None, signed: bool = False) -> str:
        if v is None:
            return "-"
        return f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}"

    width = max([len("mix")] + [len(r["mix"]) for r in rows])
    lines = [f"{'mix':<{width}}  {'box AP':>7}  {'mask AP':>7}  {'Δ box':>7}  {'Δ mask':>7}  {'steps':>6}"]
    for r in rows:
        lines.append(f"{r['mix']:<{width}}  {f(r['box_AP']):>7}  {f(r['mask_AP']):>7}  "
                     f"{f(r['delta_box_AP'], True):>7}  {f(r['delta_mask_AP'], True):>7}  {r['steps']:>6}")
    return "\n".join(lines)


def plot_learning_curves(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Training loss by step and validation AP by epoch, one line per mix (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_ap) = plt.subplots(1, 2, figsize=(11, 4))
    for r in rows:
        loss = r["curves"]["loss"]
        (line,) = ax_loss.plot([p["step"] for p in loss], [p["loss"] for p in loss], label=r["mix"])
        ev = [p for p in r["curves"]["eval"] if p["mask_AP"] is not None or p["box_AP"] is not None]
        epochs = [p["epoch"] for p in ev]
        ax_ap.plot(epochs, [p["mask_AP"] if p["mask_AP"] is not None else float("nan") for p in ev],
                   marker="o", color=line.get_color(), label=f"{r['mix']} mask")
        ax_ap.plot(epochs, [p["box_AP"] if p["box_AP"] is not None else float("nan") for p in ev],
                   marker="x", linestyle="--", color=line.get_color(), label=f"{r['mix']} box")
    ax_loss.set(xlabel="step", ylabel="training loss", title="loss")
    ax_ap.set(xlabel="epoch", ylabel="AP (real validation)", title="AP")
    ax_loss.legend(fontsize=8)
    ax_ap.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
