"""generate refuses bad arguments before any folder exists, fails loudly on 0 rows, and locks its store."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import factories_producers as producers
from factories_generate import make_real_repo

from streetsynth.cli import main
from streetsynth.generators.generate import GenerateConfig, run_generation
from streetsynth.generators.seam import DEFAULT_THRESHOLD
from streetsynth.repo import INFO_PATH, read_info
from streetsynth.models.tiny_inpaint import build_tiny_inpaint_pipeline
from streetsynth.versions import store_lock


@pytest.fixture(scope="module")
def pipe():
    return producers.tiny_pipeline()  # built once per session, declaring its id and revision


@pytest.mark.parametrize("extra,message", [
    (["--num", "0"], "--num must be >= 1"),
    (["--num", "-3"], "--num must be >= 1"),
    (["--seam-threshold", "nan"], "--seam-threshold must be a finite number"),
    (["--plausibility-threshold", "-1"], "--plausibility-threshold must be a finite number"),
    (["--invent-fraction", "1.5"], "--invent-fraction must lie in (0, 1)"),
    (["--rows-per-shard", "0"], "--rows-per-shard must be >= 1"),
    (["--strength", "0"], "--strength must lie in (0, 1]"),
])
def test_bad_arguments_are_refused_before_a_folder_exists(tmp_path, capsys, extra, message):
    real = make_real_repo(tmp_path / "real", rows=1)
    assert main(["generate", "--real", str(real), "--out", str(tmp_path / "store"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("size", ["100000x100000", "8x480"])
def test_a_size_out_of_range_is_refused_while_parsing(tmp_path, capsys, size):
    real = make_real_repo(tmp_path / "real", rows=1)
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--real", str(real), "--out", str(tmp_path / "store"), "--size", size])
    assert exit_.value.code == 2 and f"argument --size: size {size} out of range" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def test_a_version_with_zero_rows_is_an_error_not_a_release(tmp_path, pipe):
    make_real_repo(tmp_path / "real", rows=2)
    cfg = GenerateConfig(real=str(tmp_path / "real"), out=str(tmp_path / "store"), num=2, steps=2, batch_size=2,
                         max_attempts=2, seam_threshold=0.0, pipeline=pipe, progress=False)
    with pytest.raises(ValueError, match="0 rows accepted from 4 attempts"):
        run_generation(cfg)
    assert not (tmp_path / "store" / "v0.1.0" / INFO_PATH).exists()


def test_runs_wait_for_the_store_lock_and_get_their_own_versions(tmp_path, pipe):
    make_real_repo(tmp_path / "real", rows=2)
    results = {}
    pipes = {1: pipe, 2: build_tiny_inpaint_pipeline(seed=0)}  # one pipeline per thread
    pipes[2]._streetsynth_model = pipe._streetsynth_model

    def run(seed):
        results[seed] = run_generation(GenerateConfig(
            real=str(tmp_path / "real"), out=str(tmp_path / "store"), num=2, steps=2, batch_size=2, seed=seed,
            seam_threshold=1e9, pipeline=pipes[seed], progress=False))

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (1, 2)]
    with store_lock(tmp_path / "store"):
        for t in threads:
            t.start()
        time.sleep(2.0)  # ample time for an unlocked run to choose a version folder
        assert not list((tmp_path / "store").glob("v*"))  # both wait while another holds the lock
    for t in threads:
        t.join()
    assert sorted(r.tag for r in results.values()) == ["v0.1.0", "v0.1.1"]
    for r in results.values():
        assert read_info(r.folder)["version"] == r.tag
    assert read_info(results[1].folder)["fingerprint"] != read_info(results[2].folder)["fingerprint"]


def _seam_cfg(tmp_path, pipe, **kw):
    make_real_repo(tmp_path / "real", rows=2)
    return GenerateConfig(real=str(tmp_path / "real"), out=str(tmp_path / "store"), num=2, steps=2, batch_size=2,
                          max_attempts=1, pipeline=pipe, progress=False, **kw)


def test_the_threshold_and_both_scores_are_recorded(tmp_path, pipe):
    # a threshold that accepts everything: what the run and every row record; the tiny model's noise is new
    # content, not a copy of the known part, so its plausibility score is high
    from streetsynth.repo import load_split

    res = run_generation(_seam_cfg(tmp_path, pipe, seam_threshold=1e9))
    assert res.counts["rejected_attempts"] == 0 and read_info(res.folder)["settings"]["seam_threshold"] == 1e9
    gens = load_split(res.folder, "synthetic", "synthetic")["generation"]
    assert len(gens) == 2 and all(g["seam_threshold"] == 1e9 and g["seam_score"] > DEFAULT_THRESHOLD for g in gens)
    assert all(g["plausibility_score"] > 0.5 for g in gens)


def test_the_default_gate_rejects_the_tiny_models_noise_at_its_threshold(tmp_path, pipe):
    with pytest.raises(ValueError, match=rf"every attempt scored above --seam-threshold {DEFAULT_THRESHOLD}\)"):
        run_generation(_seam_cfg(tmp_path, pipe))


def test_the_plausibility_threshold_rejects_only_when_asked(tmp_path, pipe):
    with pytest.raises(ValueError, match="0 rows accepted"):
        run_generation(_seam_cfg(tmp_path, pipe, seam_threshold=1e9, plausibility_threshold=1e9))
