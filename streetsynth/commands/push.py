"""``streetsynth push REPO --repo-id OWNER/NAME``: publish a dataset repo as a tagged Hub version."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="publish a dataset repo to the Hub as a tagged version",
                       description="Render the dataset card, upload the repo folder to a Hub dataset repo and "
                       "tag the commit vX.Y.Z. The token comes from HF_TOKEN or `hf auth login`.")
    p.add_argument("repo", help="local dataset repo folder (a real repo or one synthetic version)")
    p.add_argument("--repo-id", required=True, help="Hub dataset repo, OWNER/NAME")
    p.add_argument("--version", help="X.Y.Z to tag (default: the version in meta/info.json)")
    vis = p.add_mutually_exclusive_group()
    vis.add_argument("--private", dest="public", action="store_false", default=False,
                     help="create the Hub repo private (default)")
    vis.add_argument("--public", dest="public", action="store_true",
                     help="create the Hub repo public (read the Waymo licence warning first)")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to main")
    p.add_argument("--force", action="store_true", help="move the tag if this version was pushed before")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.hub import WAYMO_PUBLIC_WARNING, push

    if args.public:
        print(WAYMO_PUBLIC_WARNING, file=sys.stderr)
    from streetsynth.cards.render import render_card

    result = push(args.repo, args.repo_id, args.version, private=not args.public, create_pr=args.create_pr,
                  force=args.force, card=lambda repo_id: render_card(args.repo, repo_id=repo_id))
    where = f" in {result.pr_revision}" if result.pr_revision else ""
    print(f"pushed {result.files} file(s) to {result.repo_id} in {result.commits} commit(s){where}; "
          f"tagged {result.tag} at {result.commit}")
    return 0
