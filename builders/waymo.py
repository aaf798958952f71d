"""The REAL dataset: a ``datasets`` builder over Waymo segments (v1 TFRecords or v2 Parquet).

Configs: ``stitched`` (default; one wide FRONT + FRONT_RIGHT scene per frame, labels carried into
it) and ``pairs`` (the two camera images side by side as columns, labels in camera pixels).
Splits come from the source's ``training/`` / ``validation/`` folders, or from a hash of the
segment name, so the frames of one segment never land in two splits. Work is sharded by segment
file (``gen_kwargs`` hold lists of files), so ``download_and_prepare(num_proc=N)`` parallelises.

datasets 5 refuses dataset scripts in ``load_dataset``, so :func:`build_real` runs the builder
from code and lays its Parquet output out as a streetsynth repo (``streetsynth.repo``) that
``datasets.load_dataset(REPO, "stitched", split="train")`` reads with the declared Features.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import cv2
import datasets
import multiprocess
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streetsynth import __version__
from streetsynth import codec
from streetsynth import repo as repo_layout
from streetsynth.camera import Surface
from streetsynth.schema import CLASS_NAMES, PAIRS, STITCHED, pairs_features, stitched_features
from streetsynth.tfrecord import ReadStats
from streetsynth.versions import fingerprint

from . import waymo_v1, waymo_v2
from .calibration_checks import check_frame
from .captions import SOURCES, CaptionContext, Captioner, class_counts, make_captioner
from .frames import FrameError, FrameRecord
from .stitch import DEFAULT_SURFACE, VIEWS, calibrated_geometry, stitch
from .stitch_labels import box_instances, camera_instances, panoptic_semantic, seam_objects, stitched_instances

CONFIGS = (STITCHED, PAIRS)
ON_ERROR = ("raise", "skip")
IMAGE_FORMATS = ("jpeg", "png")
WAYMO_TERMS = "https://waymo.com/open/terms"


@contextmanager
def clean_workers() -> Iterator[None]:
    """Make ``download_and_prepare(num_proc=N)`` start its workers from a fork server.

    datasets' pool forks the calling process by default, and thread pools the caller already
    used (torch's OpenMP, OpenCV's) do not survive a fork: the child's first parallel op, or
    resetting the pool, waits forever. A fork server is a fresh single-threaded process that has
    imported this module once; workers forked from it start clean and fast, and it is reused by
    later builds in the same process.
    """
    previous = multiprocess.get_start_method(allow_none=True)
    multiprocess.set_forkserver_preload([__name__])
    multiprocess.set_start_method("forkserver", force=True)
    try:
        yield
    finally:
        multiprocess.set_start_method(previous, force=True)


def single_threaded_in_worker() -> None:
    """One torch and OpenCV thread per worker process: the processes share the cores. The builder
    itself needs no torch; a captioner model brings it."""
    if multiprocess.parent_process() is not None:
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
        cv2.setNumThreads(1)


@dataclass
class WaymoStitchedConfig(datasets.BuilderConfig):
    """Settings of one build; every field is recorded in ``meta/info.json``."""

    source_dir: str | None = None  # folder of Waymo v1 *.tfrecord files or v2 component folders
    size: tuple[int, int] = (512, 1024)  # stitched image (height, width); ignored by ``pairs``
    captions: str = "template"  # caption source: manual | template | clip | blip
    prompts_file: str | None = None  # prompts for ``manual``: one per line, or CSV id,prompt
    caption_model: str | None = None  # Hub id or local path of the CLIP/BLIP model
    on_error: str = "raise"  # bad frame: "raise" stops the build, "skip" counts it and goes on
    image_format: str = "jpeg"  # stitched image encoding: jpeg | png
    jpeg_quality: int = 95  # JPEG quality of stitched images
    validation_percent: int = 20  # unsplit sources: share of segments hashed into validation
    report_dir: str | None = None  # where each segment file's skip/method report is written
    surface: str = DEFAULT_SURFACE.kind  # projection surface: ground+cylinder | cylinder | infinity (rotation only)
    surface_radius: float = DEFAULT_SURFACE.radius  # metres from the cameras to the cylinder (and where the ground plane ends)


class WaymoStitched(datasets.GeneratorBasedBuilder):
    """Builder of the real streetsynth dataset; see the module docstring."""

    BUILDER_CONFIG_CLASS = WaymoStitchedConfig
    BUILDER_CONFIGS = [
        WaymoStitchedConfig(name=STITCHED, description="FRONT + FRONT_RIGHT stitched into one wide scene"),
        WaymoStitchedConfig(name=PAIRS, description="FRONT and FRONT_RIGHT as two image columns"),
    ]
    DEFAULT_CONFIG_NAME = STITCHED

    def _info(self) -> datasets.DatasetInfo:
        feats = stitched_features() if self.config.name == STITCHED else pairs_features()
        return datasets.DatasetInfo(description=self.config.description, features=feats, license=WAYMO_TERMS)

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        cfg = self.config
        check_settings(cfg)
        files = split_segments(source_files(cfg.source_dir), cfg.validation_percent)
        order = {f: i for i, f in enumerate(sorted(f for fs in files.values() for f in fs))}
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"files": [str(f) for f in fs],
                                                            "indices": [order[f] for f in fs]})
            for split, fs in files.items()
        ]

    def _generate_examples(self, files: list[str], indices: list[int]) -> Iterator[tuple[str, dict]]:
        cfg = self.config
        single_threaded_in_worker()
        captioner = cached_captioner(cfg.captions, cfg.prompts_file, cfg.caption_model)
        for path, seg_index in zip(files, indices):
            report = SegmentReport(path)
            try:
                yield from self._segment_rows(path, seg_index, captioner, report)
            except FrameError as exc:  # the segment file itself is unreadable (a frame's own errors are caught below)
                if cfg.on_error == "raise":
                    raise
                report.unreadable = str(exc)
            if report.stats.records + report.stats.skipped == 0 and not report.unreadable:
                empty = FrameError(f"{path}: empty segment file ({Path(path).stat().st_size} bytes, no frames)")
                if cfg.on_error == "raise":
                    raise empty
                report.unreadable = str(empty)
            report.write(cfg.report_dir)

    def _segment_rows(self, path: str, seg_index: int, captioner: Captioner,
                      report: "SegmentReport") -> Iterator[tuple[str, dict]]:
        """Rows of one segment file; each bad frame raises or is counted in ``report``."""
        cfg, stats, seen = self.config, report.stats, set()
        for k, rec in enumerate(read_segment(path, cfg.on_error, stats)):
            if rec.id in seen:  # a repeated frame would give a second row with the same id
                stats.records -= 1
                stats.skip(FrameError(f"{rec.source}: duplicate frame id {rec.id}: skipped"))
                continue
            seen.add(rec.id)
            try:
                check_frame(rec, VIEWS)
                if cfg.name == STITCHED:
                    row = stitched_row(rec, cfg.size, captioner, seg_index, k, cfg.image_format, cfg.jpeg_quality,
                                       Surface(cfg.surface, cfg.surface_radius))
                    check_stitch(row["stitch"], row["width"])
                    report.methods[row["stitch"]["method"]] = report.methods.get(row["stitch"]["method"], 0) + 1
                else:
                    row = pairs_row(rec, captioner, seg_index, k)
            except Exception as exc:  # under skip, any per-frame failure is a counted skip with its reason
                if cfg.on_error == "raise" and not isinstance(exc, (FrameError, ValueError)):
                    raise
                what = str(exc) if isinstance(exc, (FrameError, ValueError)) else f"{type(exc).__name__}: {exc}"
                where = "" if rec.source in what else f"{rec.source}: frame {rec.timestamp_micros}: "
                err = FrameError(where + what)
                if cfg.on_error == "raise":
                    raise err from None
                stats.records -= 1
                stats.skip(err)
                continue
            report.uncalibrated += any(rec.cameras[n].calibration is None for n in VIEWS)
            yield rec.id, row


def check_settings(cfg: WaymoStitchedConfig) -> None:
    """ValueError naming the bad setting (raised before any frame is read)."""
    if cfg.name not in CONFIGS:
        raise ValueError(f"unknown config {cfg.name!r}; known: {', '.join(CONFIGS)}")
    if cfg.source_dir is None:
        raise ValueError("source_dir is required: a folder of Waymo v1 TFRecords or v2 Parquet components")
    if cfg.captions not in SOURCES:
        raise ValueError(f"unknown caption source {cfg.captions!r}; known: {', '.join(SOURCES)}")
    if cfg.captions == "manual" and not cfg.prompts_file:
        raise ValueError("captions 'manual' need a prompts file")
    if cfg.on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {cfg.on_error!r}")
    if not (isinstance(cfg.surface_radius, (int, float)) and math.isfinite(cfg.surface_radius) and cfg.surface_radius > 0):
        raise ValueError(f"surface_radius (--surface-radius) must be a finite number of metres > 0, got {cfg.surface_radius}")
    Surface(cfg.surface, cfg.surface_radius)  # ValueError naming a bad surface
    if cfg.image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {cfg.image_format!r}")
    h, w = cfg.size
    if not (16 <= h <= MAX_SIDE and 16 <= w <= MAX_SIDE):
        raise ValueError(f"size must lie between 16x16 and {MAX_SIDE}x{MAX_SIDE}, got {h}x{w}")


#: The largest stitched side a build accepts (pixels).
MAX_SIDE = 8192


def check_stitch(stitch_fields: dict[str, Any], width: int) -> None:
    """FrameError when either camera contributes no column to the stitched scene."""
    if stitch_fields["front_x1"] <= 0 or stitch_fields["right_x0"] >= width:
        raise FrameError(f"stitch: one view contributes nothing (front ends at column {stitch_fields['front_x1']}, "
                         f"front_right starts at {stitch_fields['right_x0']} of {width})")


def segment_context_name(path: str | os.PathLike) -> str:
    """The segment a file holds, from its content (``context.name`` of its first frame, or v2's
    ``key.segment_context_name``); the file name where the file holds no readable frame."""
    if Path(path).suffix == ".parquet":  # an unreadable file keeps its name; the reader reports it under the policy
        try:
            col = pq.read_table(path, columns=[waymo_v2.SEGMENT]).column(0)
        except (pa.ArrowInvalid, OSError, KeyError):
            return segment_name(path)
        return str(col[0]) if len(col) else segment_name(path)
    for _, frame in waymo_v1.read_frames(path, "skip"):
        return frame.context.name or segment_name(path)
    return segment_name(path)


def refuse_repeated_segments(files: dict[str, list[Path]]) -> None:
    """ValueError naming both files when one segment (by content) is in two files, in one split or two."""
    where: dict[str, tuple[str, Path]] = {}
    for split, fs in sorted(files.items()):
        for f in fs:
            name = segment_context_name(f)
            if name in where:
                other_split, other = where[name]
                raise ValueError(f"segment {name} is in both {other} ({other_split or 'unsplit'}) and {f} "
                                 f"({split or 'unsplit'}); remove one copy")
            where[name] = (split, f)


def source_format(source: str | os.PathLike) -> str:
    """``"v2"`` for a folder of v2 component folders, else ``"v1"``."""
    return "v2" if waymo_v2.is_v2(source) else "v1"


def source_files(source: str | os.PathLike) -> dict[str, list[Path]]:
    """Segment files by split (``""`` where the layout names none); FileNotFoundError if none."""
    files = waymo_v2.segment_files(source) if source_format(source) == "v2" else waymo_v1.segment_files(source)
    if not any(files.values()):
        raise FileNotFoundError(f"{source}: no Waymo segments (*.tfrecord or camera_image/*.parquet) found")
    return files


def segment_name(path: str | os.PathLike) -> str:
    """The segment a file holds, from its name (v1 ``segment-<name>_with_camera_labels``, v2 ``<name>``)."""
    stem = Path(path).stem
    return stem.removeprefix("segment-").removesuffix("_with_camera_labels")


def hash_split(segment: str, validation_percent: int) -> str:
    """``train`` or ``validation`` from a stable hash of the segment name."""
    bucket = int(hashlib.sha256(segment.encode()).hexdigest()[:8], 16) % 100
    return "validation" if bucket < validation_percent else "train"


def split_segments(files: dict[str, list[Path]], validation_percent: int = 20) -> dict[str, list[Path]]:
    """Named splits kept; files under ``""`` assigned by :func:`hash_split` of their segment's own name
    (``context.name``, not the file name); a segment in two files is refused."""
    refuse_repeated_segments(files)
    out: dict[str, list[Path]] = {}
    for split, fs in files.items():
        for f in fs:
            out.setdefault(split or hash_split(segment_context_name(f), validation_percent), []).append(f)
    return {s: sorted(fs) for s, fs in sorted(out.items())}


def read_segment(path: str | os.PathLike, on_error: str, stats: ReadStats) -> Iterator[FrameRecord]:
    """FrameRecords of one segment file, whichever format it is."""
    if Path(path).suffix == ".parquet":
        return waymo_v2.read_records(path, on_error, stats)
    return waymo_v1.read_records(path, on_error, stats)


_CAPTIONERS: dict[tuple, Captioner] = {}


def cached_captioner(source: str, prompts: str | None, model: str | None) -> Captioner:
    """One captioner per process and settings (models load once per worker)."""
    key = (source, prompts, model)
    if key not in _CAPTIONERS:
        _CAPTIONERS[key] = make_captioner(source, prompts, model)
    return _CAPTIONERS[key]


def _common(rec: FrameRecord) -> dict[str, Any]:
    return {"id": rec.id, "segment": rec.segment, "timestamp_micros": int(rec.timestamp_micros),
            "metadata": {"time_of_day": rec.time_of_day, "location": rec.location, "weather": rec.weather}}


def _context(rec: FrameRecord, classes: np.ndarray, seg_index: int, frame_index: int) -> CaptionContext:
    return CaptionContext(rec.id, rec.time_of_day, rec.location, rec.weather, class_counts(classes), seg_index, frame_index)


def stitched_row(rec: FrameRecord, size: tuple[int, int] | None, captioner: Captioner, seg_index: int = 0,
                 frame_index: int = 0, image_format: str = "jpeg", quality: int = 95,
                 surface: Surface = DEFAULT_SURFACE) -> dict[str, Any]:
    """One ``stitched`` row: decode, stitch, carry labels, caption, encode.

    Pixels stay BGR from OpenCV's decode to the encode. Where the canvas samples the views at half
    their resolution or less, the JPEGs are decoded at half size (the maps follow the image size).
    """
    front, right = rec.cameras["FRONT"], rec.cameras["FRONT_RIGHT"]
    reduce = decode_reduction(front.calibration, right.calibration, size, surface)
    st = stitch(front.decode_bgr(reduce), right.decode_bgr(reduce), front.calibration, right.calibration, size,
                surface=surface, bgr=True, what=rec.source, keep=lambda g: seam_objects(rec, g))
    inst = stitched_instances(rec, st.geometry, st.seam)
    caption = captioner(st.image[..., ::-1], _context(rec, inst.classes, seg_index, frame_index))  # an RGB view, no copy
    h, w = st.image.shape[:2]
    labels = inst.to_row()
    if inst.masks is not None:  # the frame's panoptic label gave these masks; box-only objects have none yet
        for obj, mask in zip(labels["objects"], inst.masks):
            obj["mask_source"] = "panoptic" if mask.any() else None
    panoptic = all(rec.cameras[n].panoptic is not None for n in ("FRONT", "FRONT_RIGHT"))
    semantic = {"bytes": codec.encode(panoptic_semantic(rec, st.geometry, st.seam), "png"), "path": None} if panoptic else None
    return {**_common(rec), "image": {"bytes": codec.encode(st.image, image_format, quality, bgr=True), "path": None},
            "width": w, "height": h, **labels, "semantic_mask": semantic, "caption": caption,
            "caption_source": captioner.source, "stitch": st.to_feature()}


def decode_reduction(front_cam, right_cam, size: tuple[int, int] | None, surface: Surface = DEFAULT_SURFACE) -> int:
    """2 when the calibrated canvas samples both views at half their resolution or less, else 1."""
    if front_cam is None or right_cam is None or size is None:
        return 1
    g = calibrated_geometry(front_cam, right_cam, size, surface)
    return 2 if min(g.views["FRONT"].scale) >= 2.0 else 1


def pairs_row(rec: FrameRecord, captioner: Captioner, seg_index: int = 0, frame_index: int = 0) -> dict[str, Any]:
    """One ``pairs`` row: the two JPEGs as they are, each camera's boxes in its own pixels.

    The caption counts objects once: where both calibrations exist, boxes seen by both cameras
    are merged as in the stitched config.
    """
    front, right = rec.cameras["FRONT"], rec.cameras["FRONT_RIGHT"]
    per_cam = {n: camera_instances(rec.cameras[n]) for n in VIEWS}
    if front.calibration is not None and right.calibration is not None:
        classes = box_instances(rec, calibrated_geometry(front.calibration, right.calibration)).classes
    else:
        classes = np.concatenate([per_cam[n].classes for n in VIEWS])
    image = None
    if getattr(captioner, "source", "") in ("clip", "blip"):
        a, b = front.decode(), right.decode()
        image = np.concatenate([a, cv2.resize(b, (b.shape[1] * a.shape[0] // b.shape[0], a.shape[0]))], axis=1)
    caption = captioner(image, _context(rec, classes, seg_index, frame_index))
    return {**_common(rec), "front": {"bytes": front.image, "path": None}, "front_right": {"bytes": right.image, "path": None},
            "objects_front": per_cam["FRONT"].to_row()["objects"],
            "objects_front_right": per_cam["FRONT_RIGHT"].to_row()["objects"],
            "caption": caption, "caption_source": captioner.source}


@dataclass
class SegmentReport:
    """Per segment file: frames kept, skipped and why, stitch methods, frames stitched without a
    calibration, and why the file gave no frame at all (empty or unreadable); gathered by build_real."""

    file: str
    stats: ReadStats = field(default_factory=ReadStats)
    methods: dict[str, int] = field(default_factory=dict)
    uncalibrated: int = 0
    unreadable: str = ""

    def write(self, report_dir: str | None) -> None:
        if not report_dir:
            return
        name = hashlib.sha256(str(self.file).encode()).hexdigest()[:16] + ".json"
        s = self.stats
        repo_layout.atomic_write_text(Path(report_dir) / name, json.dumps(
            {"file": str(self.file), "frames": s.records, "skipped": s.skipped, "errors": s.errors,
             "methods": self.methods, "uncalibrated": self.uncalibrated, "unreadable": self.unreadable}))


def source_fingerprint(files: list[Path]) -> list[dict[str, Any]]:
    """Name, size and a hash of the first and last 64 KiB of each file (cheap on terabytes)."""
    out = []
    for f in sorted(files):
        size = f.stat().st_size
        h = hashlib.blake2b(digest_size=8)
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 16))
            fh.seek(max(0, size - (1 << 16)))
            h.update(fh.read())
        out.append({"name": f.name, "size": size, "hash": h.hexdigest()})
    return out


@dataclass
class BuildSummary:
    """What a build made: rows per split, objects per class, skipped frames and why."""

    repo: str
    config: str
    rows: dict[str, int]
    objects: dict[str, int]
    skipped: int
    reasons: list[str]
    methods: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    fingerprint: str = ""
    uncalibrated: int = 0  # rows stitched by registration because a calibration was absent (empty extrinsic)
    unreadable: list[str] = field(default_factory=list)  # segment files that gave no frame, and why

    def __getitem__(self, key: str) -> Any:
        """``summary["rows"]`` reads for callers written when build_real returned a dict."""
        return getattr(self, key)

    def format(self) -> str:
        """The printed summary: rows per split, objects per class, stitch methods, what was skipped."""
        lines = [f"built {self.config} into {self.repo} in {self.seconds:.1f} s (fingerprint {self.fingerprint})"]
        lines += [f"  {split}: {n} rows" for split, n in self.rows.items()]
        lines.append("  objects: " + ", ".join(f"{c} {n}" for c, n in self.objects.items()))
        if self.methods:
            lines.append("  stitched by: " + ", ".join(f"{m} {n}" for m, n in self.methods.items()))
        if self.uncalibrated:
            lines.append(f"  frames without a calibration (registered from features): {self.uncalibrated}")
        if self.unreadable:
            lines.append(f"  segment files with no frame: {len(self.unreadable)}")
            lines += [f"    - {r}" for r in self.unreadable]
        lines.append(f"  skipped frames: {self.skipped}")
        lines += [f"    - {r}" for r in self.reasons[:20]]
        if len(self.reasons) > 20:
            lines.append(f"    ... and {len(self.reasons) - 20} more (all in meta/info.json)")
        return "\n".join(lines)


def _shard_files(builder: datasets.DatasetBuilder, split: str) -> list[Path]:
    out = Path(builder.cache_dir)
    return sorted(p for p in out.glob(f"{builder.dataset_name}-{split}*.parquet"))


def _objects_per_class(files: list[Path], config: str) -> dict[str, int]:
    counts = dict.fromkeys(CLASS_NAMES, 0)
    cols = ["objects"] if config == STITCHED else ["objects_front", "objects_front_right"]
    for f in files:
        table = pq.read_table(f, columns=cols)
        for c in cols:
            for objs in table.column(c).to_pylist():
                for o in objs or []:
                    counts[CLASS_NAMES[o["category"]]] += 1
    return counts


def refuse_nested(source: Path, out: Path) -> None:
    """ValueError when ``out`` is ``source``, lies inside it, or holds it: the build replaces ``out``."""
    src, dst = source.resolve(), out.resolve()
    if dst == src or src in dst.parents:
        raise ValueError(f"--out {out} lies inside --source {source}: the repo would hold the raw segments; "
                         "choose an --out outside the source folder")
    if dst in src.parents:
        raise ValueError(f"--source {source} lies inside --out {out}, which the build replaces; move one of them")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_builds(out: Path) -> list[Path]:
    """Remove ``.OUT.building-*-PID`` folders left by builds whose process is gone; returns them."""
    removed = []
    for d in out.parent.glob(f".{out.name}.building-*"):
        pid = d.name.rsplit("-", 1)[-1]
        if d.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def refuse_empty_splits(rows: dict[str, int], reasons: list[str], unreadable: list[str] = ()) -> None:
    """ValueError when the build has no rows at all, or a split ends with 0 rows (with the first skip
    reason, and the first segment file that gave no frame)."""
    empty = sorted(s for s, n in rows.items() if n == 0)
    if not rows or empty:
        why = f"; {len(reasons)} frames skipped, first: {reasons[0]}" if reasons else ""
        why += f"; {len(unreadable)} segment file(s) gave no frame, first: {unreadable[0]}" if unreadable else ""
        raise ValueError(f"split(s) {', '.join(empty) or 'all'} ended with 0 rows{why}")


#: Keyword names of the earlier ``build_real(source, out, **settings)`` form that differ from the
#: config's field names.
_OLD_NAMES = {"config": "name", "prompts": "prompts_file", "clip_model": "caption_model"}


def config_for(source: str | os.PathLike, **settings: Any) -> WaymoStitchedConfig:
    """The config of the keyword form ``build_real(source, out, size=..., prompts=..., ...)`` that
    callers written before the config was the interface still use."""
    fields = {_OLD_NAMES.get(k, k): v for k, v in settings.items()}
    fields["name"] = fields.get("name") or STITCHED
    if fields.get("prompts_file") is not None:
        fields["prompts_file"] = str(fields["prompts_file"])
    return WaymoStitchedConfig(source_dir=str(source), **fields)


def recorded_settings(cfg: WaymoStitchedConfig) -> dict[str, Any]:
    """The settings a build records in ``meta/info.json`` (and its fingerprint covers)."""
    return {"config": cfg.name, "size": list(cfg.size), "captions": cfg.captions,
            "prompts": repo_layout.file_record(cfg.prompts_file), "caption_model": repo_layout.local_name(cfg.caption_model), "on_error": cfg.on_error, "image_format": cfg.image_format,
            "validation_percent": cfg.validation_percent, "surface": cfg.surface,
            "surface_radius": float(cfg.surface_radius)}


def build_real(cfg: WaymoStitchedConfig | str | os.PathLike, out: str | os.PathLike, num_proc: int = 1,
               **settings: Any) -> BuildSummary:
    """Build config ``cfg.name`` of the real dataset from ``cfg.source_dir`` into the repo folder ``out``.

    Everything is built in a temporary folder beside ``out`` and moved into place at the end, so
    an interrupted build leaves ``out`` as it was. Other configs already in ``out`` are kept.
    Returns the summary (also in ``meta/info.json``). ``build_real(source, out, size=..., ...)``
    (the keyword form, :func:`config_for`) is kept for callers written before.
    """
    t0 = time.perf_counter()
    if not isinstance(cfg, WaymoStitchedConfig):
        cfg = config_for(cfg, **settings)
    elif settings:
        raise TypeError(f"build_real: settings go into the config, got {', '.join(sorted(settings))}")
    check_settings(cfg)
    if not isinstance(num_proc, int) or num_proc < 1:
        raise ValueError(f"num_proc (--num-proc) must be at least 1, got {num_proc}")
    source, out = Path(cfg.source_dir), Path(out)
    refuse_nested(source, out)
    all_files = sorted(f for fs in source_files(source).values() for f in fs)
    recorded = recorded_settings(cfg)
    fp = fingerprint({"files": source_fingerprint(all_files), "settings": recorded, "version": __version__})
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(out)
    tmp = out.parent / f".{out.name}.building-{cfg.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        builder = _prepare(dataclasses.replace(cfg, report_dir=str(tmp / "reports")), tmp / "cache", num_proc)
        stage = tmp / "repo"
        if out.exists():
            shutil.copytree(out, stage, copy_function=os.link,
                            ignore=lambda d, names: [n for n in names if Path(d, n) == out / repo_layout.DATA_DIR / cfg.name])
        rows, shards = _copy_shards(builder, stage, cfg.name)
        reports = sorted((json.loads(p.read_text()) for p in (tmp / "reports").glob("*.json")), key=lambda r: r["file"])
        reasons = [e for r in reports for e in r["errors"]]
        unreadable = [r["unreadable"] for r in reports if r["unreadable"]]
        refuse_empty_splits(rows, reasons, unreadable)
        methods: dict[str, int] = {}
        for r in reports:
            for m, n in r["methods"].items():
                methods[m] = methods.get(m, 0) + n
        summary = BuildSummary(str(out), cfg.name, rows, _objects_per_class(shards, cfg.name), len(reasons), reasons,
                               methods, round(time.perf_counter() - t0, 2), fp,
                               sum(r["uncalibrated"] for r in reports), unreadable)
        _write_meta(stage, summary, recorded, source, len(all_files))
        if out.exists():
            os.replace(out, tmp / "previous")
        os.replace(stage, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def _prepare(cfg: WaymoStitchedConfig, cache: Path, num_proc: int) -> WaymoStitched:
    """Run the datasets builder; a frame's or file's error surfaces as its one-line message."""
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(WaymoStitchedConfig)
              if f.name not in ("name", "version", "data_dir", "data_files", "description")}
    builder = WaymoStitched(config_name=cfg.name, cache_dir=str(cache), **fields)
    try:
        with clean_workers():
            builder.download_and_prepare(num_proc=num_proc if num_proc > 1 else None, file_format="parquet")
    except datasets.exceptions.DatasetGenerationError as exc:
        cause = exc.__cause__
        if isinstance(cause, (ValueError, OSError)):  # FrameError, TFRecordError: the one-line message
            raise cause from None
        raise
    return builder


def _copy_shards(builder: WaymoStitched, stage: Path, config: str) -> tuple[dict[str, int], list[Path]]:
    """Rows per split, and the builder's Parquet files copied into the staged repo as its shards."""
    rows, shards = {}, []
    for split in sorted(builder.info.splits):
        src = _shard_files(builder, split)
        rows[split] = int(builder.info.splits[split].num_examples)
        for i, f in enumerate(src):
            shards.append(repo_layout.copy_shard(f, stage, config, split, i))
        if not src:
            shards.append(repo_layout.write_shard(stage, config, split, 0, [], builder.info.features))
    return rows, shards


