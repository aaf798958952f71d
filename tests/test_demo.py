"""The README's first command, end to end on CPU: sample -> real -> synthetic -> labels -> training -> report."""

from __future__ import annotations

import json
import re

import numpy as np

from streetsynth.training.demo import DemoConfig, run_demo
from streetsynth import repo


TRAIN_STEPS = 80
SWEEP_STEPS = 8


def test_demo_runs_every_stage_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "demo"
    report = run_demo(DemoConfig(out=out, segments=4, frames=2, num=6, steps=2, train_steps=TRAIN_STEPS, seeds=1,
                                 jobs=1, panoptic_every=2, sweep_steps=SWEEP_STEPS))
    printed = capsys.readouterr().out
    assert "Tiny RANDOM models" in printed  # said plainly
    page = report.read_text()
    for stage in ("Sample", "Real dataset", "Masks for every real object v0.1.0", "Synthetic v0.1.0", "Occluders in boxes v0.1.0",
                  "Layout-preserving re-rendering v0.1.0", "Grounded generation v0.1.0", "Training", "Filter sweep"):
        assert f"{stage}</h2>" in page
    # Every real object has a mask before generation and training (SAM from its box where no panoptic label).
    masked = repo.read_info(out / "real-masks" / "v0.1.0")
    assert "none" not in masked["mask_sources"] and masked["mask_sources"].get("sam-box", 0) > 0
    assert repo.read_info(out / "synthetic" / "v0.1.0")["source"]["fingerprint"] == masked["fingerprint"]
    # The outpaint version's image quality against the real scenes is measured and on its card.
    assert "FID (invented region)" in page and "quality" in repo.read_info(out / "synthetic" / "v0.1.0")
    assert "LPIPS diversity across rows (invented region)" in page  # diversity beside realism (issue 27)
    assert "Diversity (LPIPS)" in (out / "synthetic" / "v0.1.0" / "README.md").read_text()
    # The comparison is mean ± std over seeds at equal compute, and says the AP is on rendered scenes.
    assert "±" in page and "AP is measured on RENDERED scenes" in page and "AP is measured on RENDERED" in printed
    assert 'src="train/delta.png"' in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) >= 3 and all((report.parent / src).is_file() for src in images)
    # The stages handed real data to each other: the synthetic version points at the real repo...
    synth = out / "synthetic" / "v0.1.0"
    info = repo.read_info(synth)
    assert info["kind"] == "synthetic" and info["counts"]["accepted"] + info["counts"]["failed_samples"] == 6
    # ... its rows carry the labeler's provenance, and training compared two mixes on them.
    rows = repo.load_split(synth, "synthetic", "synthetic")
    assert info["counts"]["accepted"] >= 1 and len(rows) == info["counts"]["accepted"]
    assert all("maskrcnn:tiny" in g["labeler"] for g in rows["generation"])
    results = json.loads((out / "train" / "results.json").read_text())
    assert [r["mix"] for r in results["runs"]] == ["real=1", "real=1,synthetic=0.5", "oracle: real=1,synthetic=1",
                                                   "real=1 2x steps"]
    assert [r["steps"] for r in results["runs"]] == [TRAIN_STEPS] * 3 + [2 * TRAIN_STEPS]
    # The recipe learns: the oracle (the real scenes with their true labels) scores above zero in 80 steps
    # (its mask AP is still about 0 that early: the box head learns first, so only box AP is asserted).
    assert results["runs"][2]["box_AP"] > 0
    # The filter sweep ran on the version's own seam scores: its thresholds are their thirds, and each filtered
    # mix read exactly the rows at or below its threshold.
    seam = np.array([g["seam_score"] for g in rows["generation"]])
    sweep = json.loads((out / "sweep" / "results.json").read_text())
    cuts = sweep["sweep"]["thresholds"]
    assert sweep["sweep"]["filter"] == "max_seam_score"
    assert np.allclose(cuts, np.quantile(seam, [1 / 3, 2 / 3]), rtol=1e-3)
    filtered = [r for r in sweep["runs"] if r.get("filter")]
    assert [r["filter"] for r in filtered] == [f"max-seam-score={c:g}" for c in cuts]
    for run, cut in zip(filtered, cuts):
        assert run["steps"] == SWEEP_STEPS
        assert run["seeds"][0]["synthetic_filter"]["rows_dropped"] == int((seam > cut).sum()) > 0
    assert 'src="sweep/delta.png"' in page and "max-seam-score" in page
