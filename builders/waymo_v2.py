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
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streetsynth.camera import PinholeCamera
from streetsynth.schema import CAMERA_IDS, CAMERA_NAMES
from streetsynth.tfrecord import OnError, ReadStats

from .frames import CameraView, FrameError, FrameRecord, Panoptic, boxes_from_center, camera_from_values
from .waymo_v1 import REQUIRED_CAMERAS, SPLIT_FOLDERS, check_record

IMAGE, BOX, CALIB, SEG, STATS = "camera_image", "camera_box", "camera_calibration", "camera_segmentation", "stats"
SEGMENT, TIMESTAMP, CAMERA = "key.segment_context_name", "key.frame_timestamp_micros", "key.camera_name"
OBJECT_ID = "key.camera_object_id"
_I, _B, _C = "[CameraImageComponent]", "[CameraBoxComponent]", "[CameraCalibrationComponent]"
_S, _T = "[CameraSegmentationLabelComponent]", "[StatsComponent]"
IMAGE_BYTES, BOX_TYPE, PANOPTIC_LABEL = f"{_I}.image", f"{_B}.type", f"{_S}.panoptic_label"
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


#: Columns read per component: (required, optional). Nothing else is read.
_SEG_MAP = f"{_S}.instance_id_to_global_id_mapping"
COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    IMAGE: ((SEGMENT, TIMESTAMP, CAMERA, f"{_I}.image"), ()),
    CALIB: ((CAMERA, *(f"{_C}.intrinsic.{n}" for n in _INTRINSICS[:4]), f"{_C}.extrinsic.transform",
             f"{_C}.width", f"{_C}.height"), tuple(f"{_C}.intrinsic.{n}" for n in _INTRINSICS[4:])),
    BOX: ((TIMESTAMP, CAMERA, OBJECT_ID, *(f"{_B}.box.{n}" for n in ("center.x", "center.y", "size.x", "size.y")),
           f"{_B}.type"), ()),
    SEG: ((TIMESTAMP, CAMERA, f"{_S}.panoptic_label", f"{_S}.panoptic_label_divisor"),
          (f"{_SEG_MAP}.local_instance_ids", f"{_SEG_MAP}.global_instance_ids")),
    STATS: ((TIMESTAMP,), tuple(f"{_T}.{n}" for n in ("time_of_day", "location", "weather"))),
}
#: Rows per Parquet row group written: 10 frames of 5 cameras (a reader's memory follows the row group).
ROW_GROUP_ROWS = 50
#: Components a segment must have: without boxes a segment would build rows with no objects.
REQUIRED_COMPONENTS = (IMAGE, CALIB, BOX)


def component_path(image_file: Path, component: str) -> Path:
    """The ``component`` file of the segment whose ``camera_image`` file is ``image_file``."""
    return image_file.parent.parent / component / image_file.name


def read_component(image_file: Path, component: str, cameras: Sequence[str] | None = None) -> pa.Table | None:
    """The columns the builder uses of one component file, only the rows of ``cameras`` (pyarrow
    column selection and a filter on ``key.camera_name``); None for a missing optional component.

    FrameError naming the component and the file for a missing required component, a file that is
    not Parquet, or a missing column.
    """
    path = component_path(image_file, component)
    if not path.exists():
        if component in REQUIRED_COMPONENTS:
            raise FrameError(f"{image_file}: missing component {component}: no file {path}")
        return None
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as exc:
        raise FrameError(f"{path}: component {component} is not a readable Parquet file ({exc})") from None
    required, optional = COLUMNS[component]
    missing = [c for c in required if c not in names]
    if missing:
        raise FrameError(f"{path}: component {component} lacks column(s) {', '.join(missing)}")
    columns = list(required) + [c for c in optional if c in names]
    try:
        return _scan(path, columns, None if cameras is None else [CAMERA_IDS[c] for c in cameras])
    except (pa.ArrowInvalid, OSError) as exc:
        raise FrameError(f"{path}: component {component} is not a readable Parquet file ({exc})") from None


def _scan(path: Path, columns: list[str], camera_ids: list[int] | None) -> pa.Table:
    """``columns`` of the rows of ``camera_ids``, read in small batches without pre-buffering, each
    filtered as it arrives: peak memory is the kept rows plus about one row group (a whole-table read,
    or ``read_table`` with a filter, holds every camera's images several times over; see
    benchmarks/v2_read_memory.py)."""
    file = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    keep = None if camera_ids is None else pa.array(camera_ids, file.schema_arrow.field(CAMERA).type)
    batches = [b if keep is None else b.filter(pc.is_in(b.column(CAMERA), keep))
               for b in file.iter_batches(batch_size=16, columns=columns, use_threads=False)]
    return pa.Table.from_batches(batches, schema=pa.schema([file.schema_arrow.field(c) for c in columns]))


def _rows(table: pa.Table | None) -> list[dict]:
    return [] if table is None else table.to_pylist()


