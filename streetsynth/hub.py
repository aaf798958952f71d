"""Publishing dataset repos to the Hugging Face Hub as tagged versions, and listing versions.

A push takes the card text from its caller (``commands/push.py`` renders it with the cards stage;
the core imports no stage), uploads the repo folder (one commit, or several for a folder larger than
``commit_bytes``; ``create_commit`` skips files the Hub already holds, so a failed push resumes),
deletes files the new version no longer has, and tags the final commit ``vX.Y.Z``; only then is the
card written as the local README. Symlinks that point out of the repo are refused. Repos are
created private unless asked otherwise: the Waymo Open Dataset terms forbid redistribution.

The token is whatever huggingface_hub finds (``HF_TOKEN`` or a cached login). It is never printed,
logged or written anywhere; error messages are scrubbed of it before they are raised.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import httpx2
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from .repo import INFO_PATH, README_PATH, read_info
from .versions import parse_version, version_tag

REPO_TYPE = "dataset"
#: Size of the files one commit carries before the upload is split into several commits.
DEFAULT_COMMIT_BYTES = 2 * 1024**3
#: Uploaded last, in the commit that gets tagged, so a tag never points at a half-described version.
LAST_FILES = (INFO_PATH, README_PATH)

WAYMO_PUBLIC_WARNING = (
    "WARNING: this dataset is derived from the Waymo Open Dataset, which is licensed for non-commercial "
    "use under its own terms (https://waymo.com/open/terms) that do not allow redistributing the data. "
    "A public repo makes the derived images downloadable by anyone; make sure the terms allow it."
)


class HubError(OSError):
    """A Hub operation failed; the message is one line and never contains the token."""


@dataclass
class PushResult:
    repo_id: str
    tag: str
    commit: str
    commits: int
    files: int
    private: bool
    pr_revision: str | None = None


def repo_files(repo: str | Path) -> list[tuple[str, Path]]:
    """``(path in repo, local path)`` of every file to publish; hidden and temporary files are left out.

    A symlink whose target lies outside the repo is refused: a push must not publish other files.
    """
    root = Path(repo)
    inside = root.resolve()
    out = []
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or f.name.endswith(".tmp"):
            continue
        if f.is_symlink() and inside not in f.resolve().parents:
            raise ValueError(f"{f}: a symlink to {f.resolve()}, outside the repo {root}; refusing to publish it")
        if f.is_file():
            out.append((rel.as_posix(), f))
    return out


def plan_commits(files: list[tuple[str, Path]], commit_bytes: int = DEFAULT_COMMIT_BYTES) -> list[list[tuple[str, Path]]]:
    """Files grouped into commits of at most ``commit_bytes`` each; the card and info.json go in the last."""
    body = [f for f in files if f[0] not in LAST_FILES]
    last = [f for f in files if f[0] in LAST_FILES]
    groups: list[list[tuple[str, Path]]] = [[]]
    size = 0
    for item in body:
        n = item[1].stat().st_size
        if groups[-1] and size + n > commit_bytes:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += n
    groups[-1].extend(last)
    return groups


def _scrub(text: str, token: str | None) -> str:
    text = " ".join(str(text).split())
    return text.replace(token, "***") if token else text


def _hub_call(api: HfApi, what: str, fn: Callable[[], Any]) -> Any:
    """Run one Hub call, turning transport and HTTP failures into a one-line :class:`HubError`."""
    try:
        return fn()
    except OfflineModeIsEnabled:
        raise HubError(f"{what}: HF_HUB_OFFLINE is set; unset it to reach the Hub at {api.endpoint}") from None
    except httpx2.TransportError as exc:
        raise HubError(f"{what}: cannot reach the Hub at {api.endpoint} ({type(exc).__name__})") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HubError(_scrub(f"{what}: HTTP {status}: {first}", api.token or get_token())) from None


def make_api(endpoint: str | None = None, token: str | None = None) -> HfApi:
    """An HfApi with the user's token (explicit, ``HF_TOKEN`` or cached login)."""
    return HfApi(endpoint=endpoint, token=token)


