"""Waymo v2 segments: one Parquet file per segment in each component folder, read with pyarrow.

Layout (as Waymo ships it)::

    <split>/camera_image/<segment>.parquet         key.*, [CameraImageComponent].image
    <split>/camera_box/<segment>.parquet           key.*, key.camera_object_id, [CameraBoxComponent].box.*, .type
    <split>/camera_calibration/<segment>.parquet   key.segment_context_name, key.camera_name, intrinsic.*, extrinsic.transform
    <split>/camera_segmentation/<segment>.parquet  [CameraSegmentationLabelComponent].panoptic_label, ... (optional)
    <split>/stats/<segment>.parquet                [StatsComponent].time_of_day, .location, .weather (optional)

Tables join on ``key.segment_context_name``, ``key.frame_timestamp_micros``, ``key.camera_name``.
:func:`write_v2` writes the same layout from FrameRecords (the sample maker's ``fmt="v2"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streetsynth.camera import PinholeCamera
from streetsynth.schema import CAMERA_IDS, CAMERA_NAMES
from streetsynth.tfrecord import OnError, ReadStats

from .frames import CameraView, FrameError, FrameRecord, Panoptic, boxes_from_center
from .waymo_v1 import REQUIRED_CAMERAS, SPLIT_FOLDERS, check_record

IMAGE, BOX, CALIB, SEG, STATS = "camera_image", "camera_box", "camera_calibration", "camera_segmentation", "stats"
SEGMENT, TIMESTAMP, CAMERA = "key.segment_context_name", "key.frame_timestamp_micros", "key.camera_name"
OBJECT_ID = "key.camera_object_id"
_I, _B, _C = "[CameraImageComponent]", "[CameraBoxComponent]", "[CameraCalibrationComponent]"
_S, _T = "[CameraSegmentationLabelComponent]", "[StatsComponent]"
_INTRINSICS = ("f_u", "f_v", "c_u", "c_v", "k1", "k2", "p1", "p2", "k3")


def is_v2(source: str | Path) -> bool:
    """True if ``source`` holds v2 component folders (a ``camera_image`` folder anywhere below)."""
    source = Path(source)
    return source.is_dir() and (source.name == IMAGE or any(p.is_dir() for p in source.rglob(IMAGE)))


def segment_files(source: str | Path) -> dict[str, list[Path]]:
    """``camera_image/<segment>.parquet`` files by split (from ``training/``-like folders, else ``""``)."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such folder")
    out: dict[str, list[Path]] = {}
    for f in sorted(source.rglob(f"{IMAGE}/*.parquet")):
        rel = f.relative_to(source).parts[:-2]
        split = next((SPLIT_FOLDERS[p] for p in rel if p in SPLIT_FOLDERS), "")
        out.setdefault(split, []).append(f)
    return out


def _component(image_file: Path, component: str, required: bool) -> pa.Table | None:
    path = image_file.parent.parent / component / image_file.name
    if not path.exists():
        if required:
            raise FrameError(f"{image_file}: missing component file {path}")
        return None
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise FrameError(f"{path}: not a readable Parquet file ({exc})") from None


def _rows(table: pa.Table | None) -> list[dict]:
    return [] if table is None else table.to_pylist()


def _calibrations(table: pa.Table, source: Path) -> dict[str, PinholeCamera]:
    out = {}
    for r in table.to_pylist():
        name = CAMERA_NAMES.get(int(r[CAMERA]), str(r[CAMERA]))
        t = np.asarray(r.get(f"{_C}.extrinsic.transform") or [], np.float64)
        if t.size != 16:
            raise FrameError(f"{source}: camera {name}: extrinsic has {t.size} values, need 16")
        t = t.reshape(4, 4)
        k = [r.get(f"{_C}.intrinsic.{n}") for n in ("f_u", "f_v", "c_u", "c_v")]
        if any(v is None for v in k):
            raise FrameError(f"{source}: camera {name}: intrinsic f_u/f_v/c_u/c_v missing")
        dist = tuple(float(r.get(f"{_C}.intrinsic.{n}") or 0.0) for n in _INTRINSICS[4:])
        out[name] = PinholeCamera(*k, int(r[f"{_C}.width"]), int(r[f"{_C}.height"]), t[:3, :3].copy(),
                                  tuple(float(v) for v in t[:3, 3]), dist)
    return out


