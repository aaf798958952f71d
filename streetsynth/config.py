"""From the command line to a stage's config: the one ``HxW`` parser and the one argument-to-config path.

Light on purpose (standard library only): every command imports it while the parser is built.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def parse_size(text: str) -> tuple[int, int]:
    """``"320x480"`` -> (320, 480), height first; an argparse ``type`` for every ``HxW`` option."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 512x1024, got {text!r}") from None
    if h < 16 or w < 16:
        raise argparse.ArgumentTypeError(f"size {text!r} is too small (at least 16x16)")
    return h, w


def config_from_args(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """A dataclass config from parsed arguments, matching fields by name.

    An argument left at ``None`` keeps the field's own default, so a stage's defaults live in one
    place (its config) and the parser need not import the stage to show them. ``overrides`` set
    fields whose value the command derives from other arguments.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(overrides) - names
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return cls(**(values | overrides))


def add_version_run_options(parser: argparse.ArgumentParser) -> None:
    """The options every command that writes a synthetic version shares (seed, device, version, shards)."""
    parser.add_argument("--seed", type=int, default=0, help="run seed (every sample's seed derives from it)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default=None, help="model dtype")
    parser.add_argument("--version", default=None, help="version X.Y.Z to write (default: resume or next patch)")
    parser.add_argument("--rows-per-shard", type=int, default=64, help="rows per Parquet shard")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
