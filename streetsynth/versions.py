"""Versions of derived datasets: fingerprints of what made them and semantic version numbers.

A *store* is a folder of versions, one dataset repo each (``STORE/v0.1.0/``, ``STORE/v0.1.1/``).
A version's ``meta/info.json`` records its ``version`` and ``fingerprint``. Running again with the
same inputs and settings resumes that version; other settings make a new one; nothing is ever
overwritten in place.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .repo import INFO_PATH, MANIFEST_PATH, RepoFormatError, read_info

_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


def parse_version(text: str) -> tuple[int, int, int]:
    """``"v1.2.3"`` or ``"1.2.3"`` -> (1, 2, 3); ValueError otherwise."""
    m = _SEMVER.match(text.strip())
    if not m:
        raise ValueError(f"not a semantic version X.Y.Z: {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def check_version(version: str | None) -> None:
    """Refuse a requested ``--version`` that is not X.Y.Z (``../x`` included) before anything is written."""
    if version is not None:
        parse_version(version)


def check_out_outside(out: str | Path, source: str | Path) -> None:
    """Refuse an output store that is the source dataset's folder or inside it (a new version would
    be written into the source repo, and the next load of the source would find it)."""
    o, s = Path(out).resolve(), Path(source).resolve()
    if o == s or s in o.parents:
        raise ValueError(f"--out {out} is inside the source dataset {source}: choose a store folder outside it")


def version_tag(version: tuple[int, int, int] | str) -> str:
    """The tag a version is pushed under: ``v1.2.3``."""
    if isinstance(version, str):
        version = parse_version(version)
    return "v{}.{}.{}".format(*version)


def fingerprint(inputs: dict[str, Any]) -> str:
    """A short stable hash of JSON-serialisable inputs (order of keys does not matter)."""
    blob = json.dumps(inputs, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def list_versions(store: str | Path) -> list[dict[str, Any]]:
    """Every version folder in ``store`` with its info, oldest version first."""
    out = []
    store = Path(store)
    if not store.exists():
        return out
    for d in store.iterdir():
        if d.is_dir() and _SEMVER.match(d.name) and (d / INFO_PATH).exists():
            try:
                out.append({"path": d, **read_info(d)})
            except RepoFormatError:
                continue
    return sorted(out, key=lambda v: parse_version(v["path"].name))


def resolve_version(store: str | Path, fp: str, requested: str | None = None) -> tuple[Path, str, bool]:
    """Where a run with fingerprint ``fp`` writes: ``(folder, tag, resuming)``.

    An existing version with the same fingerprint is resumed. A requested version that exists
    with another fingerprint is refused. Without a request, a new fingerprint gets the next patch
    after the newest version (``v0.1.0`` for an empty store).
    """
    versions = list_versions(store)
    if requested is not None:
        tag = version_tag(requested)
        for v in versions:
            if v["path"].name == tag:
                if v.get("fingerprint") != fp:
                    raise ValueError(
                        f"{v['path']} already holds {tag} made with other inputs or settings "
                        f"(fingerprint {v.get('fingerprint')} != {fp}); versions are never overwritten: "
                        "choose a new --version"
                    )
                return v["path"], tag, True
        folder = Path(store) / tag
        return folder, tag, folder.exists()
    for v in versions:
        if v.get("fingerprint") == fp:
            return v["path"], v["path"].name, True
    unfinished = [d for d in Path(store).glob("v*.*.*") if d.is_dir() and not (d / INFO_PATH).exists()]
    for d in unfinished:  # a killed first run has no info yet; its manifest says what it was
        manifest = d / MANIFEST_PATH
        if manifest.exists() and json.loads(manifest.read_text()).get("fingerprint") == fp:
            return d, d.name, True
    if versions:
        major, minor, patch = parse_version(versions[-1]["path"].name)
        tag = version_tag((major, minor, patch + 1))
    else:
        tag = "v0.1.0"
    while (Path(store) / tag).exists():
        major, minor, patch = parse_version(tag)
        tag = version_tag((major, minor, patch + 1))
    return Path(store) / tag, tag, False


LOCK_NAME = ".streetsynth.lock"


@contextlib.contextmanager
def store_lock(store: str | Path) -> Iterator[None]:
    """Hold the store's lock file (``STORE/.streetsynth.lock``, an exclusive ``flock``).

    Runs hold it from choosing a version until that version's first manifest is written, so two
    runs with different settings never pick the same version folder.
    """
    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    with open(store / LOCK_NAME, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
