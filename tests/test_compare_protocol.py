"""The protocol of every comparison: a 2x-steps real-only control, real fractions drawn as whole
segments per seed, per-class paired intervals, the smallest detectable effect, a warning under 3 seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from factories_train import scene_row
from streetsynth import repo, schema
from streetsynth.training.compare import compare_mixes, format_comparison, half_width
from streetsynth.training.data import select_segments
from streetsynth.training.maskrcnn import TrainConfig

TINY = dict(arch="tiny", min_size=64, max_size=128, batch_size=2, warmup_steps=1, lr=0.01, progress=False,
            norm_images=2)


def _segmented_repo(path: Path) -> Path:
    """Four train segments of two frames each, and two validation rows."""
    train = [scene_row(i, seed=s) for s in range(4) for i in range(2)]
    val = [scene_row(1000 + i, seed=9) for i in range(2)]
    repo.write_shard(path, schema.STITCHED, "train", 0, train, schema.stitched_features())
    repo.write_shard(path, schema.STITCHED, "validation", 0, val, schema.stitched_features())
    repo.write_info(path, {"kind": "real", "version": "0.1.0", "fingerprint": "seg4"})
    repo.write_readme(path)
    return path


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("protocol")
    real = _segmented_repo(tmp / "real")
    base = TrainConfig(real=str(real), out="unused", **TINY)
    rows = compare_mixes(base, ["real=1"], tmp / "cmp", seeds=2, steps=2, real_fractions=[0.5, 1.0])
    return real, tmp / "cmp", rows


def test_every_fraction_gets_a_real_only_control_with_twice_the_steps(compared):
    _, out, rows = compared
    assert [(r["mix"], r["real_fraction"], r["control"], r["steps"]) for r in rows] == [
        ("real=1", 0.5, None, 2), ("real=1 2x steps", 0.5, "2x steps", 4),
        ("real=1", 1.0, None, 2), ("real=1 2x steps", 1.0, "2x steps", 4)]
    assert all(s["images"] == 2 * s["steps"] for r in rows for s in r["seeds"])
    results = json.loads((out / "results.json").read_text())
    assert results["real_fractions"] == [0.5, 1.0] and len(results["runs"]) == 4
    assert (out / "delta.png").stat().st_size > 1000


def test_the_real_fraction_is_whole_segments_drawn_per_seed(compared):
    real, _, rows = compared
    train = repo.load_split(real, schema.STITCHED, "train")
    for r in rows:
        for k, run in enumerate(r["seeds"]):
            used = json.loads((Path(run["out"]) / "run.json").read_text())["real_segments"]
            if r["real_fraction"] == 1.0:
                assert used == ["seg-0", "seg-1", "seg-2", "seg-3"]
            else:
                assert used == sorted(set(select_segments(train, 0.5, k)["segment"])) and len(used) == 2
    # the control of a seed trains on the same segments as the mix it is paired with
    half = [r for r in rows if r["real_fraction"] == 0.5]
    segs = [[json.loads((Path(s["out"]) / "run.json").read_text())["real_segments"] for s in r["seeds"]]
            for r in half]
    assert segs[0] == segs[1]


def test_per_class_intervals_recomputed_by_hand(compared):
    _, _, rows = compared
    control, base = rows[3], rows[2]
    for kind in ("box", "mask"):
        for name in [n for n, v in base["seeds"][0]["metrics"][kind]["per_class"].items() if v is not None]:
            a = [s["metrics"][kind]["per_class"][name] for s in control["seeds"]]
            b = [s["metrics"][kind]["per_class"][name] for s in base["seeds"]]
            d = np.subtract(a, b)
            half = 12.706 * d.std(ddof=1) / np.sqrt(2)  # t(0.975, 1 df)
            got = control["delta"][kind][name]
            assert got["mean"] == pytest.approx(d.mean()) and got["n"] == 2
            assert got["low"] == pytest.approx(d.mean() - half) and got["high"] == pytest.approx(d.mean() + half)
            assert half_width(got) == pytest.approx(half)


def test_the_table_says_what_it_can_detect_and_warns_under_three_seeds(compared):
    _, out, rows = compared
    text = format_comparison(rows)
    widths = [half_width(r["delta"]["mask"]["AP"]) for r in rows]
    lo, hi = min(w for w in widths if w is not None), max(w for w in widths if w is not None)
    assert f"smallest detectable effect (half-width of the Δ mask AP interval): {100 * lo:.1f} to {100 * hi:.1f}" \
        in text
    assert "WARNING: only 2 seed(s)" in text and "t = 12.7" in text
    assert "real=1 2x steps @real 0.5" in text and "vehicle: +" in text
    assert json.loads((out / "results.json").read_text())["warnings"][0].startswith("only 2 seed(s)")


def _run(ap: float, vehicle: float, pedestrian: float | None) -> dict:
    part = {"AP": ap, "AP50": ap, "AP75": ap,
            "per_class": {"vehicle": vehicle, "pedestrian": pedestrian, "cyclist": None, "sign": None}}
    return {"metrics": {"box": part, "mask": part}}


def test_per_class_intervals_of_known_values():
    from streetsynth.training.compare import _add_deltas

    def row(mix, control, runs):
        return {"mix": mix, "weights": "real=1" if "synthetic" not in mix else mix, "control": control,
                "real_fraction": 0.1, "seeds": runs}

    rows = [row("real=1", None, [_run(0.10, 0.20, 0.00), _run(0.12, 0.22, 0.02), _run(0.11, 0.18, 0.01)]),
            row("real=1,synthetic=1", None, [_run(0.15, 0.21, 0.10), _run(0.16, 0.25, 0.08), _run(0.14, 0.20, 0.09)]),
            row("real=1 2x steps", "2x steps", [_run(0.11, 0.2, 0.01), _run(0.13, 0.2, 0.01), _run(0.12, 0.2, 0.02)])]
    _add_deltas(rows)
    # pedestrian Δ of the mix: 0.10, 0.06, 0.08 -> mean 0.08, sd 0.02, half-width 4.303 * 0.02 / sqrt(3)
    d = rows[1]["delta"]["mask"]["pedestrian"]
    assert d["mean"] == pytest.approx(0.08) and d["n"] == 3
    assert half_width(d) == pytest.approx(4.303 * 0.02 / np.sqrt(3))
    # against the 2x control: 0.09, 0.07, 0.07 -> mean 0.07667, sd 0.011547
    d2 = rows[1]["delta_vs_2x"]["mask"]["pedestrian"]
    assert d2["mean"] == pytest.approx(0.23 / 3) and half_width(d2) == pytest.approx(4.303 * 0.011547 / np.sqrt(3),
                                                                                     rel=1e-4)
    assert rows[0]["delta_vs_2x"] is None and rows[2]["delta_vs_2x"] is None
    assert rows[2]["delta"]["box"]["AP"]["mean"] == pytest.approx(0.01)
    assert rows[1]["delta"]["mask"]["cyclist"] is None


def test_real_fraction_flag_is_checked():
    from streetsynth.training.compare import parse_fractions

    assert parse_fractions("0.1,1.0") == [0.1, 1.0] and parse_fractions(None) == [1.0]
    for bad in ("0", "1.5", "0.1,0.1", "a"):
        with pytest.raises(ValueError, match="--real-fraction"):
            parse_fractions(bad)
