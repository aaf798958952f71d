"""A version cut short is not a dataset until the same run finishes it, for the labeler as for the generators."""

from __future__ import annotations

import datasets
import pytest

import factories_producers as producers
from streetsynth import repo


class Killed(Exception):
    pass


def test_a_label_run_cut_short_is_not_a_dataset_until_it_is_finished(tmp_path, monkeypatch):
    from streetsynth.generators import relabel
    from streetsynth.generators.label import build_labeler

    real = producers.real()
    lab = build_labeler("tiny", "tiny")
    how = {"shard_size": 1, "prompt_boxes": "ground-truth", "progress": False}
    real_row, calls = relabel.box_prompted_row, []

    def dies_on_the_second_row(row, labeler):
        calls.append(row["id"])
        if len(calls) == 2:
            raise Killed
        return real_row(row, labeler)

    monkeypatch.setattr(relabel, "box_prompted_row", dies_on_the_second_row)
    with pytest.raises(Killed):
        relabel.label_repo(real, tmp_path / "store", lab, **how)
    folder = tmp_path / "store" / "v0.1.0"
    assert len(repo.shard_files(folder, "stitched", "train")) == 1 and not (folder / repo.INFO_PATH).exists()
    for kw in ({"split": "train"}, {"split": "validation"}, {"name": "stitched", "split": "train"}):
        with pytest.raises(datasets.exceptions.DataFilesNotFoundError):  # not 1 of 3 rows, not the manifest
            datasets.load_dataset(str(folder), **kw)

    monkeypatch.setattr(relabel, "box_prompted_row", real_row)
    relabel.label_repo(real, tmp_path / "store", lab, **how)
    for split in ("train", "validation"):
        assert len(datasets.load_dataset(str(folder), "stitched", split=split)) == 3


def test_a_run_killed_right_after_its_first_file_leaves_no_loadable_folder(tmp_path, monkeypatch):
    """The README that names no data goes in before the manifest: a folder holding only a manifest would load
    it as a one-row dataset."""
    from streetsynth.generators import method_run

    real_writer = method_run.ShardWriter

    def killed_after_the_manifest(*args, **kwargs):
        real_writer(*args, **kwargs)  # writes meta/manifest.json
        raise Killed

    monkeypatch.setattr(method_run, "ShardWriter", killed_after_the_manifest)
    with pytest.raises(Killed):
        method_run.open_run("probe", tmp_path / "store", "fp-probe", None, rows_per_shard=1)
    folder = tmp_path / "store" / "v0.1.0"
    assert (folder / repo.MANIFEST_PATH).exists()
    with pytest.raises(datasets.exceptions.DataFilesNotFoundError):
        datasets.load_dataset(str(folder), split="train")
