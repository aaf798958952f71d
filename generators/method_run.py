"""How every generation method writes a version: open, one row per sample, finish.

Outpainting, occlusion, re-rendering and grounded generation each turn samples into synthetic
rows. They all write through :class:`~streetsynth.generators.writer.ShardWriter` into
``STORE/vX.Y.Z`` with the synthetic Features, so ``load_dataset(STORE/vX.Y.Z, split="synthetic")``
and ``train --synthetic`` read them alike. A run is a pure function of its settings: a killed run
resumes from the manifest and redoes only unlisted samples, with the same seeds, so the same rows.
What a finished run publishes (info.json counts, the contact sheet) is computed from the rows of
the whole version, so a resumed run describes everything, not only its own share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

import streetsynth
from streetsynth import codec
from streetsynth.contact_sheet import Tile, render_sheet
from streetsynth.instances import Instances
from streetsynth.repo import INFO_PATH, mark_unfinished, source_record, write_info, write_readme  # noqa: F401 - source_record: for the methods
from streetsynth.schema import SYNTHETIC, SYNTHETIC_SPLIT, generation_feature, synthetic_features
from streetsynth.text import percent
from streetsynth.versions import check_version, fingerprint, resolve_version, store_lock

from .relabel import mask_box_only
from .writer import ShardWriter, manifest_counts, merge_manifests, read_manifest

CONTACT_SHEET_PATH = "meta/contact_sheet.png"
#: The columns the contact sheet reads from a version's shards.
SHEET_COLUMNS = ["id", "width", "height", "image", "objects", "instance_mask", "generation"]


@dataclass
class MethodResult:
    """What every method's run returns."""

    folder: Path  # the version folder written
    tag: str  # its version tag, e.g. v0.1.0
    resumed: bool  # whether an unfinished or finished run of the same fingerprint was continued
    counts: dict[str, Any]  # accepted, failed_samples, attempts, rejected_attempts, acceptance_rate, shards
    contact_sheet: Path | None  # the contact sheet PNG (process 0 only)
    model_id: str
    model_revision: str
    rank: int = 0  # this process's index (only process 0 writes info, README and the contact sheet)

    def __getitem__(self, key: str) -> Any:
        """``result["folder"]``: callers written when the methods returned dicts keep working."""
        return getattr(self, key)


@dataclass
class MethodRun:
    """An open version folder of one method's run and its writer."""

    method: str
    folder: Path
    tag: str
    resumed: bool
    fingerprint: str
    writer: ShardWriter
    rank: int = 0
    world: int = 1

    def done(self) -> set[str]:
        return self.writer.done_ids()


@dataclass(kw_only=True)
class MethodRunOptions:
    """What every method's config shares: where its randomness starts, where it runs, how it writes."""

    seed: int = 0  # run seed; every sample's seed derives from it
    device: str = "cpu"  # torch device
    dtype: str | None = None  # model dtype: fp32, fp16 or bf16 (default: the device's usual)
    version: str | None = None  # version X.Y.Z to write (default: resume the same settings, or next patch)
    rows_per_shard: int = 64  # rows per Parquet shard
    sheet_samples: int = 4  # samples on the contact sheet
    pipeline: Any = field(default=None, repr=False)  # an injected pipeline instead of loading ``model``


def format_result(res: MethodResult, dropped: str) -> str:
    """The line a command prints for a finished run; ``dropped`` says what dropping means for the method."""
    c = res.counts
    lines = [f"{'resumed' if res.resumed else 'wrote'} {res.tag} at {res.folder}: {c['accepted']} rows, "
             f"{c['failed_samples']} samples {dropped}, {c['rejected_attempts']} rejected attempts, acceptance "
             f"{percent(c.get('acceptance_rate'))}; model {res.model_id}@{res.model_revision}"]
    if res.contact_sheet:
        lines.append(f"contact sheet: {res.contact_sheet}")
    return "\n".join(lines)


def method_fingerprint(method: str, identity: dict[str, Any]) -> str:
    """The fingerprint of a method's run: its identity (source, model, settings), method and package."""
    return fingerprint({"method": method, **identity, "package_version": streetsynth.__version__})


def open_run(method: str, out: str | Path, fp: str, version: str | None, rows_per_shard: int,
             rank: int = 0, world: int = 1, barrier: Callable[[], None] = lambda: None) -> MethodRun:
    """Resume the version of fingerprint ``fp``, or start the next; process 0 chooses, the others follow."""
    check_version(version)  # before the store folder or its lock exist
    if rank == 0:
        with store_lock(out):  # another run may be choosing a version in this store right now
            folder, tag, resumed = resolve_version(str(out), fp, version)
            if not (Path(folder) / INFO_PATH).exists():  # before any file a README-less folder would load
                mark_unfinished(folder, SYNTHETIC, SYNTHETIC_SPLIT)
            writer = ShardWriter(folder, SYNTHETIC, SYNTHETIC_SPLIT, synthetic_features(), rows_per_shard, fp,
                                 rank, world)
        if world > 1:
            merge_manifests(folder, world, fp)
    barrier()
    if rank != 0:
        folder, tag, resumed = resolve_version(str(out), fp, version)
        writer = ShardWriter(folder, SYNTHETIC, SYNTHETIC_SPLIT, synthetic_features(), rows_per_shard, fp, rank, world)
    return MethodRun(method, Path(folder), tag, resumed, fp, writer, rank, world)


