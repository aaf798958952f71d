"""The on-disk layout of a streetsynth dataset repo, laid out as a Hub dataset repo.

A repo is a folder that ``datasets.load_dataset(folder, config, split=...)`` reads and that can be
pushed to the Hub unchanged::

    README.md                      YAML front matter with the ``configs:`` block, then the card
    data/<config>/<split>-NNNNN-<digest>.parquet
    meta/info.json                 kind, version, fingerprint, counts, skipped records, settings

Every path is built from the constants here; nobody formats them by hand elsewhere.

A shard's file name ends with a digest of its bytes, and the card's ``configs:`` block lists every
file by name. ``datasets`` keys its cache of a local folder by the folder's name and a hash of that
YAML (not of the files), so naming the content is what keeps two repos of one name, a repo rebuilt
in place, or two versions of two stores from being served each other's cached rows.
"""

from __future__ import annotations

import glob
import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from streetsynth.digest import file_digest

#: Version of the on-disk format. A repo written with another major version is refused.
FORMAT_VERSION = "1.0"
README_PATH = "README.md"
INFO_PATH = "meta/info.json"
#: Written by streaming writers: completed sample ids, shards and row counts (see generators.writer).
MANIFEST_PATH = "meta/manifest.json"
DATA_DIR = "data"
SHARD_TEMPLATE = "data/{config}/{split}-{index:05d}-{digest}.parquet"
#: A shard's file name: split, index, the first DIGEST_CHARS hex digits of the SHA-256 of its bytes.
SHARD_NAME = re.compile(r"^(?P<split>.+)-(?P<index>\d{5})-(?P<digest>[0-9a-f]{12})\.parquet$")
DIGEST_CHARS = 12


class RepoFormatError(ValueError):
    """A folder is not a streetsynth repo, or one of an incompatible format version."""


def shard_path(repo: str | os.PathLike, config: str, split: str, index: int, digest: str) -> Path:
    """Where shard ``index`` of ``config``/``split`` with content digest ``digest`` lives."""
    return Path(repo) / SHARD_TEMPLATE.format(config=config, split=split, index=index, digest=digest)


def parse_shard_name(name: str) -> tuple[str, int] | None:
    """``(split, index)`` of a shard file name, None for any other file."""
    m = SHARD_NAME.match(name)
    return (m.group("split"), int(m.group("index"))) if m else None


def shard_files(repo: str | os.PathLike, config: str, split: str) -> list[Path]:
    """The Parquet shards of ``config``/``split``, in index order."""
    folder = Path(repo) / DATA_DIR / config
    if not folder.is_dir():
        return []
    found = [(parse_shard_name(f.name), f) for f in folder.iterdir()]
    return [f for key, f in sorted((k, f) for k, f in found if k is not None and k[0] == split)]


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