def read_records(path: str | Path, on_error: OnError = "raise", stats: ReadStats | None = None,
                 required: Sequence[str] = REQUIRED_CAMERAS) -> Iterator[FrameRecord]:
    """Yield a :class:`FrameRecord` per frame of one v2 segment (its ``camera_image`` file), by timestamp.

    Frames missing a required camera raise :class:`FrameError` or, with ``on_error="skip"``,
    are counted in ``stats``. A missing or unreadable component file fails the whole segment.
    """
    path = Path(path)
    stats = stats if stats is not None else ReadStats()
    images = _component(path, IMAGE, True)
    calibs = _calibrations(_component(path, CALIB, True), path)
    boxes: dict[tuple, list[dict]] = {}
    for r in _rows(_component(path, BOX, False)):
        boxes.setdefault((r[TIMESTAMP], int(r[CAMERA])), []).append(r)
    segs = {(r[TIMESTAMP], int(r[CAMERA])): r for r in _rows(_component(path, SEG, False))}
    conds = {r[TIMESTAMP]: r for r in _rows(_component(path, STATS, False))}
    frames: dict[int, dict[str, dict]] = {}
    segment_names: dict[int, str] = {}
    for r in images.select([c for c in images.column_names if c in (SEGMENT, TIMESTAMP, CAMERA, f"{_I}.image")]).to_pylist():
        ts = int(r[TIMESTAMP])
        frames.setdefault(ts, {})[CAMERA_NAMES.get(int(r[CAMERA]), str(r[CAMERA]))] = r
        segment_names[ts] = r[SEGMENT]
    for ts in sorted(frames):
        cameras = {}
        for name, r in frames[ts].items():
            cid = CAMERA_IDS.get(name, -1)
            lab = sorted(boxes.get((ts, cid), []), key=lambda b: b.get(OBJECT_ID) or "")
            seg = segs.get((ts, cid))
            pan = None
            if seg is not None and seg.get(f"{_S}.panoptic_label"):
                pan = Panoptic(
                    seg[f"{_S}.panoptic_label"],
                    int(seg.get(f"{_S}.panoptic_label_divisor") or 1000),
                    dict(zip(seg.get(f"{_S}.instance_id_to_global_id_mapping.local_instance_ids") or [],
                             seg.get(f"{_S}.instance_id_to_global_id_mapping.global_instance_ids") or [])),
                    f"{path}: frame {ts} camera {name} panoptic label",
                )
            cameras[name] = CameraView(
                name=name,
                image=r[f"{_I}.image"],
                calibration=calibs.get(name),
                boxes=boxes_from_center([b[f"{_B}.box.center.x"] for b in lab], [b[f"{_B}.box.center.y"] for b in lab],
                                        [b[f"{_B}.box.size.x"] for b in lab], [b[f"{_B}.box.size.y"] for b in lab]),
                types=np.asarray([int(b[f"{_B}.type"]) for b in lab], np.int64),
                label_ids=[b.get(OBJECT_ID) or "" for b in lab],
                panoptic=pan,
            )
        c = conds.get(ts, {})
        rec = FrameRecord(segment_names[ts], ts, c.get(f"{_T}.time_of_day") or "", c.get(f"{_T}.location") or "",
                          c.get(f"{_T}.weather") or "", cameras, f"{path}@{ts}")
        try:
            check_record(rec, required)
        except FrameError as exc:
            if on_error == "raise":
                raise
            stats.skip(exc)
            continue
        stats.records += 1
        yield rec


def _write(table_rows: list[dict], schema: pa.Schema, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(table_rows, schema=schema), tmp)
    tmp.replace(path)
    return path


def _key_fields(with_ts: bool = True) -> list[pa.Field]:
    fields = [pa.field(SEGMENT, pa.string())]
    if with_ts:
        fields.append(pa.field(TIMESTAMP, pa.int64()))
    return fields + [pa.field(CAMERA, pa.int8())]