def push(repo: str | Path, repo_id: str, version: str | None = None, *, private: bool = True,
         create_pr: bool = False, force: bool = False, api: HfApi | None = None,
         commit_bytes: int = DEFAULT_COMMIT_BYTES, log: Callable[[str], None] | None = None,
         card: str | Callable[[str], str] | None = None) -> PushResult:
    """Upload ``repo`` to the Hub dataset ``repo_id`` and tag it ``vX.Y.Z``.

    ``card`` is the README text to publish, or a callable ``repo_id -> text``; without one the local
    README goes as it is. The local README is replaced by the card only after the tag exists.
    ``version`` defaults to ``meta/info.json``'s; a tag that exists already is refused unless
    ``force``. The repo is created private unless ``private=False``.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    info = read_info(repo)
    if version is None and not info.get("version"):
        raise ValueError(f"{repo}: {INFO_PATH} has no version; pass --version X.Y.Z")
    if version is not None and info.get("version") and parse_version(version) != parse_version(info["version"]):
        raise ValueError(f"{repo}: {INFO_PATH} says version {info['version']}, not {version}; "
                         "a tag must name the version it holds")
    tag = version_tag(version or info["version"])
    api = api or make_api()
    if not (api.token or get_token()):
        raise HubError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")

    card_text = card(repo_id) if callable(card) else card  # may write card assets into the repo
    files = repo_files(repo)  # refuses symlinks out of the repo before anything reaches the Hub
    staged = Path(repo) / f".{README_PATH}.push-{os.getpid()}.tmp"
    try:
        if card_text is not None:
            staged.write_text(card_text, encoding="utf-8")
        result = _upload(files, repo_id, tag, staged if card_text is not None else None, private=private,
                         create_pr=create_pr, force=force, api=api, commit_bytes=commit_bytes, log=log)
        if card_text is not None:
            os.replace(staged, Path(repo) / README_PATH)
    finally:
        staged.unlink(missing_ok=True)
    return result


def _upload(files: list[tuple[str, Path]], repo_id: str, tag: str, readme: Path | None, *, private: bool, create_pr: bool, force: bool,
            api: HfApi, commit_bytes: int, log: Callable[[str], None]) -> PushResult:
    """Create the repo, commit ``files`` (``readme`` in place of README.md when given), tag the last commit."""
    _hub_call(api, f"create {repo_id}", lambda: api.create_repo(
        repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True))
    refs = _hub_call(api, f"list refs of {repo_id}", lambda: api.list_repo_refs(repo_id, repo_type=REPO_TYPE))
    existing = {t.name: t.target_commit for t in refs.tags}
    if tag in existing and not force:
        raise ValueError(f"{repo_id} already has {tag} (commit {existing[tag][:12]}); versions are never "
                         "overwritten: bump the version, or pass --force to move the tag")

    if readme is not None:
        files = sorted([(p, f) for p, f in files if p != README_PATH] + [(README_PATH, readme)])
    groups = plan_commits(files, commit_bytes)
    remote = set(_hub_call(api, f"list files of {repo_id}", lambda: api.list_repo_files(
        repo_id, repo_type=REPO_TYPE)))
    stale = sorted(remote - {p for p, _ in files} - {".gitattributes"})
    revision, commit, pr_revision = None, None, None
    for i, group in enumerate(groups):
        ops: list = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(f)) for p, f in group]
        if i == len(groups) - 1:
            ops += [CommitOperationDelete(path_in_repo=p) for p in stale]
        part = f" (part {i + 1}/{len(groups)})" if len(groups) > 1 else ""
        log(f"uploading {len(group)} file(s) to {repo_id}{part}")
        info_commit = _hub_call(api, f"commit to {repo_id}", lambda: api.create_commit(
            repo_id, ops, commit_message=f"streetsynth {tag}{part}", repo_type=REPO_TYPE, revision=revision,
            create_pr=create_pr and revision is None))
        commit = info_commit.oid
        if create_pr and revision is None:
            revision = pr_revision = info_commit.pr_revision
    if tag in existing:
        _hub_call(api, f"move tag {tag}", lambda: api.delete_tag(repo_id, tag=tag, repo_type=REPO_TYPE))
    _hub_call(api, f"tag {tag}", lambda: api.create_tag(
        repo_id, tag=tag, revision=commit, repo_type=REPO_TYPE, tag_message=f"streetsynth {tag}"))
    return PushResult(repo_id, tag, commit, len(groups), len(files), private, pr_revision)


def hub_versions(repo_id: str, api: HfApi | None = None) -> list[dict[str, Any]]:
    """Every ``vX.Y.Z`` tag of ``repo_id`` with the ``meta/info.json`` it holds, oldest first."""
    api = api or make_api()
    refs = _hub_call(api, f"list refs of {repo_id}", lambda: api.list_repo_refs(repo_id, repo_type=REPO_TYPE))
    out = []
    for ref in refs.tags:
        try:
            key = parse_version(ref.name)
        except ValueError:
            continue
        path = _hub_call(api, f"read {INFO_PATH} at {ref.name}", lambda: api.hf_hub_download(
            repo_id, INFO_PATH, repo_type=REPO_TYPE, revision=ref.name))
        info = json.loads(Path(path).read_text())
        out.append({"tag": ref.name, "commit": ref.target_commit, "key": key, **info})
    return sorted(out, key=lambda v: v["key"])


def format_versions(versions: list[dict[str, Any]]) -> str:
    """A table of versions: tag, kind, fingerprint, rows accepted, where."""
    lines = [f"{'tag':<10} {'kind':<10} {'fingerprint':<18} where"]
    for v in versions:
        tag = v.get("tag") or Path(str(v.get("path", ""))).name
        where = v.get("commit", "")[:12] if v.get("commit") else str(v.get("path", ""))
        lines.append(f"{tag:<10} {v.get('kind', '?'):<10} {v.get('fingerprint') or '-':<18} {where}")
    return "\n".join(lines)
