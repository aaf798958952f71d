"""One path from the command line to a stage's config: the HxW parser, and each command's defaults
agreeing with its stage's dataclass defaults (a flag's default cannot drift from the library's)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from streetsynth.cli import build_parser
from streetsynth.config import config_from_args, parse_size


@pytest.mark.parametrize("text, size", [("320x480", (320, 480)), ("512X1024", (512, 1024)), ("16x16", (16, 16))])
def test_parse_size_is_height_first(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["320", "320x", "axb", "1x2x3", "8x480"])
def test_parse_size_rejects_with_an_example(text):
    with pytest.raises(argparse.ArgumentTypeError, match="HxW|out of range"):
        parse_size(text)


def test_config_from_args_matches_names_and_keeps_defaults_for_none():
    @dataclass
    class Cfg:
        real: str  # required
        steps: int = 30  # has a default the parser leaves to the config
        size: tuple[int, int] | None = None  # None is a real value here too
        seed: int = 0

    args = argparse.Namespace(real="r", steps=None, size=(8, 8), seed=3, func=print, debug=False)
    assert config_from_args(Cfg, args) == Cfg("r", 30, (8, 8), 3)
    assert config_from_args(Cfg, args, seed=7).seed == 7
    with pytest.raises(TypeError, match="no field"):
        config_from_args(Cfg, args, stpes=1)


def test_cli_defaults_are_the_stage_defaults():
    from streetsynth.commands import demo, train
    from streetsynth.generators.generate import GenerateConfig
    from streetsynth.training.inpaint import InpaintConfig
    from streetsynth.training.maskrcnn import TrainConfig

    parse = build_parser().parse_args
    args = parse(["generate", "--real", "R", "--out", "O"])
    assert config_from_args(GenerateConfig, args) == GenerateConfig(real="R", out="O")
    args = parse(["demo"])
    assert config_from_args(demo.DemoConfig, args) == demo.DemoConfig(out=Path("demo-out"))
    args = parse(["train", "maskrcnn", "--real", "R", "--out", "O"])
    assert train._config(args, synthetic=[], eval_each_epoch=True) == TrainConfig(real="R", out="O")
    args = parse(["train", "inpaint", "--real", "R", "--model", "M", "--out", "O"])
    assert train._inpaint_config(args) == InpaintConfig(real="R", model="M", out="O")