def _remove_dead_temps(path: Path) -> None:
    """Remove the temporary files for ``path`` that processes killed mid-write left (:func:`_temp_path` names
    the writer's pid); those of a live process, perhaps writing now, stay."""
    prefix = f".{path.name}."
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = tmp.name[len(prefix):].split(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_dir(folder: Path) -> None:
    """Make a folder's entries (a rename, a new file) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteError(OSError):
    """A file could not be written (a full disk, a quota, an I/O error); the message names it."""

    def __str__(self) -> str:
        return str(self.strerror)


def write_error(path: str | os.PathLike, exc: BaseException) -> WriteError:
    """An error naming the file that could not be written: a full disk says only "No space left on device"
    (and the library that wrote may raise its own type), which leaves a user no way to tell which file, or
    which disk, it was. ``errno`` is kept."""
    reason = getattr(exc, "strerror", None) or " ".join(str(exc).split()) or type(exc).__name__
    return WriteError(getattr(exc, "errno", None), f"cannot write {path}: {reason} (what was complete before "
                                                   "is kept; free space and rerun the same command to resume)")


@contextmanager
def writing(path: str | os.PathLike, also: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Raise an OSError raised inside the block (and any of ``also``: writers such as ``torch.save`` report
    a full disk as a RuntimeError) as :func:`write_error` naming ``path``."""
    try:
        yield
    except (OSError, *also) as exc:
        if str(path) in str(exc):
            raise
        raise write_error(path, exc) from exc


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; synced and renamed onto ``path`` when the block ends,
    removed if it raises. Readers see the old file or the whole new one, never a part. The file gets
    the mode the umask gives (0666 & ~umask), as a plain ``open`` would. A failed write (a full disk)
    is raised naming ``path``, and the old file stays; temporary files a killed writer left are removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temps(path)
    tmp = _temp_path(path)
    try:
        with writing(path):
            yield tmp
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a synced temporary file in the same folder and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def place_shard(tmp: str | os.PathLike, repo: str | os.PathLike, config: str, split: str, index: int) -> Path:
    """Move a complete Parquet file ``tmp`` (in the shard folder) to its final, content-named place.

    The file is synced before the rename and the folder after it, so a manifest written next never
    names a shard a power cut could leave empty. Older shards of the same index are removed.
    """
    tmp = Path(tmp)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    path = shard_path(repo, config, split, index, file_digest(tmp, DIGEST_CHARS))
    os.replace(tmp, path)
    for old in path.parent.glob(f"{split}-{index:05d}-*.parquet"):
        if old != path and parse_shard_name(old.name) == (split, index):
            old.unlink()
    fsync_dir(path.parent)
    return path


def copy_shard(src: str | os.PathLike, repo: str | os.PathLike, config: str, split: str, index: int) -> Path:
    """Copy an existing Parquet file into ``repo`` as shard ``index`` (see :func:`place_shard`)."""
    import shutil

    return _stage_shard(repo, config, split, index, lambda tmp: shutil.copyfile(src, tmp))


def _stage_shard(repo: str | os.PathLike, config: str, split: str, index: int, write: Callable[[Path], Any]) -> Path:
    """``write`` a temporary file in the shard folder, then place it as shard ``index``; no temporary
    file is left behind if writing fails, and a failure (a full disk) is raised naming the shard."""
    folder = Path(repo) / DATA_DIR / config
    folder.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(folder / f"{split}-{index:05d}.parquet")
    try:
        with writing(folder / f"{split}-{index:05d}-*.parquet"):
            write(tmp)
            return place_shard(tmp, repo, config, split, index)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


def data_configs(repo: str | os.PathLike) -> dict[str, dict[str, list[str]]]:
    """``{config: {split: [shard paths relative to the repo]}}`` for the shards present under ``data/``."""
    out: dict[str, dict[str, list[str]]] = {}
    root = Path(repo) / DATA_DIR
    if not root.exists():
        return out
    for cfg_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        splits = sorted({key[0] for key in map(parse_shard_name, (f.name for f in cfg_dir.iterdir())) if key})
        if splits:
            out[cfg_dir.name] = {s: [f.relative_to(repo).as_posix() for f in shard_files(repo, cfg_dir.name, s)]
                                 for s in splits}
    return out


def configs_yaml(configs: dict[str, dict[str, list[str]]], default: str | None = None) -> list[dict[str, Any]]:
    """The ``configs:`` block of a Hub dataset card for ``{config: {split: [files]}}``.

    Files are listed by name (never a glob): their names carry their content digests, and this block
    is what ``datasets`` hashes into a local folder's cache key.
    """
    block = []
    for name, splits in configs.items():
        entry: dict[str, Any] = {
            "config_name": name,
            "data_files": [{"split": s, "path": list(p)} for s, p in splits.items()],
        }
        if name == default:
            entry["default"] = True
        block.append(entry)
    return block


def dataset_info_yaml(repo: str | os.PathLike, configs: dict[str, dict[str, list[str]]]) -> list[dict[str, Any]]:
    """The ``dataset_info:`` block ``push_to_hub`` writes: features, splits with ``num_examples`` and
    ``num_bytes``, ``download_size`` and ``dataset_size``, one entry per config, from the Parquet footers."""
    import datasets
    import pyarrow.parquet as pq

    block = []
    for name, splits in configs.items():
        split_dict = datasets.SplitDict()
        features = None
        download = 0
        for split, files in splits.items():
            rows = size = 0
            for rel in files:
                meta = pq.ParquetFile(Path(repo) / rel)
                features = features or datasets.Features.from_arrow_schema(meta.schema_arrow)
                rows += meta.metadata.num_rows
                size += sum(meta.metadata.row_group(i).total_byte_size for i in range(meta.metadata.num_row_groups))
                download += (Path(repo) / rel).stat().st_size
            split_dict.add(datasets.SplitInfo(name=split, num_bytes=size, num_examples=rows))
        info = datasets.DatasetInfo(features=features, splits=split_dict, download_size=download,
                                    dataset_size=sum(s.num_bytes for s in split_dict.values()), config_name=name)
        block.append(info._to_yaml_dict())
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
    configs = data_configs(repo)
    meta["configs"] = configs_yaml(configs, default=default)
    meta["dataset_info"] = dataset_info_yaml(repo, configs)
    text = "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n" + (old_body if body is None else body)
    atomic_write_text(path, text)
    return path


#: The only data-file pattern an unfinished version's README names: it matches nothing, so ``load_dataset``
#: refuses the folder instead of reading the shards written so far (or ``meta/manifest.json``) as a dataset.
UNFINISHED_PATTERN = "UNFINISHED-VERSION-resume-the-run-that-writes-it/*.parquet"


def mark_unfinished(repo: str | os.PathLike, config: str, splits: str | list[str]) -> Path:
    """Give a version being written a README whose data files (of every split in ``splits``) match nothing,
    until it is finished (:func:`write_readme` then names the shards). A killed run's version is not a dataset."""
    splits = [splits] if isinstance(splits, str) else list(splits)
    meta = {"configs": [{"config_name": config, "default": True,
                         "data_files": [{"split": split, "path": UNFINISHED_PATTERN} for split in splits]}]}
    path = Path(repo) / README_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"
                      "This version is not finished: a run is writing it, or was killed. Rerun the same command "
                      "to resume it; until then it loads as no data.\n")
    return path


