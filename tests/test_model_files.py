"""Models load from safetensors; a local model with only pickled weights is loaded only with a warning."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from streetsynth.models.load import ModelSpec, load
from streetsynth.models.tiny_inpaint import build_tiny_inpaint_pipeline


def test_safetensors_are_read_and_pickles_never_silently(tmp_path, capsys):
    pipe = build_tiny_inpaint_pipeline(seed=0)
    both = tmp_path / "both"
    pipe.save_pretrained(both, safe_serialization=True)
    weights = list(both.rglob("*.safetensors"))
    assert len(weights) >= 3
    for f in weights:  # a pickled file beside each: loading it would fail, so it must not be read
        f.with_name(f.name.replace("model.safetensors", "model.bin")).write_bytes(b"not a pickle")
    assert load("inpaint", ModelSpec(name=str(both))).model_id == "both"
    assert "pickled" not in capsys.readouterr().err

    pickles = tmp_path / "pickles"
    pipe.save_pretrained(pickles, safe_serialization=False)
    for f in pickles.rglob("*.safetensors"):  # transformers writes safetensors whatever it is asked: pickle it
        torch.save(load_file(f), f.with_name("pytorch_model.bin"))
        f.unlink()
    load("inpaint", ModelSpec(name=str(pickles)))
    assert f"warning: {pickles} has no safetensors weights; loading its pickled .bin files" in capsys.readouterr().err
