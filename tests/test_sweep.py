"""``compare --sweep``: one mix per filter threshold at equal steps, paired intervals, drops recorded."""

from __future__ import annotations

import json

import pytest

from factories_scores import write_planted
from factories_train import make_real_repo
from streetsynth.training.compare import format_comparison, format_sweep_drops, parse_sweep, sweep_filters
from streetsynth.training.maskrcnn import TrainConfig

TINY = dict(arch="tiny", min_size=64, max_size=128, batch_size=2, warmup_steps=1, lr=0.01, progress=False,
            norm_images=2, max_eval_rows=1, anchors="default")


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    real = make_real_repo(tmp / "real", n_train=2, n_val=1)
    base = TrainConfig(real=str(real), out="unused", synthetic=[str(write_planted(tmp / "store"))], **TINY)
    rows = sweep_filters(base, "min-instance-score=0.5,0.7", tmp / "out", seeds=2, steps=1)
    return tmp / "out", rows


def test_one_mix_per_threshold_at_equal_steps_beside_unfiltered_and_real_only(swept):
    out, rows = swept
    assert [(r["mix"], r["filter"]) for r in rows] == [
        ("real=1", None), ("unfiltered: real=1,synthetic=1", None),
        ("min-instance-score=0.5: real=1,synthetic=1", "min-instance-score=0.5"),
        ("min-instance-score=0.7: real=1,synthetic=1", "min-instance-score=0.7")]
    assert {(r["steps"], r["images"]) for r in rows} == {(1, 2)}
    assert all(len(r["seeds"]) == 2 for r in rows)
    # the planted detector scores are 0.2, 0.6, 0.9 in each of 4 rows
    kept = [[s["synthetic_filter"]["instances_kept"] for s in r["seeds"]] for r in rows[2:]]
    assert kept == [[8, 8], [4, 4]]
    assert rows[1]["seeds"][0]["synthetic_filter"] == {"filter": "", "rows": 4, "rows_dropped": 0}
    for r in rows[1:]:
        d = r["delta"]["box"]["AP"]
        assert d["n"] == 2 and d["low"] <= d["mean"] <= d["high"]  # paired over the two seeds


def test_results_and_picture_are_written_and_the_table_names_each_threshold(swept):
    out, rows = swept
    results = json.loads((out / "results.json").read_text())
    assert results["sweep"] == {"filter": "min_instance_score", "thresholds": [0.5, 0.7], "mix": "real=1,synthetic=1"}
    assert [r["mix"] for r in results["runs"]] == [r["mix"] for r in rows]
    assert (out / "delta.png").stat().st_size > 0
    table = format_comparison(rows)
    assert "min-instance-score=0.7: real=1,synthetic=1" in table
    assert "min-instance-score=0.7: real=1,synthetic=1: dropped 0 of 4 rows, 8 of 12 instances (4 kept)" in \
        format_sweep_drops(rows)


@pytest.mark.parametrize("text, message", [("min-score=0.5", "one of max-seam-score"), ("min-sam-iou", "FILTER="),
                                           ("min-sam-iou=a", "numbers"), ("min-sam-iou=0.5,0.5", "distinct")])
def test_sweep_text_is_checked(text, message):
    with pytest.raises(ValueError, match=message):
        parse_sweep(text)
    assert parse_sweep("max-seam-score=0.1,0.2") == ("max_seam_score", [0.1, 0.2])
