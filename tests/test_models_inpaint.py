"""The inpainting model registry: families, loading with true provenance, refused arguments."""

from __future__ import annotations

import json

import pytest

from streetsynth.models.inpaint import (FAMILIES, LoadedModel, UnknownFamilyError, call_kwargs, family_of,
                                        injected, load)
from streetsynth.models.tiny_inpaint import build_tiny_inpaint_pipeline, save_tiny_inpaint_pipeline


class _XL:
    """A pipeline signature like SDXL inpainting's (no ``eta`` here, no ``max_sequence_length``)."""

    def __call__(self, prompt=None, image=None, mask_image=None, strength=1.0, guidance_scale=5.0,
                 negative_prompt=None, generator=None, output_type="pil"):
        pass


def test_an_argument_the_pipeline_does_not_take_is_refused_unless_allowed_to_drop():
    with pytest.raises(ValueError, match="does not take eta, max_sequence_length"):
        call_kwargs(_XL(), {"prompt": "p", "eta": 0.0, "max_sequence_length": 77, "strength": 0.9})
    kw = call_kwargs(_XL(), {"prompt": "p", "eta": 0.0, "negative_prompt": None, "strength": 0.9},
                     allow_drop=("eta",))
    assert kw == {"prompt": "p", "strength": 0.9}


def test_local_folder_loads_as_its_family_with_a_weights_hash_of_its_files(tmp_path):
    save_tiny_inpaint_pipeline(tmp_path / "m")
    model = load(str(tmp_path / "m"))
    assert isinstance(model, LoadedModel) and model.family.name == "sd-inpaint"
    assert model.denoiser is model.pipeline.unet and model.denoiser.config.in_channels == 9
    assert model.revision.startswith("sha256:") and model.model_id == "m"  # its folder name, never the local path
    assert load(str(tmp_path / "m")).revision == model.revision
    weights = next((tmp_path / "m" / "unet").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert load(str(tmp_path / "m")).revision != model.revision
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        load(str(tmp_path))
    with pytest.raises(ValueError, match="dtype"):
        load("tiny", dtype="fp8")


def test_an_unknown_family_fails_naming_the_known_ones(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyV22InpaintPipeline"}))
    with pytest.raises(UnknownFamilyError) as err:
        load(str(tmp_path / "m"))
    for name in FAMILIES:
        assert name in str(err.value)
    assert "KandinskyV22InpaintPipeline" in str(err.value)
    with pytest.raises(UnknownFamilyError, match="flux-fill"):
        injected(object(), "org/thing", "abc123")


def test_family_follows_model_index_class_names():
    assert family_of("StableDiffusion3Pipeline").pipeline_class == "StableDiffusion3InpaintPipeline"
    flux = family_of("FluxFillPipeline")
    assert (flux.denoiser, flux.negative_prompt, flux.default_guidance, flux.size_multiple) == \
        ("transformer", False, 30.0, 16)
    assert family_of("StableDiffusionXLInpaintPipeline").denoiser == "unet"


def test_provenance_refuses_revisions_that_name_no_weights():
    pipe = build_tiny_inpaint_pipeline(seed=0)
    for rev in ("main", "injected", ""):
        with pytest.raises(ValueError, match="names no weights"):
            injected(pipe, "org/model", rev)
    with pytest.raises(ValueError, match="needs an id"):
        injected(pipe, "", "abc123")
    assert injected(pipe, "org/model", "abc123").family.name == "sd-inpaint"


def test_hub_model_records_the_commit_of_the_snapshot_it_was_loaded_from(tmp_path, monkeypatch):
    import diffusers.utils.constants as dconst
    import huggingface_hub.constants as hconst

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--org--inpaint"
    save_tiny_inpaint_pipeline(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for mod in (hconst, dconst):
        monkeypatch.setattr(mod, "HF_HUB_CACHE", str(tmp_path / "hub"), raising=False)
    monkeypatch.setattr(hconst, "HF_HUB_OFFLINE", True)
    model = load("org/inpaint")
    assert (model.model_id, model.revision, model.family.name) == ("org/inpaint", commit, "sd-inpaint")


def test_train_inpaint_loads_through_the_registry_and_refuses_families_its_loss_does_not_cover(tmp_path):
    from streetsynth.models.inpaint import build_tiny
    from streetsynth.training.inpaint import load_pipeline

    build_tiny("flux-fill").pipeline.save_pretrained(tmp_path / "flux", safe_serialization=True)
    with pytest.raises(ValueError, match="flux-fill \\(transformer\\) is not supported"):
        load_pipeline(str(tmp_path / "flux"))
    save_tiny_inpaint_pipeline(tmp_path / "sd")
    assert load_pipeline(str(tmp_path / "sd")).unet.config.in_channels == 9


def test_the_occluder_kind_reads_an_sdxl_inpainting_folder_as_the_sdxl_family(tmp_path):
    """``occlude --model FOLDER`` with an SDXL inpainting folder runs the SDXL backend, named by folder and hash."""
    from streetsynth.models.inpaint import build_tiny
    from streetsynth.models.load import ModelSpec, declare
    from streetsynth.models.load import load as load_kind

    build_tiny("sdxl-inpaint").pipeline.save_pretrained(tmp_path / "xl", safe_serialization=True)
    model = load_kind("occluder", ModelSpec(str(tmp_path / "xl")))
    assert (model.family.name, model.model_id) == ("sdxl-inpaint", "xl") and model.revision.startswith("sha256:")
    assert type(model.pipeline).__name__ == "StableDiffusionXLInpaintPipeline"
    assert model.pipeline.text_encoder_2 is not None and model.denoiser.config.addition_embed_type == "text_time"
    assert load_kind("occluder", ModelSpec("tiny:sdxl-inpaint")).family.name == "sdxl-inpaint"
    injected_xl = declare(build_tiny("sdxl-inpaint").pipeline, "org/xl", "abc123")
    assert load_kind("occluder", ModelSpec(model=injected_xl)).family.name == "sdxl-inpaint"
