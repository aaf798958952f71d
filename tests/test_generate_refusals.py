"""Bad input to the generation commands: a clear refusal (exit 2, the reason named) and nothing written;
and what a version publishes names its sources without the machine's local paths."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from factories_generate import make_real_repo

from streetsynth.cli import main
from streetsynth.repo import read_info

TINY = ["--steps", "2", "--seed", "1"]
OCCLUDE = ["--classes", "pedestrian", "vehicle", "--min-size", "4", "--size", "64", *TINY]
GROUND = ["--size", "64x128", "--sam", "none", "--min-area", "8", "--prompt", "a street with a car", *TINY]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return make_real_repo(tmp_path_factory.mktemp("src") / "real", rows=2)


def _refused(capsys, argv: list[str], message: str, store: Path) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not store.exists() or not any(store.glob("v*/meta/info.json"))


@pytest.mark.parametrize("command, extra, message", [
    ("occlude", ["--num", "0"], "--num must be >= 1, got 0"),
    ("occlude", ["--per-row", "0"], "--per-row must be >= 1, got 0"),
    ("rerender", ["--num", "0"], "--num must be >= 1, got 0"),
    ("rerender", ["--iou-threshold", "nan"], "--iou-threshold must lie in [0, 1], got nan"),
    ("ground", ["--num", "0"], "--num must be >= 1, got 0"),
    ("ground", ["--iou-threshold", "nan"], "--iou-threshold must lie in [0, 1], got nan"),
    ("generate", ["--version", "../x"], "not a semantic version X.Y.Z: '../x'"),
    ("occlude", ["--version", "../x"], "not a semantic version X.Y.Z: '../x'"),
])
def test_bad_settings_are_refused_before_the_store_exists(tmp_path, capsys, real, command, extra, message):
    store = tmp_path / "store"
    source = [] if command == "ground" else ["--real", str(real)]
    base = {"occlude": OCCLUDE, "ground": GROUND}.get(command, TINY)
    assert main([command, *source, "--out", str(store), *base, *extra]) == 2
    assert message in capsys.readouterr().err
    assert not store.exists()


@pytest.mark.parametrize("command", ["generate", "occlude", "rerender"])
@pytest.mark.parametrize("where", [".", "store"])
def test_an_output_store_inside_the_source_is_refused(capsys, real, command, where):
    out = real / where
    before = sorted(p.name for p in real.iterdir())
    assert main([command, "--real", str(real), "--out", str(out), *TINY]) == 2
    assert f"--out {out} is inside the source dataset {real}" in capsys.readouterr().err
    assert sorted(p.name for p in real.iterdir()) == before


def test_occlude_with_no_object_to_occlude_says_why(tmp_path, capsys, real):
    _refused(capsys, ["occlude", "--real", str(real), "--out", str(tmp_path / "s"), *OCCLUDE, "--min-visible", "1.5"],
             "no object to occlude (classes pedestrian, vehicle, --min-size 4, --min-visible 1.5", tmp_path / "s")


def test_rerender_with_every_row_dropped_says_why(tmp_path, capsys, real):
    _refused(capsys, ["rerender", "--real", str(real), "--out", str(tmp_path / "s"), *TINY, "--min-kept", "99"],
             "attempts (rows without instance masks, or fewer than --min-kept 99", tmp_path / "s")


def test_ground_with_every_sample_dropped_says_why(tmp_path, capsys):
    _refused(capsys, ["ground", "--out", str(tmp_path / "s"), *GROUND, "--num", "1", "--iou-threshold", "1"],
             "0 rows accepted from 1 attempts (no instance of any sample reached --iou-threshold 1.0)", tmp_path / "s")


def test_published_files_carry_no_local_path(tmp_path, capsys, real):
    """Every text file of the versions generate, occlude and rerender write, and quality's block, hold no
    absolute path of this machine; the source is named by folder name and fingerprint."""
    import json

    runs = {"generate": ["--seam-threshold", "1e9"], "occlude": OCCLUDE[:-4] + ["--size", "64"],
            "rerender": ["--iou-threshold", "0", "--min-kept", "0"]}
    for command, extra in runs.items():
        assert main([command, "--real", str(real), "--out", str(tmp_path / command), *TINY, *extra]) == 0, \
            capsys.readouterr().err
    assert main(["quality", "--real", str(real), "--synthetic", str(tmp_path / "generate" / "v0.1.0"),
                 "--tiny-features", "--size", "32"]) == 0
    texts = [p for p in tmp_path.rglob("*") if p.suffix in (".json", ".md", ".yaml", ".txt")]
    assert len(texts) >= 6
    for p in texts:
        text = p.read_text()
        assert str(tmp_path) not in text and str(real.parent) not in text, p
    for command in runs:
        info = json.loads((tmp_path / command / "v0.1.0" / "meta" / "info.json").read_text())
        assert info["source"]["name"] == "real" and info["source"]["fingerprint"] == read_info(real)["fingerprint"]


def test_an_unfinished_version_is_not_a_dataset_until_it_is_finished(tmp_path):
    """Rows flushed by a run that has not finished (killed, or still writing) do not load as a dataset, nor does
    the manifest; once finished, every row loads."""
    import datasets
    import numpy as np

    from streetsynth.generators.method_run import finish_counts, finish_run, open_run, synthetic_row
    from streetsynth.instances import Instances

    run = open_run("probe", tmp_path / "store", "fp-probe", None, rows_per_shard=1)
    image = np.zeros((16, 32, 3), np.uint8)
    for i in range(2):
        run.writer.add(f"s{i}", synthetic_row(f"s{i}", image, Instances.empty(16, 32), {}, "probe"), 1, 0)
    run.writer.flush()
    assert len(list(run.folder.glob("data/synthetic/*.parquet"))) == 2
    for kw in ({"split": "train"}, {"name": "synthetic", "split": "synthetic"}):
        with pytest.raises(datasets.exceptions.DataFilesNotFoundError):
            datasets.load_dataset(str(run.folder), **kw)
    _, counts = finish_counts(run, "none dropped")
    finish_run(run, {"counts": counts}, "probe card")
    assert datasets.load_dataset(str(run.folder), "synthetic", split="synthetic")["id"] == ["s0", "s1"]


def test_an_injected_model_without_its_id_and_revision_is_refused_in_every_method():
    from streetsynth.models.load import ModelSpec, declare, load

    for kind in ("inpaint", "occluder", "controlnet", "text2img", "sam"):
        with pytest.raises(ValueError, match=f"an injected {kind} model must declare its id and revision"):
            load(kind, ModelSpec(model=object()))
    made = load("controlnet", ModelSpec(model=declare(SimpleNamespace(), "org/cn", "abc123")))
    assert (made.model_id, made.revision) == ("org/cn", "abc123")


def test_an_uncached_hub_model_offline_names_the_missing_file_and_its_source(tmp_path, real):
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    run = subprocess.run([sys.executable, "-m", "streetsynth.cli", "generate", "--real", str(real), "--out",
                          str(tmp_path / "store"), "--model", "org/not-cached-inpainting"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "org/not-cached-inpainting: model_index.json is not in the local Hugging Face cache" in run.stderr
    assert "https://huggingface.co/org/not-cached-inpainting/blob/main/model_index.json" in run.stderr


def test_quality_refuses_a_size_below_the_minimum_before_reading_anything(tmp_path):
    from streetsynth.generators.quality import QualityConfig, measure_quality

    with pytest.raises(ValueError, match=r"--size 0x0 out of range: each side 16\.\.8192"):
        measure_quality(QualityConfig(real=str(tmp_path / "nothing"), synthetic=str(tmp_path / "nothing"), size=(0, 0)))
