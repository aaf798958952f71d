"""Load-time score filters on a version with planted scores: exactly the expected rows and instances train."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest

from factories_scores import write_planted
from factories_train import make_real_repo
from streetsynth import repo, schema
from streetsynth.instances import Instances
from streetsynth.training.data import DetectionSources, ScoreFilter, filter_synthetic, format_filter
from streetsynth.training.maskrcnn import TrainConfig, _load_sources, train_maskrcnn


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return write_planted(tmp_path_factory.mktemp("store"))


def _trained_on(rows) -> list[tuple[str, list[float]]]:
    """(row id, detector scores of the instances in its training target) for every row training reads."""
    sources = DetectionSources({"synthetic": rows}, "none")
    out = []
    for k in range(sources.sizes()["synthetic"]):
        row = rows[int(sources.rows["synthetic"][k])]
        _, target = sources[("synthetic", k, 0)]
        inst = Instances.from_row(row)
        assert target["boxes"].tolist() == inst.boxes.tolist()  # the target holds exactly the kept objects
        out.append((row["id"], [round(float(s), 4) for s in inst.scores]))
    return out


@pytest.mark.parametrize("flt, want", [
    (ScoreFilter(), [("planted-0", [0.2, 0.6, 0.9]), ("planted-1", [0.2, 0.6, 0.9]),
                     ("planted-2", [0.2, 0.6, 0.9]), ("planted-3", [0.2, 0.6, 0.9])]),
    (ScoreFilter(max_seam_score=0.3), [("planted-0", [0.2, 0.6, 0.9]), ("planted-2", [0.2, 0.6, 0.9])]),
    (ScoreFilter(min_instance_score=0.5, min_sam_iou=0.5),
     [("planted-0", [0.9]), ("planted-1", [0.9]), ("planted-2", [0.6, 0.9]), ("planted-3", [0.9])]),
    (ScoreFilter(max_seam_score=0.3, min_instance_score=0.5, min_sam_iou=0.5),
     [("planted-0", [0.9]), ("planted-2", [0.6, 0.9])]),
])
def test_filter_keeps_exactly_the_expected_rows_and_instances(planted, flt, want):
    rows = repo.load_split(planted, schema.SYNTHETIC, schema.SYNTHETIC_SPLIT)
    kept, record = filter_synthetic(rows, flt)
    assert _trained_on(kept) == want
    assert record["filter"] == flt.describe()
    if flt.active():
        assert record["rows"] == 4 and record["rows_dropped"] == 4 - len(want)
        assert record["instances_kept"] == sum(len(s) for _, s in want)


def test_filter_counts_say_what_was_dropped_and_what_had_no_score(planted):
    rows = repo.load_split(planted, schema.SYNTHETIC, schema.SYNTHETIC_SPLIT)
    _, rec = filter_synthetic(rows, ScoreFilter(min_instance_score=0.5, min_sam_iou=0.5))
    assert rec == {"filter": "min_instance_score=0.5,min_sam_iou=0.5", "rows": 4, "rows_dropped": 0,
                   "rows_unscored": 0, "instances": 12, "instances_dropped_score": 4, "instances_dropped_sam_iou": 3,
                   "instances_unscored_sam": 1, "instances_kept": 5}
    assert "dropped 0 of 4 rows" in format_filter(rec) and "5 of 12 instances kept" in format_filter(rec)


def test_training_reads_the_filtered_rows_and_records_the_drops(planted, tmp_path):
    real = make_real_repo(tmp_path / "real", n_train=2, n_val=1)
    cfg = TrainConfig(real=str(real), synthetic=[str(planted)], mix="synthetic=1", out=str(tmp_path / "out"),
                      max_seam_score=0.3, min_instance_score=0.5, min_sam_iou=0.5, max_steps=1, steps_per_epoch=1,
                      eval_each_epoch=False, arch="tiny", min_size=192, max_size=384, batch_size=2, warmup_steps=1,
                      anchors="default", norm_images=0, progress=False)
    sources, record = _load_sources(cfg)
    assert _trained_on(sources["synthetic"]) == [("planted-0", [0.9]), ("planted-2", [0.6, 0.9])]
    train_maskrcnn(cfg)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["synthetic_filter"] == record and record["rows_dropped"] == 2 and record["instances_kept"] == 3
    assert run["config"]["min_sam_iou"] == 0.5


def test_a_version_written_before_the_scores_loads_and_is_never_filtered(planted, tmp_path):
    """The planted version with the score columns dropped (the schema of older versions) still loads, trains
    and filters: rows without a score are kept and counted as unscored."""
    old = repo.Path(tmp_path / "old")
    import shutil

    shutil.copytree(planted, old)
    old_objects = {k: v for k, v in schema.object_feature().items() if k not in schema.INSTANCE_SCORES}
    feats = schema.synthetic_features()
    feats["objects"] = datasets.List(old_objects)
    gen = dict(feats["generation"])
    gen.pop("seam_score")
    feats["generation"] = gen
    for shard in repo.shard_files(old, schema.SYNTHETIC, schema.SYNTHETIC_SPLIT):
        rows = pq.read_table(shard).to_pylist()
        for r in rows:
            r["objects"] = [{k: o[k] for k in old_objects} for o in r["objects"]]
            r["generation"].pop("seam_score")
        datasets.Dataset.from_list(rows, features=datasets.Features(feats)).to_parquet(str(shard))
    repo.write_readme(old)  # the card's dataset_info, from the (now old) Parquet schema
    rows = repo.load_split(old, schema.SYNTHETIC, schema.SYNTHETIC_SPLIT)
    assert "sam_iou" not in rows.features["objects"].feature and "seam_score" not in rows.features["generation"]
    kept, rec = filter_synthetic(rows, ScoreFilter(max_seam_score=0.3, min_sam_iou=0.5))
    assert [r for r, _ in _trained_on(kept)] == [f"planted-{i}" for i in range(4)]
    assert rec["rows_unscored"] == 4 and rec["instances_unscored_sam"] == 12 and rec["instances_kept"] == 12
    inst = Instances.from_row(rows[0])
    assert np.isnan(inst.extra["sam_iou"]).all()


def test_filter_refuses_a_non_finite_threshold():
    with pytest.raises(ValueError, match="--min-sam-iou"):
        ScoreFilter(min_sam_iou=float("nan"))