def write_shard(repo: str | os.PathLike, config: str, split: str, index: int, rows: list[dict[str, Any]],
                features) -> Path:
    """Encode ``rows`` with ``features`` and write them as one Parquet shard, atomically and synced.

    The Features travel in the Parquet schema metadata, so ``load_dataset`` reads them back typed.
    Optional columns (``schema.OPTIONAL_COLUMNS``) a row leaves out are written as None.
    """
    import datasets
    import pyarrow.parquet as pq

    from streetsynth.schema import OPTIONAL_COLUMNS

    absent = {k: None for k in OPTIONAL_COLUMNS if k in features}
    table = datasets.Dataset.from_list([{**absent, **r} for r in rows], features=features).data.table
    return _stage_shard(repo, config, split, index, lambda tmp: pq.write_table(table, tmp))


def load_split(repo: str | os.PathLike, config: str, split: str):
    """``datasets.load_dataset`` of one config/split of a local repo (checks the format first)."""
    import datasets

    read_info(repo)
    if not shard_files(repo, config, split):
        raise FileNotFoundError(f"{repo}: no {config}/{split} shards under {DATA_DIR}/{config}/")
    return datasets.load_dataset(str(repo), config, split=split)


def source_record(repo: str | os.PathLike, info: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """How info.json names a source dataset: its folder name, fingerprint and Hub id/revision when it has
    them, never a local absolute path (published versions must not carry the machine's paths)."""
    record = {"name": Path(repo).resolve().name, "fingerprint": info.get("fingerprint")}
    hub = info.get("hub") or {}
    if hub.get("repo_id"):
        record.update(repo_id=hub["repo_id"], revision=hub.get("revision"))
    return {**record, **extra}


def local_name(spec: str | os.PathLike | None) -> str | None:
    """How a published file names a local file or folder: by its name alone; a Hub id (or any text that is
    not an existing path) stays as it is. Published versions must not carry the machine's paths."""
    if spec is None:
        return None
    local = Path(spec)
    return local.resolve().name if local.exists() else str(spec)


def file_record(path: str | os.PathLike | None) -> str | None:
    """A local input file as info.json records it: ``NAME@sha256:DIGEST`` (its content, not its path)."""
    if path is None:
        return None
    return f"{Path(path).name}@sha256:{file_digest(path)}" if Path(path).is_file() else local_name(path)


def relative_to_source(text: str, source: str | os.PathLike) -> str:
    """``text`` (a reason naming a file) with the source folder's absolute path cut to the folder's name."""
    source = Path(source)
    roots = sorted({str(source), str(source.absolute()), str(source.resolve())}, key=len, reverse=True)
    for root in roots:
        text = text.replace(root.rstrip(os.sep) + os.sep, source.resolve().name + os.sep)
    return text


def pick_config(available: dict[str, Any], wanted: str | None, data: str | os.PathLike) -> str:
    """The config of a repo to work on: the one asked for, else its synthetic or stitched one.

    In the core so that the stages that pick a config (``label``, ``preview``) need not import each other.
    """
    from streetsynth.schema import STITCHED, SYNTHETIC

    if wanted is not None:
        if wanted not in available:
            raise ValueError(f"{data}: no config {wanted!r} (has: {', '.join(available) or 'none'})")
        return wanted
    for name in (SYNTHETIC, STITCHED):
        if name in available:
            return name
    raise ValueError(f"{data}: no stitched or synthetic config to label (has: {', '.join(available) or 'none'})")
