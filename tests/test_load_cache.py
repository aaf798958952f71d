"""Plain ``datasets.load_dataset`` on a shared cache returns each local repo's own rows.

datasets keys the cache of a local folder by its name and its card's YAML; these tests make repos
that share a name (two folders, one folder rebuilt in place, ``v0.1.0`` of two stores) with the real
producers and check that every load returns exactly the rows on disk, streaming too.
"""

from __future__ import annotations

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from factories_generate import make_real_repo

from streetsynth.builders.waymo import build_real
from streetsynth.generators.generate import GenerateConfig, run_generation
from streetsynth.repo import shard_files, split_front_matter
from streetsynth.builders.sample import make_sample
from streetsynth.models.tiny_inpaint import build_tiny_inpaint_pipeline

VIEW = (96, 144)


def on_disk(repo, config, split) -> list[tuple[str, bytes]]:
    """(id, image bytes) of every row, read from the shard files with pyarrow alone."""
    table = pa.concat_tables(pq.read_table(f, columns=["id", "image"]) for f in shard_files(repo, config, split))
    return [(r["id"], r["image"]["bytes"]) for r in table.to_pylist()]


def loaded(ds) -> list[tuple[str, bytes]]:
    ds = ds.cast_column("image", datasets.Image(decode=False))
    return [(r["id"], r["image"]["bytes"]) for r in ds]


def test_same_named_repos_in_two_folders_and_a_rebuild_in_place(tmp_path, monkeypatch):
    for seed in (0, 1):
        make_sample(tmp_path / f"sample{seed}", segments=2, frames=2, seed=seed, view_size=VIEW)
    build_real(tmp_path / "sample0", tmp_path / "a" / "real", size=(64, 160))
    build_real(tmp_path / "sample1", tmp_path / "b" / "real", size=(64, 160))
    for where in ("a", "b"):
        monkeypatch.chdir(tmp_path / where)
        real = datasets.load_dataset("real", "stitched", split="train")   # the README's example, as written
        assert loaded(real) == on_disk(tmp_path / where / "real", "stitched", "train")
    assert on_disk(tmp_path / "a" / "real", "stitched", "train") != on_disk(tmp_path / "b" / "real", "stitched", "train")

    build_real(tmp_path / "sample0", tmp_path / "a" / "real", size=(48, 128))
    monkeypatch.chdir(tmp_path / "a")
    real = datasets.load_dataset("real", "stitched", split="train")
    assert loaded(real) == on_disk(tmp_path / "a" / "real", "stitched", "train")
    assert {(r["width"], r["height"]) for r in real} == {(128, 48)}
    streamed = datasets.load_dataset("real", "stitched", split="train", streaming=True)
    assert [r["id"] for r in streamed] == real["id"]


def test_two_versions_of_two_stores(tmp_path, monkeypatch):
    pipe = build_tiny_inpaint_pipeline(seed=0)
    pipe._streetsynth_model = ("streetsynth/tiny-random-inpaint", "seed-0")
    contents = {}
    for where, real_seed in ((tmp_path, 0), (tmp_path / "b", 1)):
        make_real_repo(where / "real", rows=2, seed=real_seed)
        for seed in (3, 4):
            res = run_generation(GenerateConfig(real=str(where / "real"), out=str(where / "store"), num=2, steps=2,
                                                batch_size=2, rows_per_shard=2, seed=seed, seam_threshold=1e9,
                                                pipeline=pipe, progress=False))
            contents[res.folder] = on_disk(res.folder, "synthetic", "synthetic")
    assert sorted(f.name for f in contents) == ["v0.1.0", "v0.1.0", "v0.1.1", "v0.1.1"]
    assert len({tuple(c) for c in contents.values()}) == 4
    for where in (tmp_path, tmp_path / "b"):
        monkeypatch.chdir(where)
        syn = datasets.load_dataset("store/v0.1.0", "synthetic", split="synthetic")   # the README's example
        assert loaded(syn) == contents[where / "store" / "v0.1.0"]
        rows = datasets.load_dataset("store/v0.1.0", "synthetic", split="synthetic", streaming=True)
        assert [r["id"] for r in rows] == [i for i, _ in contents[where / "store" / "v0.1.0"]]
        assert loaded(datasets.load_dataset("store/v0.1.1", "synthetic", split="synthetic")) == \
            contents[where / "store" / "v0.1.1"]


def test_card_yaml_lists_files_and_dataset_info_like_push_to_hub(tmp_path):
    make_sample(tmp_path / "sample", segments=2, frames=3, seed=0, view_size=VIEW)
    build_real(tmp_path / "sample", tmp_path / "real", size=(64, 160))
    meta, _ = split_front_matter((tmp_path / "real" / "README.md").read_text())
    (entry,) = meta["configs"]
    files = {d["split"]: d["path"] for d in entry["data_files"]}
    assert files == {s: [f.relative_to(tmp_path / "real").as_posix() for f in shard_files(tmp_path / "real", "stitched", s)]
                     for s in ("train", "validation")}
    (info,) = meta["dataset_info"]
    assert info["config_name"] == "stitched"
    splits = {s["name"]: s["num_examples"] for s in info["splits"]}
    assert splits == {s: sum(pq.ParquetFile(f).metadata.num_rows for f in shard_files(tmp_path / "real", "stitched", s))
                      for s in ("train", "validation")}
    assert info["download_size"] == sum(f.stat().st_size for f in (tmp_path / "real" / "data").rglob("*.parquet"))
    assert info["dataset_size"] == sum(s["num_bytes"] for s in info["splits"]) > 0
    assert {f["name"] for f in info["features"]} >= {"id", "image", "objects", "instance_mask", "stitch"}
