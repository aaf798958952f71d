"""Every inpainting family's tiny pipeline through ``generate``: exact paste-back and true provenance."""

from __future__ import annotations

import numpy as np
import pytest
from factories_generate import make_real_repo

from streetsynth.generators.generate import GenerateConfig, run_generation
from streetsynth.generators.outpaint import DEFAULT_NEGATIVE, make_canvas
from streetsynth.models.inpaint import FAMILIES, build_tiny
from streetsynth.repo import load_split, read_info


@pytest.fixture(autouse=True)
def _own_datasets_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets_cache")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets_cache"))


def _cfg(tmp_path, model, **kw):
    return GenerateConfig(**{**dict(real=str(tmp_path / "real"), out=str(tmp_path / "store"), steps=2,
                                    batch_size=2, seed=5, pipeline=model, seam_threshold=1e9, progress=False), **kw})


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_generates_with_exact_paste_back_and_provenance(tmp_path, family):
    model = build_tiny(family, seed=0)
    real = make_real_repo(tmp_path / "real", rows=2, height=64, width=136)  # 136: a multiple of 8, not of 16
    res = run_generation(_cfg(tmp_path, model))
    fam = FAMILIES[family]
    rows = load_split(res.folder, "synthetic", "synthetic")
    src = {r["id"]: r for r in load_split(real, "stitched", "train")}
    assert len(rows) == 2
    for row in rows:
        g = row["generation"]
        image = np.asarray(row["image"])
        assert image.shape[1] % fam.size_multiple == 0 and image.shape[1] == (136 // fam.size_multiple) * \
            fam.size_multiple
        canvas = make_canvas(src[g["source_id"]], None, None, fam.size_multiple)
        kw = g["known_width"]
        assert kw == canvas.known_width and np.array_equal(image[:, :kw], canvas.image[:, :kw])
        assert not np.array_equal(image[:, kw + 8:], canvas.image[:, kw + 8:])  # invented, not the flat fill
        assert (g["model_id"], g["model_revision"]) == (f"streetsynth/tiny-random-{family}", "seed-0")
        assert g["guidance_scale"] == fam.default_guidance
        assert g["negative_prompt"] == (DEFAULT_NEGATIVE if fam.negative_prompt else None)
    info = read_info(res.folder)
    assert info["model"] == {"id": f"streetsynth/tiny-random-{family}", "revision": "seed-0"}


def test_a_negative_prompt_flux_fill_cannot_take_is_refused_not_dropped(tmp_path):
    make_real_repo(tmp_path / "real", rows=1)
    with pytest.raises(ValueError, match="flux-fill models take no negative prompt"):
        run_generation(_cfg(tmp_path, build_tiny("flux-fill"), negative_prompt="blurry"))


def test_an_injected_pipeline_must_declare_its_id(tmp_path):
    from streetsynth.models.tiny_inpaint import build_tiny_inpaint_pipeline

    make_real_repo(tmp_path / "real", rows=1)
    with pytest.raises(ValueError, match="must declare its id"):
        run_generation(_cfg(tmp_path, build_tiny_inpaint_pipeline(seed=0)))
