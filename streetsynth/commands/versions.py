"""``streetsynth versions``: the versions of a Hub dataset repo or of a local store, with fingerprints."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("versions", help="list dataset versions and their fingerprints",
                       description="List the vX.Y.Z tags of a Hub dataset repo (reading meta/info.json at "
                       "each tag) or the version folders of a local store.")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--repo-id", help="Hub dataset repo, OWNER/NAME")
    where.add_argument("--store", help="local folder of versions (STORE/v0.1.0/, ...)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.hub import format_versions, hub_versions
    from streetsynth.versions import list_versions

    versions = hub_versions(args.repo_id) if args.repo_id else list_versions(args.store)
    if not versions:
        print(f"no versions in {args.repo_id or args.store}")
        return 0
    print(format_versions(versions))
    return 0
