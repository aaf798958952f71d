"""What every per-sample generation method shares: a resumable version, the row layout, the card.

Occlusion, re-rendering and grounded generation each turn samples into synthetic rows. They all
write through :class:`~streetsynth.generators.writer.ShardWriter` into ``STORE/vX.Y.Z`` with the
synthetic Features, so ``load_dataset(STORE/vX.Y.Z, split="synthetic")`` and ``train --synthetic``
read them like outpainted rows. A run is a pure function of its settings: a killed run resumes
from the manifest and redoes only unlisted samples, with the same seeds, so the same rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

import streetsynth
from streetsynth import codec
from streetsynth.cards.contact_sheet import Tile, render_sheet
from streetsynth.instances import Instances
from streetsynth.repo import write_info, write_readme
from streetsynth.schema import SYNTHETIC, SYNTHETIC_SPLIT, generation_feature, synthetic_features
from streetsynth.versions import fingerprint, resolve_version, store_lock

from .relabel import mask_box_only
from .writer import ShardWriter, manifest_counts, read_manifest

CONTACT_SHEET_PATH = "meta/contact_sheet.png"


@dataclass
class MethodRun:
    """An open version folder of one method's run and its writer."""

    method: str
    folder: Path
    tag: str
    resumed: bool
    fingerprint: str
    writer: ShardWriter

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


def open_run(method: str, out: str | Path, identity: dict[str, Any], version: str | None,
             rows_per_shard: int) -> MethodRun:
    """Resume the version of the same fingerprint (``identity`` + method + package), or start the next."""
    fp = fingerprint({"method": method, **identity, "package_version": streetsynth.__version__})
    with store_lock(out):  # another run may be choosing a version in this store right now
        folder, tag, resumed = resolve_version(str(out), fp, version)
        writer = ShardWriter(folder, SYNTHETIC, SYNTHETIC_SPLIT, synthetic_features(), rows_per_shard, fp)
    return MethodRun(method, Path(folder), tag, resumed, fp, writer)


def synthetic_row(sample_id: str, image: np.ndarray, inst: Instances, generation: dict[str, Any],
                  method: str, details: dict[str, Any], source: dict[str, Any] | None = None,
                  predictor=None) -> dict[str, Any]:
    """A row in the synthetic layout; scene fields come from ``source`` (the real row) when there is one.
    With a SAM ``predictor``, every object without a mask gets one from its box (``relabel.mask_box_only``)."""
    src = source or {}
    h, w = image.shape[:2]
    gen = {k: None for k in generation_feature()}
    gen.update(generation)
    gen.update(method=method, method_details=json.dumps(details, sort_keys=True),
               package_version=streetsynth.__version__)
    return {
        "id": sample_id, "segment": src.get("segment"), "timestamp_micros": src.get("timestamp_micros"),
        "metadata": src.get("metadata"), "image": {"bytes": codec.encode_lossless(image), "path": None}, "width": w, "height": h,
        **mask_box_only(inst.to_row(), image, predictor),
        "caption": src.get("caption"), "caption_source": src.get("caption_source"),
        "stitch": {"method": method, "yaw_deg": (src.get("stitch") or {}).get("yaw_deg"),
                   "front_x1": None, "right_x0": None},
        "generation": gen,
    }


def finish_run(run: MethodRun, info: dict[str, Any], card: str,
               sheet_pairs: Iterable[tuple[Tile, Tile]] = ()) -> dict[str, Any]:
    """Flush, write info.json, the README card and the before/after contact sheet; returns the counts."""
    run.writer.flush()
    counts = manifest_counts(read_manifest(run.writer.path))
    write_info(run.folder, {"kind": "synthetic", "method": run.method, "version": run.tag,
                            "fingerprint": run.fingerprint, "counts": counts,
                            "package_version": streetsynth.__version__, **info})
    tiles = [t for pair in sheet_pairs for t in pair]
    if tiles:
        render_sheet(tiles, run.folder / CONTACT_SHEET_PATH, columns=2,
                     heading=f"{run.method} {run.tag}: before (left) and after (right), with masks")
    body = (f"# Synthetic street scenes: {run.method} ({run.tag})\n\n{card}\n\n"
            f"Rows: {counts['accepted']} written, {counts['failed_samples']} samples dropped. "
            f"Provenance per row: `generation.method` = `{run.method}`, `generation.method_details` (JSON).\n\n"
            "Images derived from the Waymo Open Dataset are for non-commercial use under its terms: "
            "https://waymo.com/open/terms\n")
    write_readme(run.folder, body=body, default=SYNTHETIC)
    return counts
