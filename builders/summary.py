"""What is in a set of Waymo segments: frames, cameras, sizes, labels, panoptic frames, bad records."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from streetsynth.schema import CAMERA_NAMES
from streetsynth.tfrecord import ReadStats

_TYPE_NAMES = {0: "unknown", 1: "vehicle", 2: "pedestrian", 3: "sign", 4: "cyclist"}


@dataclass
class SegmentSummary:
    path: Path
    frames: int = 0
    cameras: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)  # (camera, "HxW") -> frames
    labels: Counter = field(default_factory=Counter)  # type name -> boxes
    panoptic_frames: int = 0
    stats: ReadStats = field(default_factory=ReadStats)


def header_size(image: bytes) -> str:
    """``"HxW"`` from an image's header (no decode), as every ``--size`` is written; ``"undecodable"``."""
    try:
        with Image.open(io.BytesIO(image)) as img:
            return f"{img.height}x{img.width}"
    except Exception:
        return "undecodable"


def summarize(path: str | Path, on_error: str = "skip") -> SegmentSummary:
    """One segment file of either format: a v1 ``.tfrecord`` or a v2 ``camera_image/*.parquet``."""
    return summarize_v2_segment(path, on_error) if Path(path).suffix == ".parquet" else summarize_segment(path, on_error)


def summarize_v2_segment(path: str | Path, on_error: str = "skip") -> SegmentSummary:
    """Count what one v2 segment holds, reading a few columns of each component and the images in
    batches (headers only). A missing or unreadable component is a skipped record under ``skip``."""
    from pyarrow import parquet as pq

    from streetsynth.builders import waymo_v2 as v2

    out = SegmentSummary(Path(path))
    try:
        if Path(path).stat().st_size == 0:
            out.stats.skip(ValueError(f"{path}: empty segment file (0 bytes)"))
            return out
        frames = set()
        batches = pq.ParquetFile(path).iter_batches(batch_size=32, columns=[v2.TIMESTAMP, v2.CAMERA, v2.IMAGE_BYTES])
        for batch in batches:
            for ts, cid, image in zip(*(c.to_pylist() for c in batch.columns)):
                cam = CAMERA_NAMES.get(int(cid), str(cid))
                frames.add(ts)
                out.cameras[cam] += 1
                out.sizes[(cam, header_size(image))] += 1
        out.frames = len(frames)
        boxes = v2.read_component(Path(path), v2.BOX)
        for t in boxes.column(v2.BOX_TYPE).to_pylist():
            out.labels[_TYPE_NAMES.get(int(t), str(t))] += 1
        seg = v2.read_component(Path(path), v2.SEG)
        if seg is not None:
            out.panoptic_frames = len(set(seg.filter(seg.column(v2.PANOPTIC_LABEL).is_valid())
                                          .column(v2.TIMESTAMP).to_pylist()))
    except (ValueError, OSError) as exc:
        if on_error == "raise":
            raise
        out.stats.skip(exc)
    return out


def summarize_segment(path: str | Path, on_error: str = "skip") -> SegmentSummary:
    """Read one v1 segment file and count what it holds (image headers only, no full decode)."""
    from streetsynth.builders.waymo_v1 import read_frames

    out = SegmentSummary(Path(path))
    for _, frame in read_frames(path, on_error=on_error, stats=out.stats):
        out.frames += 1
        has_panoptic = False
        for im in frame.images:
            cam = CAMERA_NAMES.get(int(im.name), str(im.name))
            out.cameras[cam] += 1
            out.sizes[(cam, header_size(im.image))] += 1
            has_panoptic |= bool(im.camera_segmentation_label.panoptic_label)
        out.panoptic_frames += has_panoptic
        for cl in frame.camera_labels:
            for lab in cl.labels:
                out.labels[_TYPE_NAMES.get(int(lab.type), str(lab.type))] += 1
    return out


def format_summary(s: SegmentSummary) -> str:
    lines = [f"{s.path}", f"  frames: {s.frames}"]
    lines.append("  cameras: " + (", ".join(f"{c} ({n})" for c, n in sorted(s.cameras.items())) or "none"))
    lines.append("  image sizes (HxW): " + (", ".join(f"{c} {wh} ({n})" for (c, wh), n in sorted(s.sizes.items())) or "none"))
    lines.append("  labels: " + (", ".join(f"{t} {n}" for t, n in sorted(s.labels.items())) or "none"))
    lines.append(f"  panoptic frames: {s.panoptic_frames}")
    lines.append(f"  skipped records: {s.stats.skipped}")
    lines.extend(f"    {e}" for e in s.stats.errors)
    return "\n".join(lines)


def segment_files(path: str | Path) -> list[Path]:
    """The segment files under ``path`` in either format (v2 ``camera_image`` files, else v1 TFRecords)."""
    from streetsynth.builders import waymo_v1, waymo_v2

    path = Path(path)
    if path.is_file() and path.suffix == ".parquet":
        return [path]
    found = waymo_v2.segment_files(path) if waymo_v2.is_v2(path) else waymo_v1.segment_files(path)
    return [f for fs in found.values() for f in fs]
