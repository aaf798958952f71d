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
    sizes: Counter = field(default_factory=Counter)  # (camera, "WxH") -> frames
    labels: Counter = field(default_factory=Counter)  # type name -> boxes
    panoptic_frames: int = 0
    stats: ReadStats = field(default_factory=ReadStats)


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
            try:
                with Image.open(io.BytesIO(im.image)) as img:
                    out.sizes[(cam, f"{img.width}x{img.height}")] += 1
            except Exception:
                out.sizes[(cam, "undecodable")] += 1
            has_panoptic |= bool(im.camera_segmentation_label.panoptic_label)
        out.panoptic_frames += has_panoptic
        for cl in frame.camera_labels:
            for lab in cl.labels:
                out.labels[_TYPE_NAMES.get(int(lab.type), str(lab.type))] += 1
    return out


def format_summary(s: SegmentSummary) -> str:
    lines = [f"{s.path}", f"  frames: {s.frames}"]
    lines.append("  cameras: " + (", ".join(f"{c} ({n})" for c, n in sorted(s.cameras.items())) or "none"))
    lines.append("  image sizes: " + (", ".join(f"{c} {wh} ({n})" for (c, wh), n in sorted(s.sizes.items())) or "none"))
    lines.append("  labels: " + (", ".join(f"{t} {n}" for t, n in sorted(s.labels.items())) or "none"))
    lines.append(f"  panoptic frames: {s.panoptic_frames}")
    lines.append(f"  skipped records: {s.stats.skipped}")
    lines.extend(f"    {e}" for e in s.stats.errors)
    return "\n".join(lines)
