"""Waymo v1 segments: TFRecord files of ``Frame`` protos, read without TensorFlow."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

from google.protobuf.message import DecodeError

from streetsynth.proto.frame import Frame
from streetsynth.tfrecord import OnError, ReadStats, read_tfrecord

from .frames import FrameError, FrameRecord, record_from_frame

SEGMENT_GLOB = "*.tfrecord"
#: Folders that name a split in a Waymo download.
SPLIT_FOLDERS = {"training": "train", "train": "train", "validation": "validation", "testing": "test", "test": "test"}
REQUIRED_CAMERAS = ("FRONT", "FRONT_RIGHT")
_JPEG_MAGIC = b"\xff\xd8\xff"


def segment_files(source: str | Path, pattern: str = SEGMENT_GLOB) -> dict[str, list[Path]]:
    """Segment files under ``source`` by split: ``training/`` and ``validation/`` folders name
    their split; files elsewhere (or a single file) go under the key ``""`` (split by hashing)."""
    source = Path(source)
    if source.is_file():
        return {"": [source]}
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such file or folder")
    out: dict[str, list[Path]] = {}
    for f in sorted(source.rglob(pattern)):
        rel = f.relative_to(source).parts[:-1]
        split = next((SPLIT_FOLDERS[p] for p in rel if p in SPLIT_FOLDERS), "")
        out.setdefault(split, []).append(f)
    return out


def read_frames(path: str | Path, on_error: OnError = "raise", stats: ReadStats | None = None) -> Iterator[tuple[int, Frame]]:
    """Yield ``(byte offset, Frame)`` for each record; unparsable records follow the policy."""
    stats = stats if stats is not None else ReadStats()
    for offset, payload in read_tfrecord(path, on_error=on_error, stats=stats):
        frame = Frame()
        try:
            frame.ParseFromString(payload)
        except DecodeError as exc:
            err = FrameError(f"{path}: record at byte {offset}: not a Waymo Frame ({exc})")
            if on_error == "raise":
                raise err from None
            stats.records -= 1
            stats.skip(err)
            continue
        yield offset, frame


def check_record(rec: FrameRecord, required: Sequence[str] = REQUIRED_CAMERAS) -> None:
    """FrameError if a camera we need is missing or its image is not a JPEG."""
    for name in required:
        cam = rec.cameras.get(name)
        if cam is None:
            present = ", ".join(rec.cameras) or "none"
            raise FrameError(f"{rec.source}: frame {rec.timestamp_micros} has no {name} image (cameras: {present})")
        if not cam.image.startswith(_JPEG_MAGIC):
            raise FrameError(f"{rec.source}: frame {rec.timestamp_micros} camera {name}: image is not a JPEG "
                             f"(starts with {cam.image[:4].hex() or 'nothing'})")


def read_records(path: str | Path, on_error: OnError = "raise", stats: ReadStats | None = None,
                 required: Sequence[str] = REQUIRED_CAMERAS) -> Iterator[FrameRecord]:
    """Yield a :class:`FrameRecord` per usable frame of a v1 segment file.

    Frames missing a required camera or holding a non-JPEG image raise :class:`FrameError`
    (naming the file, offset and frame) or, with ``on_error="skip"``, are counted in ``stats``.
    """
    stats = stats if stats is not None else ReadStats()
    for offset, frame in read_frames(path, on_error, stats):
        try:
            rec = record_from_frame(frame, source=f"{path}@{offset}")
            check_record(rec, required)
        except FrameError as exc:
            if on_error == "raise":
                raise
            stats.records -= 1
            stats.skip(exc)
            continue
        yield rec