def synthetic_row(sample_id: str, image: np.ndarray, labels: Instances | dict[str, Any], generation: dict[str, Any],
                  method: str, details: dict[str, Any] | None = None, source: dict[str, Any] | None = None,
                  known_width: int | None = None, predictor=None) -> dict[str, Any]:
    """A row in the synthetic layout; scene fields come from ``source`` (the real row) when there is one.

    ``labels`` are instances or their row fields; ``known_width`` is the outpainted canvas's kept width.
    With a SAM ``predictor``, every object without a mask gets one from its box (``relabel.mask_box_only``).
    """
    src = source or {}
    h, w = image.shape[:2]
    gen = {k: None for k in generation_feature()}
    gen.update(generation)
    gen.update(method=method, package_version=streetsynth.__version__,
               method_details=None if details is None else json.dumps(details, sort_keys=True))
    return {
        "id": sample_id, "segment": src.get("segment"), "timestamp_micros": src.get("timestamp_micros"),
        "metadata": src.get("metadata"), "image": {"bytes": codec.encode_lossless(image), "path": None},
        "width": w, "height": h, **mask_box_only(labels.to_row() if isinstance(labels, Instances) else labels, image, predictor),
        "caption": src.get("caption"), "caption_source": src.get("caption_source"),
        "stitch": {"method": method, "yaw_deg": (src.get("stitch") or {}).get("yaw_deg"),
                   "front_x1": known_width, "right_x0": known_width},
        "generation": gen,
    }


def finish_counts(run: MethodRun, what: str, barrier: Callable[[], None] = lambda: None
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Flush, wait for every process (``barrier``), merge their manifests (process 0) and count the whole
    version. A version without a single row is refused: ``what`` says why samples were dropped.
    """
    run.writer.flush()
    barrier()
    manifest = merge_manifests(run.folder, run.world, run.fingerprint) if run.rank == 0 else \
        read_manifest(run.writer.path)
    counts = manifest_counts(manifest)
    if counts["accepted"] == 0:
        raise ValueError(f"{run.folder}: 0 rows accepted from {counts['attempts']} attempts ({what}); "
                         f"{run.tag} is left unpublished (no info.json)")
    return manifest, counts


def version_rows(run: MethodRun, manifest: dict[str, Any], k: int) -> list[dict[str, Any]]:
    """The first ``k`` rows of the whole version (every run's shards), in manifest order."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for shard in manifest.get("shards", []):
        if len(rows) >= k:
            break
        if shard["path"]:
            rows += pq.read_table(run.folder / shard["path"], columns=SHEET_COLUMNS).to_pylist()[: k - len(rows)]
    return rows


def row_tile(row: dict[str, Any], title: str, border: tuple[int, int, int] | None = None) -> Tile:
    """A contact-sheet tile of a written row with its masks."""
    return Tile(codec.decode(row["image"]["bytes"], row["id"]), title, Instances.from_row(row), border=border)


def before_after(source, before: str, after: Callable[[dict[str, Any], dict[str, Any]], str]
                 ) -> Callable[[dict[str, Any]], tuple[Tile, Tile]]:
    """The contact-sheet pair of a written row made from a real one: the real row (titled ``before``) beside
    it (titled ``after(row, method_details)``); the real row is found by ``method_details.source_id``."""
    index = {rid: i for i, rid in enumerate(source["id"])}

    def pair(written: dict[str, Any]) -> tuple[Tile, Tile]:
        details = json.loads(written["generation"]["method_details"])
        real = source[index[details["source_id"]]]
        return (Tile(codec.to_rgb(real["image"], real["id"]), f"{real['id']} {before}", Instances.from_row(real)),
                row_tile(written, after(written, details)))

    return pair


def finish_run(run: MethodRun, info: dict[str, Any], card: str | None, tiles: Iterable[Tile] = (),
               heading: str = "", columns: int = 2) -> Path | None:
    """Write info.json, the README card (``None``: a data-only README) and the contact sheet of ``tiles``.

    ``info`` holds what this method adds to the shared keys; ``counts`` among them must come from
    :func:`finish_counts`. Returns the contact sheet's path, ``None`` without tiles.
    """
    counts = info.pop("counts")
    write_info(run.folder, {"kind": "synthetic", "method": run.method, "version": run.tag,
                            "fingerprint": run.fingerprint, "counts": counts,
                            "package_version": streetsynth.__version__, **info})
    tiles = list(tiles)
    sheet = render_sheet(tiles, run.folder / CONTACT_SHEET_PATH, columns=columns, heading=heading) if tiles else None
    body = None if card is None else (
        f"# Synthetic street scenes: {run.method} ({run.tag})\n\n{card}\n\n"
        f"Rows: {counts['accepted']} written, {counts['failed_samples']} samples dropped. "
        f"Provenance per row: `generation.method` = `{run.method}`, `generation.method_details` (JSON).\n\n"
        "Images derived from the Waymo Open Dataset are for non-commercial use under its terms: "
        "https://waymo.com/open/terms\n")
    write_readme(run.folder, body=body, default=SYNTHETIC)
    return sheet


def finish_pairs(run: MethodRun, info: dict[str, Any], card: str, rows: list[dict[str, Any]],
                 pair: Callable[[dict[str, Any]], tuple[Tile, Tile]]) -> MethodResult:
    """Finish a per-sample method: a before/after contact sheet of the version's first ``rows``."""
    tiles = [t for row in rows for t in pair(row)]
    sheet = finish_run(run, dict(info), card, tiles,
                       heading=f"{run.method} {run.tag}: before (left) and after (right), with masks")
    model = info.get("model") or {}
    return MethodResult(run.folder, run.tag, run.resumed, info["counts"], sheet, model.get("id"),
                        model.get("revision"), run.rank)
