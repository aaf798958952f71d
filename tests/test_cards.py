"""Dataset cards: true numbers from the data, valid YAML, loadable repos, deterministic text."""

from __future__ import annotations

import re

import datasets
import numpy as np
import pytest
from PIL import Image

from factories_cards import class_counts, make_real_repo, make_synthetic_repo, rows
from factories_producers import session_dir
from streetsynth import repo as repo_layout
from streetsynth import schema
from streetsynth.cards.render import SAMPLES_PATH, WAYMO_TERMS_URL, render_card, write_card
from streetsynth.cards.stats import split_stats
from streetsynth.cli import main


def class_row(card: str, config: str, split: str) -> list[str]:
    """The cells of the class-count table row for config/split."""
    m = re.search(rf"^\| {config} \| {split} \| `objects` \|(.*)$", card, flags=re.M)
    assert m, f"no class row for {config}/{split}"
    return [c.strip() for c in m.group(1).strip().strip("|").split("|")]


def counts_from_datasets(repo, config: str, split: str) -> tuple[dict[str, int], list[int]]:
    """Class counts and per-image instance counts as datasets reads them (an independent path)."""
    ds = datasets.load_dataset(str(repo), config, split=split)
    counts = dict.fromkeys(schema.CLASS_NAMES, 0)
    per_image = []
    for objects in ds["objects"]:
        per_image.append(len(objects))
        for o in objects:
            counts[schema.CLASS_NAMES[o["category"]]] += 1
    return counts, per_image


def test_real_card_states_the_true_numbers(tmp_path):
    repo = make_real_repo(tmp_path / "real", n_train=5, n_val=3)
    card = render_card(repo)
    meta, body = repo_layout.split_front_matter(card)

    assert meta["license"] == "other" and meta["license_link"] == WAYMO_TERMS_URL
    assert meta["task_categories"] == ["image-segmentation", "object-detection"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["configs"] == repo_layout.configs_yaml(repo_layout.data_configs(repo), default="stitched")
    assert "non-commercial" in body and WAYMO_TERMS_URL in body

    for split, n in (("train", 5), ("validation", 3)):
        assert f"| stitched | {split} | {n} | {len(repo_layout.shard_files(repo, 'stitched', split))} |" in body
        truth, per_image = counts_from_datasets(repo, "stitched", split)
        assert truth == class_counts(repo, "stitched", split) and sum(truth.values()) > 0
        cells = class_row(body, "stitched", split)
        assert [int(c) for c in cells[:4]] == [truth[c] for c in schema.CLASS_NAMES]
        assert int(cells[4]) == sum(truth.values())
        mean, lo, hi = (float(v) for v in cells[5].split(" / "))
        assert mean == pytest.approx(np.mean(per_image), abs=1e-3) and (lo, hi) == (min(per_image), max(per_image))
        assert int(cells[6]) == per_image.count(0)
    assert '", revision="v' not in body and "64x128: 8" in body  # build_real writes no version; 8 rows of 64x128


def test_synthetic_card_shows_provenance_and_samples(tmp_path):
    repo = make_synthetic_repo(tmp_path / "v0.1.0")
    card = render_card(repo, repo_id="me/streets")
    meta, body = repo_layout.split_front_matter(card)

    assert meta["configs"][0]["config_name"] == "synthetic" and "synthetic" in meta["tags"]
    info = repo_layout.read_info(repo)
    gens = [r["generation"] for r in rows(repo, "synthetic", "synthetic")]
    scores = np.array([g["seam_score"] for g in gens])
    assert "- models (id @ revision): `streetsynth/tiny-random-inpaint` @ `seed-0`" in body
    assert "| seam_threshold | `1000000000.0` |" in body
    assert "| labeler | `carried-from-source:known-region-clipped` |" in body
    assert (f"seam score mean {round(scores.mean(), 4)} (min {round(scores.min(), 4)}, max {round(scores.max(), 4)})"
            in body) and "mean 1.0 (max 1.0)" in body  # every sample accepted at its first attempt
    assert f"| fingerprint | `{info['source']['fingerprint']}` |" in body
    assert str(session_dir()) not in card  # local source paths are reduced to a folder name
    assert 'load_dataset("me/streets", "synthetic", split="synthetic", revision="v0.1.0")' in body
    assert f"]({SAMPLES_PATH})" in body
    sheet = Image.open(repo / SAMPLES_PATH)
    assert sheet.width > 256 and sheet.height > 32


def test_write_card_keeps_repo_loadable_and_is_deterministic(tmp_path):
    repo = make_real_repo(tmp_path / "real")
    write_card(repo)
    first = (repo / "README.md").read_text()
    sheet = (repo / SAMPLES_PATH).read_bytes()
    write_card(repo)
    assert (repo / "README.md").read_text() == first
    assert (repo / SAMPLES_PATH).read_bytes() == sheet
    assert first.startswith("---\n") and "## Sizes" in first
    ds = repo_layout.load_split(repo, "stitched", "validation")
    assert len(ds) == 3 and ds[0]["id"] == rows(repo, "stitched", "validation")[0]["id"]


def test_split_without_instances_and_repo_without_data(tmp_path):
    repo = tmp_path / "empty_objects"
    built = rows(make_real_repo(tmp_path / "real", n_train=2, n_val=1), "stitched", "train")
    empty = [{**r, "objects": [], "instance_mask": None} for r in built]  # frames where nothing was labelled
    repo_layout.write_shard(repo, "stitched", "train", 0, empty, schema.stitched_features())
    repo_layout.write_info(repo, {"kind": "real", "version": "0.0.1", "fingerprint": "x"})
    stats = split_stats(repo, "stitched", "train")
    assert stats.rows == 2 and stats.class_counts["objects"] == dict.fromkeys(schema.CLASS_NAMES, 0)
    assert stats.per_image["objects"] == {"mean": 0.0, "min": 0, "max": 0, "empty": 2}
    assert class_row(render_card(repo), "stitched", "train")[:5] == ["0"] * 5

    bare = tmp_path / "bare"
    repo_layout.write_info(bare, {"kind": "real"})
    with pytest.raises(ValueError, match="no Parquet shards"):
        render_card(bare)


def test_card_command(tmp_path, capsys):
    repo = make_synthetic_repo(tmp_path / "v0.1.0")
    assert main(["card", str(repo), "--repo-id", "me/x"]) == 0
    assert 'load_dataset("me/x"' in (repo / "README.md").read_text()
    assert main(["card", str(tmp_path / "missing")]) == 2
    assert "not a streetsynth dataset repo" in capsys.readouterr().err
