"""The oracle and noise controls: written by the generators' writer, with known labels."""

from __future__ import annotations

import numpy as np
import pytest

from factories_train import make_real_repo
from streetsynth import repo, schema
from streetsynth.instances import Instances
from streetsynth.training.compare import control_specs
from streetsynth.training.control import derangement, parse_controls
from streetsynth.training.maskrcnn import check_synthetic_labelled


def test_derangement_moves_every_index_and_is_seeded():
    for n in (2, 3, 10):
        d = derangement(n, 5)
        assert sorted(d.tolist()) == list(range(n)) and (d != np.arange(n)).all()
        assert np.array_equal(d, derangement(n, 5))
    with pytest.raises(ValueError, match="at least 2 scenes"):
        derangement(1, 0)
    with pytest.raises(ValueError, match="unknown control"):
        parse_controls("oracle,magic")


def test_oracle_keeps_each_scene_s_labels_and_noise_gives_it_another_s(tmp_path):
    real = make_real_repo(tmp_path / "real", n_train=5, n_val=1)
    specs = control_specs(real, ["oracle", "noise"], tmp_path / "controls", seed=3)
    assert [(s.label, s.mix) for s in specs] == [("oracle: real=1,synthetic=1", "real=1,synthetic=1"),
                                                ("noise: real=1,synthetic=1", "real=1,synthetic=1")]
    train = repo.load_split(real, schema.STITCHED, "train")
    by_id = {r["id"]: r for r in train}
    oracle = repo.load_split(specs[0].synthetic[0], schema.SYNTHETIC, schema.SYNTHETIC_SPLIT)
    noise = repo.load_split(specs[1].synthetic[0], schema.SYNTHETIC, schema.SYNTHETIC_SPLIT)
    assert len(oracle) == len(noise) == 5
    order = derangement(5, 3)
    ids = list(train["id"])
    for o, n in zip(oracle, noise):
        src = by_id[o["generation"]["source_id"]]
        donor = train[int(order[ids.index(n["generation"]["source_id"])])]
        assert np.array_equal(np.asarray(o["image"]), np.asarray(src["image"]))
        truth, got = Instances.from_row(src), Instances.from_row(o)
        assert np.array_equal(truth.boxes, got.boxes) and np.array_equal(truth.masks, got.masks)
        wrong = Instances.from_row(n)
        assert np.array_equal(wrong.boxes, Instances.from_row(donor).boxes) and donor["id"] != src["id"]
        assert np.array_equal(np.asarray(n["image"]), np.asarray(by_id[n["generation"]["source_id"]]["image"]))
    for spec in specs:  # both are labelled versions training accepts
        check_synthetic_labelled(spec.synthetic[0])
        assert repo.read_info(spec.synthetic[0])["source"]["name"] == "real"


def test_the_control_s_sample_can_hold_several_validation_segments(tmp_path, capsys):
    """One validation segment makes every AP of the control a handful of images; make-sample can give more,
    the last ones, and refuses a split that would leave no training segment."""
    from streetsynth.builders.sample import make_sample, segment_name
    from streetsynth.cli import main

    assert main(["make-sample", "--out", str(tmp_path / "s"), "--segments", "4", "--validation-segments", "2",
                 "--frames", "1", "--size", "48x64", "--panoptic-every", "0"]) == 0
    capsys.readouterr()
    split_of = {p.name: p.parent.name for p in (tmp_path / "s").glob("*/*.tfrecord")}
    assert split_of == {f"segment-{segment_name(0, i)}_with_camera_labels.tfrecord": split
                        for i, split in enumerate(["training", "training", "validation", "validation"])}
    with pytest.raises(ValueError, match="validation_segments must be in"):
        make_sample(tmp_path / "t", segments=3, frames=1, view_size=(48, 64), validation_segments=3)