def _write_meta(stage: Path, summary: BuildSummary, settings: dict[str, Any], source: Path, segments: int) -> None:
    """``meta/info.json`` (this config's record beside the others already in the repo) and the card. The source
    and the files named in skip reasons are recorded relative to the source folder, never by absolute path."""
    old = {}
    if (stage / repo_layout.INFO_PATH).exists():
        old = json.loads((stage / repo_layout.INFO_PATH).read_text())
    skipped = {"count": summary.skipped, "reasons": [repo_layout.relative_to_source(r, source) for r in summary.reasons]}
    configs = {**(old.get("configs") or {}), summary.config: {
        "fingerprint": summary.fingerprint, "settings": settings, "rows": summary.rows, "objects": summary.objects,
        "skipped": skipped, "stitch_methods": summary.methods, "uncalibrated": summary.uncalibrated,
        "unreadable_segments": [repo_layout.relative_to_source(r, source) for r in summary.unreadable]}}
    repo_layout.write_info(stage, {
        "kind": "real",
        "fingerprint": fingerprint({c: v["fingerprint"] for c, v in configs.items()}),
        "package_version": __version__,
        "source": {"name": source.resolve().name, "format": source_format(source), "segments": segments},
        "settings": settings,
        "counts": {f"{c}/{s}": n for c, v in configs.items() for s, n in v["rows"].items()},
        "skipped": skipped,
        "configs": configs,
    })
    default = STITCHED if (stage / repo_layout.DATA_DIR / STITCHED).exists() else summary.config
    repo_layout.write_readme(stage, body=readme_body(configs), default=default)


def readme_body(configs: dict[str, dict]) -> str:
    """A minimal card body; ``streetsynth card`` renders the full one."""
    lines = ["# streetsynth real street scenes", "",
             "Waymo Open Dataset FRONT and FRONT_RIGHT camera frames, stitched into wide scenes by streetsynth.", "",
             f"Derived from the Waymo Open Dataset, licensed for non-commercial use under its own terms "
             f"({WAYMO_TERMS}); do not redistribute.", ""]
    for name, c in configs.items():
        lines.append(f"- `{name}`: " + ", ".join(f"{s} {n} rows" for s, n in c["rows"].items())
                     + f"; {c['skipped']['count']} frames skipped")
    return "\n".join(lines) + "\n"
