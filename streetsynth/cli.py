"""The ``streetsynth`` command line. Each subcommand lives in its own module under
``streetsynth.commands`` and exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int``; modules whose name starts with an underscore are helpers, not commands."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import __version__, commands
from .config import add_debug


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streetsynth",
        description="Waymo street scenes as datasets: build real stitched scenes, generate "
        "outpainted synthetic ones, label, train, publish.",
    )
    parser.add_argument("--version", action="version", version=f"streetsynth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        importlib.import_module(f"{commands.__name__}.{mod.name}").register(sub)
    for command in sub.choices.values():  # every command takes --debug, whether its module adds it or not
        try:
            add_debug(command)
        except argparse.ArgumentError:
            pass
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError) as exc:
        if getattr(args, "debug", False):
            raise
        print(f"streetsynth {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