def write_v2(records: Iterable[FrameRecord], out_dir: str | Path) -> list[Path]:
    """Write FrameRecords (one segment or several) as v2 component Parquet files under ``out_dir``.

    Returns the ``camera_image`` file of each segment written.
    """
    out_dir = Path(out_dir)
    by_segment: dict[str, list[FrameRecord]] = {}
    for rec in records:
        by_segment.setdefault(rec.segment, []).append(rec)
    written = []
    schemas = {
        IMAGE: pa.schema(_key_fields() + [pa.field(f"{_I}.image", pa.binary())]),
        BOX: pa.schema(_key_fields() + [pa.field(OBJECT_ID, pa.string())]
                       + [pa.field(f"{_B}.box.{n}", pa.float64()) for n in ("center.x", "center.y", "size.x", "size.y")]
                       + [pa.field(f"{_B}.type", pa.int8())]),
        CALIB: pa.schema(_key_fields(with_ts=False) + [pa.field(f"{_C}.intrinsic.{n}", pa.float64()) for n in _INTRINSICS]
                         + [pa.field(f"{_C}.extrinsic.transform", pa.list_(pa.float64())),
                            pa.field(f"{_C}.width", pa.int32()), pa.field(f"{_C}.height", pa.int32())]),
        SEG: pa.schema(_key_fields() + [
            pa.field(f"{_S}.panoptic_label_divisor", pa.int32()), pa.field(f"{_S}.panoptic_label", pa.binary()),
            pa.field(f"{_S}.instance_id_to_global_id_mapping.local_instance_ids", pa.list_(pa.int32())),
            pa.field(f"{_S}.instance_id_to_global_id_mapping.global_instance_ids", pa.list_(pa.int32())),
            pa.field(f"{_S}.instance_id_to_global_id_mapping.is_tracked", pa.list_(pa.bool_())),
            pa.field(f"{_S}.sequence_id", pa.string())]),
        STATS: pa.schema([pa.field(SEGMENT, pa.string()), pa.field(TIMESTAMP, pa.int64())]
                         + [pa.field(f"{_T}.{n}", pa.string()) for n in ("time_of_day", "location", "weather")]),
    }
    for segment, recs in by_segment.items():
        rows: dict[str, list[dict]] = {k: [] for k in schemas}
        calibs: dict[int, PinholeCamera] = {}
        for rec in recs:
            ts = rec.timestamp_micros
            rows[STATS].append({SEGMENT: segment, TIMESTAMP: ts, f"{_T}.time_of_day": rec.time_of_day,
                                f"{_T}.location": rec.location, f"{_T}.weather": rec.weather})
            for name, cam in rec.cameras.items():
                cid = CAMERA_IDS[name]
                key = {SEGMENT: segment, TIMESTAMP: ts, CAMERA: cid}
                rows[IMAGE].append({**key, f"{_I}.image": cam.image})
                if cam.calibration is not None:
                    calibs.setdefault(cid, cam.calibration)
                for lid, b, t in zip(cam.label_ids, cam.boxes, cam.types):
                    rows[BOX].append({**key, OBJECT_ID: lid, f"{_B}.box.center.x": float(b[0] + b[2]) / 2,
                                      f"{_B}.box.center.y": float(b[1] + b[3]) / 2, f"{_B}.box.size.x": float(b[2] - b[0]),
                                      f"{_B}.box.size.y": float(b[3] - b[1]), f"{_B}.type": int(t)})
                if cam.panoptic is not None:
                    m = cam.panoptic.local_to_global
                    rows[SEG].append({**key, f"{_S}.panoptic_label_divisor": cam.panoptic.divisor,
                                      f"{_S}.panoptic_label": cam.panoptic.png,
                                      f"{_S}.instance_id_to_global_id_mapping.local_instance_ids": list(m),
                                      f"{_S}.instance_id_to_global_id_mapping.global_instance_ids": list(m.values()),
                                      f"{_S}.instance_id_to_global_id_mapping.is_tracked": [True] * len(m),
                                      f"{_S}.sequence_id": segment})
        for cid, cal in sorted(calibs.items()):
            rows[CALIB].append({SEGMENT: segment, CAMERA: cid,
                                **{f"{_C}.intrinsic.{n}": v for n, v in zip(_INTRINSICS, cal.intrinsic())},
                                f"{_C}.extrinsic.transform": cal.extrinsic(), f"{_C}.width": cal.width,
                                f"{_C}.height": cal.height})
        name = f"{segment}.parquet"
        for comp, schema in schemas.items():
            p = _write(rows[comp], schema, out_dir / comp / name)
            if comp == IMAGE:
                written.append(p)
    return written
