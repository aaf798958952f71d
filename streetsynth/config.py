"""From the command line to a stage's config: the one ``HxW`` parser and the one argument-to-config path.

Light on purpose (standard library only): every command imports it while the parser is built.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, TypeVar

T = TypeVar("T")

#: An image size everywhere in streetsynth: (height, width) in pixels; ``HxW`` on the command line.
Size = tuple[int, int]
#: The smallest and largest side any stage accepts.
MIN_SIDE, MAX_SIDE = 16, 8192
#: The size a stage generates at when neither the source nor the user gives one.
DEFAULT_SIZE: Size = (512, 1024)


def check_size(size: Size, multiple: int = 1, what: str = "--size") -> Size:
    """``size`` if both sides lie in MIN_SIDE..MAX_SIDE and are multiples of ``multiple``; ValueError naming
    ``what`` otherwise. The one size rule of every stage (builders, generators, training)."""
    h, w = (int(v) for v in size)
    if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):
        raise ValueError(f"{what} {h}x{w} out of range: each side {MIN_SIDE}..{MAX_SIDE}")
    if h % multiple or w % multiple:
        raise ValueError(f"{what} {h}x{w}: both sides must be multiples of {multiple}")
    return h, w


def check_fraction(value: float, what: str) -> float:
    """``value`` if it is a finite number in [0, 1]; ValueError naming ``what`` otherwise (NaN included:
    every comparison with NaN is false, so a NaN threshold would silently keep or drop everything)."""
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{what} must lie in [0, 1], got {value}")
    return value


def parse_size(text: str) -> Size:
    """``"320x480"`` -> (320, 480), height first; an argparse ``type`` for every ``HxW`` option."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 512x1024, got {text!r}") from None
    try:
        return check_size((h, w), what="size")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def config_from_args(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """A dataclass config from parsed arguments, matching fields by name.

    An argument left at ``None`` keeps the field's own default, so a stage's defaults live in one
    place (its config) and the parser need not import the stage to show them. ``overrides`` set
    fields whose value the command derives from other arguments.
    """
    import dataclasses  # here, not at the top: it pulls in ``inspect``, a tenth of ``--help``'s start-up

    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(overrides) - names
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return cls(**(values | overrides))


def add_version_run_options(parser: argparse.ArgumentParser) -> None:
    """The options every command that writes a synthetic version shares (seed, device, version, shards)."""
    parser.add_argument("--seed", type=int, default=None, help="run seed (every sample's seed derives from it; "
                        "default 0)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cuda (default cpu)")
    parser.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default=None, help="model dtype")
    parser.add_argument("--version", default=None, help="version X.Y.Z to write (default: resume or next patch)")
    parser.add_argument("--rows-per-shard", type=int, default=None, help="rows per Parquet shard (default 64)")
    add_debug(parser)


def add_debug(parser: argparse.ArgumentParser) -> None:
    """``--debug`` (show tracebacks), on every command."""
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def add_style_options(p: argparse.ArgumentParser) -> None:
    """``--style-image`` and its IP-Adapter options (rerender and generate)."""
    p.add_argument("--style-image", default=None,
                   help="reference image steering the style through an IP-Adapter, or a folder of them (one drawn "
                   "per row, seeded); rows record its digest")
    p.add_argument("--style-scale", type=float, default=None, help="IP-Adapter scale (default 0.6)")
    p.add_argument("--ip-adapter", default=None, help="IP-Adapter Hub id or local folder (default h94/IP-Adapter)")
    p.add_argument("--ip-adapter-weight", default=None,
                   help="weight file inside --ip-adapter, image_encoder/ beside it "
                   "(default models/ip-adapter_sd15.safetensors; generate with an SDXL model: sdxl_models/ip-adapter_sdxl.safetensors)")
