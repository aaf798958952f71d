"""Streaming rows into a dataset repo so that a killed run resumes without losing or doubling rows.

Rows arrive in a deterministic order and go into Parquet shards of ``rows_per_shard`` rows. A shard
is written under a temporary name and renamed when complete (``repo.write_shard``); only then does
the manifest, itself written atomically, list it with its sample ids. Sample ids that produced no
row (every attempt rejected) are attached to the next shard entry. What the manifest lists is done;
anything else (a half-filled buffer, a renamed shard the manifest does not know yet, temporary
files) is redone or removed on resume, and because rows are a pure function of their sample, the
redone shards have the same bytes.

Under several processes each writes its own shards (shard index ``rank * 10000 + k``, so the file
name ``synthetic-RKKKK.parquet`` starts with the process index) and its own manifest part
(``meta/manifest-rank{r}.json``); :func:`merge_manifests` joins them into ``meta/manifest.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streetsynth.repo import DATA_DIR, MANIFEST_PATH, atomic_write_text, parse_shard_name, write_shard

#: Shard indices per process; the index of shard k of process r is r * SHARDS_PER_RANK + k.
SHARDS_PER_RANK = 10000
#: How many processes the shard naming supports.
MAX_PROCESSES = 10


def manifest_part_path(repo: str | Path, rank: int, world: int) -> Path:
    """The manifest this process maintains: the shared one for a single process, a part otherwise."""
    if world == 1:
        return Path(repo) / MANIFEST_PATH
    return Path(repo) / MANIFEST_PATH.replace("manifest.json", f"manifest-rank{rank}.json")


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else {}


class ShardWriter:
    """Buffers rows of one process and writes full shards plus the manifest that lists them."""

    def __init__(self, repo: str | Path, config: str, split: str, features, rows_per_shard: int,
                 fingerprint: str, rank: int = 0, world: int = 1, manifest: str | None = None) -> None:
        """``manifest``: a repo-relative manifest path of its own (one writer per split of one repo)."""
        if rows_per_shard < 1:
            raise ValueError(f"rows_per_shard must be >= 1, got {rows_per_shard}")
        if not 0 <= rank < world <= MAX_PROCESSES:
            raise ValueError(f"process {rank} of {world}: at most {MAX_PROCESSES} processes are supported")
        self.repo, self.config, self.split, self.features = Path(repo), config, split, features
        self.rows_per_shard, self.fingerprint, self.rank, self.world = rows_per_shard, fingerprint, rank, world
        self.path = Path(repo) / manifest if manifest else manifest_part_path(repo, rank, world)
        self.manifest = read_manifest(self.path)
        if self.manifest and self.manifest.get("fingerprint") != fingerprint:
            raise ValueError(f"{self.path}: written by a run with fingerprint {self.manifest.get('fingerprint')}, "
                             f"not {fingerprint}; refusing to mix rows of different runs")
        self.manifest = {"fingerprint": fingerprint, "config": config, "split": split,
                         "shards": self.manifest.get("shards", [])}
        self._rows: list[dict[str, Any]] = []
        self._ids: list[str] = []
        self._failed: list[str] = []
        self._stats = {"attempts": 0, "rejected": 0}
        self._clean_stray_files()
        self._save()

    @property
    def shards(self) -> list[dict[str, Any]]:
        return self.manifest["shards"]

    def done_ids(self) -> set[str]:
        """Sample ids this process's manifest lists as complete (with a row or failed)."""
        return {i for s in self.shards for i in s["ids"] + s["failed"]}

    def add(self, sample_id: str, row: dict[str, Any] | None, attempts: int, rejected: int) -> None:
        """Queue a finished sample (``row`` None: every attempt was rejected); flush full shards."""
        self._stats["attempts"] += attempts
        self._stats["rejected"] += rejected
        if row is None:
            self._failed.append(sample_id)
            return
        self._rows.append(row)
        self._ids.append(sample_id)
        if len(self._rows) >= self.rows_per_shard:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as the next shard (if any) and record it, with failed ids."""
        if not self._rows and not self._failed:
            return
        entry: dict[str, Any] = {"path": None, "rows": len(self._rows), "ids": self._ids, "failed": self._failed,
                                 **self._stats}
        if self._rows:
            index = self.rank * SHARDS_PER_RANK + self._next_local_index()
            path = write_shard(self.repo, self.config, self.split, index, self._rows, self.features)
            entry["path"] = path.relative_to(self.repo).as_posix()
        self.shards.append(entry)
        self._save()
        self._rows, self._ids, self._failed = [], [], []
        self._stats = {"attempts": 0, "rejected": 0}

    def _next_local_index(self) -> int:
        return sum(1 for s in self.shards if s["path"])

    def _save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.manifest, indent=1) + "\n")

    def _clean_stray_files(self) -> None:
        """Remove this process's shards the manifest does not list, and leftover temporary files."""
        folder = self.repo / DATA_DIR / self.config
        if not folder.exists():
            return
        listed = {s["path"] for s in self.shards if s["path"]}
        lo = self.rank * SHARDS_PER_RANK
        for path in folder.iterdir():
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
                continue
            key = parse_shard_name(path.name)
            if key is not None and key[0] == self.split:
                index = key[1]
                if lo <= index < lo + SHARDS_PER_RANK and path.relative_to(self.repo).as_posix() not in listed:
                    path.unlink()


def merge_manifests(repo: str | Path, world: int, fingerprint: str) -> dict[str, Any]:
    """Join the per-process manifest parts into ``meta/manifest.json`` (no-op for one process)."""
    repo = Path(repo)
    if world == 1:
        return read_manifest(repo / MANIFEST_PATH)
    parts = [read_manifest(manifest_part_path(repo, r, world)) for r in range(world)]
    merged = {"fingerprint": fingerprint, "processes": world,
              "shards": [dict(s, rank=r) for r, p in enumerate(parts) for s in p.get("shards", [])]}
    for key in ("config", "split"):
        merged[key] = next((p[key] for p in parts if key in p), None)
    atomic_write_text(repo / MANIFEST_PATH, json.dumps(merged, indent=1) + "\n")
    return merged


def manifest_counts(manifest: dict[str, Any]) -> dict[str, Any]:
    """accepted rows, failed samples, attempts, rejected attempts, acceptance rate of a manifest."""
    shards = manifest.get("shards", [])
    accepted = sum(s["rows"] for s in shards)
    attempts = sum(s.get("attempts", 0) for s in shards)
    rejected = sum(s.get("rejected", 0) for s in shards)
    return {"accepted": accepted, "failed_samples": sum(len(s["failed"]) for s in shards),
            "attempts": attempts, "rejected_attempts": rejected,
            "acceptance_rate": (attempts - rejected) / attempts if attempts else 0.0,
            "shards": sum(1 for s in shards if s["path"])}
