"""Cards of repos made by the real producers (sample maker, builder, generate, label) state their data."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import factories_producers as producers
from factories_generate import make_real_repo

from streetsynth import repo, schema
from streetsynth.cards.render import render_card
from streetsynth.generators.generate import GenerateConfig, run_generation


def table(folder, config, split, columns):
    return pa.concat_tables(pq.read_table(f, columns=columns) for f in repo.shard_files(folder, config, split))


def class_counts(folder, config, split) -> list[str]:
    cats = pc.struct_field(pc.list_flatten(table(folder, config, split, ["objects"])["objects"]), "category")
    return [str(cats.to_pylist().count(c)) for c in range(len(schema.CLASS_NAMES))]


def class_row(card, config, split) -> list[str]:
    m = re.search(rf"^\| {config} \| {split} \| `objects` \|(.*)$", card, flags=re.M)
    return [c.strip() for c in m.group(1).strip().strip("|").split("|")]


def size_row(card, config, split) -> list[str]:
    m = re.search(rf"^\| {config} \| {split} \| (\d+) \| (\d+) \| (\d+) \|$", card, flags=re.M)
    return list(m.groups())


def test_real_card_from_the_builder(tmp_path):
    real = make_real_repo(tmp_path / "real", rows=3)
    card = render_card(real, samples=False)
    for split in ("train", "validation"):
        files = repo.shard_files(real, "stitched", split)
        assert size_row(card, "stitched", split) == [
            str(sum(pq.ParquetFile(f).metadata.num_rows for f in files)), str(len(files)),
            str(sum(f.stat().st_size for f in files))]
        assert class_row(card, "stitched", split)[:4] == class_counts(real, "stitched", split)
    assert "Frames skipped while building: 0." in card


def test_synthetic_card_from_run_generation(tmp_path):
    make_real_repo(tmp_path / "real", rows=4)
    base = dict(real=str(tmp_path / "real"), num=4, steps=2, batch_size=2, rows_per_shard=2, seed=3, max_attempts=2,
                pipeline=producers.tiny_pipeline(), progress=False)
    first = run_generation(GenerateConfig(out=str(tmp_path / "probe"), seam_threshold=1e9, **base))
    scores = sorted(table(first.folder, "synthetic", "synthetic", ["generation"])["generation"]
                    .combine_chunks().field("seam_score").to_pylist())
    # first attempts repeat the probe's: the two above the median are rejected at least once
    res = run_generation(GenerateConfig(out=str(tmp_path / "store"), seam_threshold=(scores[1] + scores[2]) / 2, **base))
    c = res.counts
    assert c["rejected_attempts"] >= 2 and c["accepted"] == len(table(res.folder, "synthetic", "synthetic", ["id"]))
    card = render_card(res.folder, samples=False)
    assert (f"Acceptance: {c['accepted']} accepted rows from {c['attempts']} attempts; {c['rejected_attempts']} "
            f"attempts rejected by the seam gate, {c['failed_samples']} samples with every attempt rejected; "
            f"acceptance rate {c['acceptance_rate']:.3f}.") in card
    assert "| labeler | `carried-from-source:known-region-clipped` |" in card
    assert class_row(card, "synthetic", "synthetic")[:4] == class_counts(res.folder, "synthetic", "synthetic")



def test_labelled_card_from_label_repo(produced_labelled):
    labelled = produced_labelled
    card = render_card(labelled, samples=False)
    assert "## Labels" in card and "| keep_overlap | `0.0` |" in card and "| score_threshold | `0.1` |" in card
    assert "| prompt_boxes | `detector` |" in card and "| detector | `maskrcnn:tiny(seed=0)` |" in card
    assert class_row(card, "synthetic", "synthetic")[:4] == class_counts(labelled, "synthetic", "synthetic")
