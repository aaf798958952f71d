"""Models load from safetensors; a local model with only pickled weights is loaded only with a warning."""

from __future__ import annotations

import pytest
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


@pytest.mark.parametrize("argv, model, file", [
    (["occlude", "--model", "org/not-cached"], "org/not-cached", "model_index.json"),
    (["rerender", "--model", "org/not-cached-base", "--controlnet", "org/not-cached-cn"], "org/not-cached-cn", ""),
    (["ground", "--model", "org/not-cached"], "org/not-cached", ""),
])
def test_every_method_names_the_model_file_it_lacks_offline_and_where_it_comes_from(tmp_path, capsys, argv, model,
                                                                                      file):
    import factories_producers as producers

    from streetsynth.cli import main

    source = [] if argv[0] == "ground" else ["--real", str(producers.real())]
    assert main([argv[0], *source, "--out", str(tmp_path / "store"), *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert f"error: {model}: " in err and "is not in the local Hugging Face cache" in err, err
    assert f"it would come from https://huggingface.co/{model}/blob/main/{file}" in err
    last = err.strip().splitlines()[-1]  # one line, the last: no traceback after it
    assert last.startswith(f"streetsynth {argv[0]}: error: {model}: ") and f"huggingface-cli download {model}" in last
    assert not list((tmp_path / "store").glob("v*/meta/info.json"))