def _calibrations(table: pa.Table, source: Path) -> dict[str, PinholeCamera | None]:
    """Cameras by name; None for a camera whose extrinsic is empty (no calibration: registration)."""
    out = {}
    for r in table.to_pylist():
        name = CAMERA_NAMES.get(int(r[CAMERA]), str(r[CAMERA]))
        t = r.get(f"{_C}.extrinsic.transform") or []
        k = [r.get(f"{_C}.intrinsic.{n}") for n in _INTRINSICS]
        if t and any(v is None for v in k[:4]):
            raise FrameError(f"{source}: {name} calibration: intrinsic f_u/f_v/c_u/c_v missing")
        out[name] = camera_from_values(name, [v or 0.0 for v in k], t, r[f"{_C}.width"], r[f"{_C}.height"], str(source))
    return out


def _by_key(table: pa.Table | None) -> dict[tuple[int, int], list[dict]]:
    """Rows of a per-camera component grouped by (timestamp, camera id), in table order."""
    out: dict[tuple[int, int], list[dict]] = {}
    for r in _rows(table):
        out.setdefault((int(r[TIMESTAMP]), int(r[CAMERA])), []).append(r)
    return out


def _panoptic(seg: dict | None, what: str) -> Panoptic | None:
    if seg is None or not seg.get(f"{_S}.panoptic_label"):
        return None
    return Panoptic(seg[f"{_S}.panoptic_label"], int(seg.get(f"{_S}.panoptic_label_divisor") or 1000),
                    dict(zip(seg.get(f"{_SEG_MAP}.local_instance_ids") or [],
                             seg.get(f"{_SEG_MAP}.global_instance_ids") or [])), what)


def _camera_view(name: str, image: bytes, calibration: PinholeCamera | None, boxes: list[dict],
                 seg: dict | None, what: str) -> CameraView:
    """One camera of one frame; boxes in object-id order (as the v1 reader gives them)."""
    lab = sorted(boxes, key=lambda b: b.get(OBJECT_ID) or "")
    col = {n: [b[f"{_B}.box.{n}"] for b in lab] for n in ("center.x", "center.y", "size.x", "size.y")}
    return CameraView(name=name, image=image, calibration=calibration,
                      boxes=boxes_from_center(col["center.x"], col["center.y"], col["size.x"], col["size.y"]),
                      types=np.asarray([int(b[f"{_B}.type"]) for b in lab], np.int64),
                      label_ids=[b.get(OBJECT_ID) or "" for b in lab], panoptic=_panoptic(seg, what))


def read_records(path: str | Path, on_error: OnError = "raise", stats: ReadStats | None = None,
                 required: Sequence[str] = REQUIRED_CAMERAS) -> Iterator[FrameRecord]:
    """Yield a :class:`FrameRecord` per frame of one v2 segment (its ``camera_image`` file), by timestamp.

    Only the ``required`` cameras' rows and the columns in :data:`COLUMNS` are read; an image's bytes
    are copied out of the table when its frame is yielded. Frames missing a required camera raise
    :class:`FrameError` or, with ``on_error="skip"``, are counted in ``stats``. A missing or unreadable
    component fails the whole segment (FrameError naming it); a 0-byte ``camera_image`` file or an
    empty table yields nothing (the builder reports the segment as empty).
    """
    path = Path(path)
    stats = stats if stats is not None else ReadStats()
    if path.stat().st_size == 0:
        return
    images = read_component(path, IMAGE, required)
    calibs = _calibrations(read_component(path, CALIB, required), path)
    boxes = _by_key(read_component(path, BOX, required))
    segs = {k: v[0] for k, v in _by_key(read_component(path, SEG, required)).items()}
    conds = {int(r[TIMESTAMP]): r for r in _rows(read_component(path, STATS))}
    frames: dict[int, dict[str, int]] = {}
    for i, (ts, cid) in enumerate(zip(images.column(TIMESTAMP).to_pylist(), images.column(CAMERA).to_pylist())):
        frames.setdefault(int(ts), {})[CAMERA_NAMES.get(int(cid), str(cid))] = i
    pixels, segment = images.column(f"{_I}.image"), images.column(SEGMENT)
    for ts in sorted(frames):
        cameras = {name: _camera_view(name, pixels[i].as_py(), calibs.get(name), boxes.get((ts, CAMERA_IDS[name]), []),
                                      segs.get((ts, CAMERA_IDS[name])), f"{path}: frame {ts} camera {name} panoptic label")
                   for name, i in frames[ts].items()}
        c = conds.get(ts, {})
        rec = FrameRecord(segment[next(iter(frames[ts].values()))].as_py(), ts, c.get(f"{_T}.time_of_day") or "",
                          c.get(f"{_T}.location") or "", c.get(f"{_T}.weather") or "", cameras, f"{path}@{ts}")
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
    pq.write_table(pa.Table.from_pylist(table_rows, schema=schema), tmp, row_group_size=ROW_GROUP_ROWS)
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
