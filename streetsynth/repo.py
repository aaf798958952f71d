"""The on-disk layout of a streetsynth dataset repo, laid out as a Hub dataset repo.

A repo is a folder that ``datasets.load_dataset(folder, config, split=...)`` reads and that can be
pushed to the Hub unchanged::

    README.md                      YAML front matter with the ``configs:`` block, then the card
    data/<config>/<split>-NNNNN.parquet
    meta/info.json                 kind, version, fingerprint, counts, skipped records, settings

Every path is built from the constants here; nobody formats them by hand elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

#: Version of the on-disk format. A repo written with another major version is refused.
FORMAT_VERSION = "1.0"
README_PATH = "README.md"
INFO_PATH = "meta/info.json"
#: Written by streaming writers: completed sample ids, shards and row counts (see generators.writer).
MANIFEST_PATH = "meta/manifest.json"
DATA_DIR = "data"
SHARD_TEMPLATE = "data/{config}/{split}-{index:05d}.parquet"


class RepoFormatError(ValueError):
    """A folder is not a streetsynth repo, or one of an incompatible format version."""


def shard_path(repo: str | os.PathLike, config: str, split: str, index: int) -> Path:
    """Where shard ``index`` of ``config``/``split`` lives."""
    return Path(repo) / SHARD_TEMPLATE.format(config=config, split=split, index=index)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file beside ``path`` to write; renamed onto ``path`` when the block ends, removed
    if it raises. Readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def read_info(repo: str | os.PathLike) -> dict[str, Any]:
    """``meta/info.json`` of a repo; raises RepoFormatError if missing or of another format."""
    path = Path(repo) / INFO_PATH
    if not path.exists():
        raise RepoFormatError(f"{repo}: not a streetsynth dataset repo (no {INFO_PATH})")
    info = json.loads(path.read_text())
    major = str(info.get("format_version", "0")).split(".")[0]
    if major != FORMAT_VERSION.split(".")[0]:
        raise RepoFormatError(
            f"{repo}: format {info.get('format_version')} but this streetsynth reads {FORMAT_VERSION}; "
            "rebuild the repo with this version or install the streetsynth that wrote it"
        )
    return info


def write_info(repo: str | os.PathLike, info: dict[str, Any]) -> None:
    """Write ``meta/info.json`` atomically, stamping the format version."""
    info = {"format_version": FORMAT_VERSION, **info}
    atomic_write_text(Path(repo) / INFO_PATH, json.dumps(info, indent=2, sort_keys=True) + "\n")


def data_configs(repo: str | os.PathLike) -> dict[str, dict[str, str]]:
    """``{config: {split: glob}}`` for the Parquet shards present under ``data/``."""
    out: dict[str, dict[str, str]] = {}
    root = Path(repo) / DATA_DIR
    if not root.exists():
        return out
    for cfg_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        splits = sorted({re.sub(r"-\d{5}$", "", f.stem) for f in cfg_dir.glob("*.parquet")})
        if splits:
            out[cfg_dir.name] = {s: f"{DATA_DIR}/{cfg_dir.name}/{s}-*.parquet" for s in splits}
    return out


def configs_yaml(configs: dict[str, dict[str, str]], default: str | None = None) -> list[dict[str, Any]]:
    """The ``configs:`` block of a Hub dataset card for ``{config: {split: glob}}``."""
    block = []
    for name, splits in configs.items():
        entry: dict[str, Any] = {
            "config_name": name,
            "data_files": [{"split": s, "path": p} for s, p in splits.items()],
        }
        if name == default:
            entry["default"] = True
        block.append(entry)
    return block


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """(YAML metadata, body) of a README with optional ``---`` front matter."""
    m = re.match(r"^---\n(.*?)\n---\n?(.*)$", text, flags=re.S)
    if not m:
        return {}, text
    return (yaml.safe_load(m.group(1)) or {}), m.group(2)


def write_readme(repo: str | os.PathLike, body: str | None = None, metadata: dict[str, Any] | None = None,
                 default: str | None = None) -> Path:
    """(Re)write README.md so its ``configs:`` block names the shards present now.

    Keeps the existing body and metadata unless new ones are given. Cards (``streetsynth.cards``)
    render a full body; this minimal form is enough for ``load_dataset`` to read the repo.
    """
    path = Path(repo) / README_PATH
    old_meta, old_body = split_front_matter(path.read_text()) if path.exists() else ({}, "")
    meta = dict(old_meta if metadata is None else metadata)
    meta["configs"] = configs_yaml(data_configs(repo), default=default)
    text = "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n" + (old_body if body is None else body)
    atomic_write_text(path, text)
    return path


def write_shard(repo: str | os.PathLike, config: str, split: str, index: int, rows: list[dict[str, Any]],
                features) -> Path:
    """Encode ``rows`` with ``features`` and write them as one Parquet shard, atomically.

    The Features travel in the Parquet schema metadata, so ``load_dataset`` reads them back typed.
    """
    import datasets
    import pyarrow.parquet as pq

    path = shard_path(repo, config, split, index)
    table = datasets.Dataset.from_list(rows, features=features).data.table
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def load_split(repo: str | os.PathLike, config: str, split: str):
    """``datasets.load_dataset`` of one config/split of a local repo (checks the format first)."""
    import datasets

    read_info(repo)
    files = sorted((Path(repo) / DATA_DIR / config).glob(f"{split}-*.parquet"))
    if not files:
        raise FileNotFoundError(f"{repo}: no {config}/{split} shards under {DATA_DIR}/{config}/")
    # datasets keys its Arrow cache of a local folder by folder name and file pattern, not by
    # content, so a rebuilt repo (or another one of the same name) would be served stale.
    # A cache folder per content version avoids that.
    stamp = json.dumps([(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files])
    cache = Path(datasets.config.HF_DATASETS_CACHE) / "streetsynth" / hashlib.sha256(stamp.encode()).hexdigest()[:16]
    return datasets.load_dataset(str(repo), config, split=split, cache_dir=str(cache))
