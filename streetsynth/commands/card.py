"""``streetsynth card REPO``: (re)write a dataset repo's README.md card from its data."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("card", help="render the dataset card (README.md) from the data",
                       description="Compute sizes, class counts, provenance and a sample sheet from a dataset "
                       "repo and write its README.md card (keeping the configs block load_dataset reads).")
    p.add_argument("repo", help="local dataset repo folder")
    p.add_argument("--repo-id", help="Hub repo id to show in the loading examples (default OWNER/NAME)")
    p.add_argument("--stdout", action="store_true", help="print the card instead of writing README.md")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.cards.render import render_card, write_card

    if args.stdout:
        print(render_card(args.repo, repo_id=args.repo_id), end="")
    else:
        print(f"wrote {write_card(args.repo, repo_id=args.repo_id)}")
    return 0
