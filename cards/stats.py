"""Statistics a dataset card states, computed from the repo's Parquet shards with pyarrow.

Sizes come from the Parquet footers (no data read); class and instance counts read only the
``objects*`` columns; generation statistics read only the ``generation`` column. Everything is
returned as plain, sorted dicts so the same repo always gives the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streetsynth import repo as repo_layout
from streetsynth.schema import CLASS_NAMES


@dataclass
class SplitStats:
    """Numbers for one config/split."""

    config: str
    split: str
    rows: int
    shards: int
    bytes: int
    #: ``{column: {class name: instances}}`` for each objects column (``objects``, ``objects_front``, ...).
    class_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    #: ``{column: {"mean", "min", "max", "empty"}}`` instances per image.
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)
    #: ``"HxW"`` -> rows, where the split has width/height columns.
    image_sizes: dict[str, int] = field(default_factory=dict)


@dataclass
class GenerationStats:
    """What the ``generation`` column of a synthetic split says about how rows were made."""

    models: list[dict[str, str]]
    prompts: list[str]
    negative_prompts: list[str]
    labelers: list[str]
    steps: list[int]
    guidance_scales: list[float]
    seam_thresholds: list[float]
    seam_score: dict[str, float]
    attempts: dict[str, float]


def shard_files(repo: str | Path, config: str, split: str) -> list[Path]:
    """The Parquet shards of ``config``/``split``, in order."""
    return repo_layout.shard_files(repo, config, split)


def _read_columns(files: list[Path], wanted: list[str]) -> pa.Table | None:
    """The ``wanted`` columns present in every shard, concatenated (None when none are present)."""
    if not files:
        return None
    names = set(pq.read_schema(files[0]).names)
    columns = [c for c in wanted if c in names]
    if not columns:
        return None
    return pa.concat_tables(pq.read_table(f, columns=columns) for f in files)


def _objects_stats(column: pa.ChunkedArray) -> tuple[dict[str, int], dict[str, float]]:
    lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False)
    categories = pc.list_flatten(column).combine_chunks()
    cats = pc.struct_field(categories, "category").to_numpy(zero_copy_only=False) if len(categories) else np.zeros(0, int)
    counts = np.bincount(cats.astype(np.int64), minlength=len(CLASS_NAMES)) if len(cats) else np.zeros(len(CLASS_NAMES), int)
    per_image = {
        "mean": round(float(lengths.mean()), 3) if len(lengths) else 0.0,
        "min": int(lengths.min()) if len(lengths) else 0,
        "max": int(lengths.max()) if len(lengths) else 0,
        "empty": int((lengths == 0).sum()),
    }
    return {name: int(n) for name, n in zip(CLASS_NAMES, counts)}, per_image


def split_stats(repo: str | Path, config: str, split: str) -> SplitStats:
    """Rows, shards, bytes, class counts, instances per image and image sizes of one split."""
    files = shard_files(repo, config, split)
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    stats = SplitStats(config, split, rows, len(files), sum(f.stat().st_size for f in files))
    if not files:
        return stats
    names = pq.read_schema(files[0]).names
    object_columns = sorted(c for c in names if c == "objects" or c.startswith("objects_"))
    table = _read_columns(files, object_columns + ["width", "height"])
    if table is None:
        return stats
    for col in object_columns:
        stats.class_counts[col], stats.per_image[col] = _objects_stats(table[col])
    if "width" in table.column_names and "height" in table.column_names:
        sizes = pa.table({"h": table["height"], "w": table["width"]}).group_by(["h", "w"]).aggregate([("h", "count")])
        triples = sorted(zip(*(sizes[c].to_pylist() for c in ("h", "w", "h_count"))))
        stats.image_sizes = {f"{h}x{w}": int(n) for h, w, n in triples}
    return stats


def dataset_stats(repo: str | Path) -> list[SplitStats]:
    """:func:`split_stats` for every config/split present under ``data/``."""
    return [split_stats(repo, config, split)
            for config, splits in repo_layout.data_configs(repo).items() for split in splits]


def _summary(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {"mean": 0.0, "min": 0.0, "max": 0.0}
    return {"mean": round(float(values.mean()), 4), "min": round(float(values.min()), 4),
            "max": round(float(values.max()), 4)}


def generation_stats(repo: str | Path, config: str, split: str) -> GenerationStats | None:
    """Distinct settings and seam/attempt summaries from the ``generation`` column (None without one)."""
    table = _read_columns(shard_files(repo, config, split), ["generation"])
    if table is None:
        return None
    gen = table["generation"].combine_chunks().flatten()
    cols: dict[str, Any] = dict(zip([f.name for f in table.schema.field("generation").type], gen))

    def distinct(name: str) -> list:
        return sorted(v for v in pc.unique(cols[name]).to_pylist() if v is not None) if name in cols else []

    models = pa.table({"model_id": cols["model_id"], "model_revision": cols["model_revision"]})
    pairs = sorted(set(zip(models["model_id"].to_pylist(), models["model_revision"].to_pylist())))
    return GenerationStats(
        models=[{"model_id": m or "", "revision": r or ""} for m, r in pairs],
        prompts=distinct("prompt"),
        negative_prompts=distinct("negative_prompt"),
        labelers=distinct("labeler"),
        steps=distinct("steps"),
        guidance_scales=[round(v, 4) for v in distinct("guidance_scale")],
        seam_thresholds=[round(v, 4) for v in distinct("seam_threshold")],
        seam_score=_summary(cols["seam_score"].to_numpy(zero_copy_only=False).astype(np.float64)),
        attempts=_summary(cols["attempts"].to_numpy(zero_copy_only=False).astype(np.float64)),
    )


def size_category(rows: int) -> str:
    """The Hub ``size_categories`` tag for a number of rows."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
    for bound, name in bounds:
        if rows < bound:
            return name
    return "1B<n<10B"
