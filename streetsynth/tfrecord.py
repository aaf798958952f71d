"""TFRecord files without TensorFlow.

Framing of each record: ``uint64`` little-endian payload length, masked CRC32C of those 8 bytes,
the payload, masked CRC32C of the payload. CRC32C comes from ``google-crc32c``; masking is
``((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2**32)``. Reading streams one record at a time, so
memory stays flat whatever the file size, and verifies both checksums.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Literal

import google_crc32c

from .repo import atomic_path

OnError = Literal["raise", "skip"]
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8
#: Where a corrupt length header is found, look this far ahead for the next valid header.
_RESYNC_WINDOW = 64 << 20


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC32C of ``data``."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


class TFRecordError(ValueError):
    """A record that cannot be read; names the file and the byte offset of the record."""

    def __init__(self, path: str | os.PathLike, offset: int, reason: str):
        self.path, self.offset, self.reason = str(path), offset, reason
        super().__init__(f"{path}: record at byte {offset}: {reason}")


@dataclass
class ReadStats:
    """What a read saw: records returned, records skipped under ``on_error="skip"`` and why."""

    records: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def skip(self, exc: Exception) -> None:
        self.skipped += 1
        self.errors.append(str(exc))


def _check_policy(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def _valid_header_at(buf: bytes, i: int) -> bool:
    return i + 12 <= len(buf) and masked_crc32c(buf[i : i + 8]) == _FOOTER.unpack_from(buf, i + 8)[0]


def _resync(fh: BinaryIO, start: int, size: int) -> int | None:
    """Offset of the next byte position after ``start`` that holds a valid record header."""
    fh.seek(start + 1)
    buf = fh.read(min(_RESYNC_WINDOW, size - start - 1))
    for i in range(len(buf) - 11):
        length = _HEADER.unpack_from(buf, i)[0]
        if start + 1 + i + 16 + length <= size and _valid_header_at(buf, i):
            return start + 1 + i
    return None


def read_tfrecord(path: str | os.PathLike, on_error: OnError = "raise", stats: ReadStats | None = None,
                  verify: bool = True) -> Iterator[tuple[int, bytes]]:
    """Yield ``(byte offset, payload)`` for each record of a TFRecord file.

    A bad length checksum, a bad payload checksum or a truncated record raises
    :class:`TFRecordError` under ``on_error="raise"``; under ``"skip"`` the record is counted in
    ``stats`` and reading goes on with the next valid record.
    """
    _check_policy(on_error)
    stats = stats if stats is not None else ReadStats()
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        offset = 0
        while offset < size:
            fh.seek(offset)
            header = fh.read(12)
            try:
                if len(header) < 12:
                    raise TFRecordError(path, offset, f"truncated header ({len(header)} of 12 bytes)")
                length, length_crc = _HEADER.unpack(header)
                if verify and masked_crc32c(header[:8]) != length_crc:
                    what = "not a TFRecord file" if offset == 0 else "corrupt record"
                    raise TFRecordError(path, offset, f"{what}: length checksum mismatch")
                if offset + 16 + length > size:
                    raise TFRecordError(path, offset, f"truncated record: {length} byte payload, "
                                        f"{max(0, size - offset - 12)} bytes left in the file")
                payload = fh.read(length)
                (payload_crc,) = _FOOTER.unpack(fh.read(4))
                if verify and masked_crc32c(payload) != payload_crc:
                    raise TFRecordError(path, offset, "payload checksum mismatch")
            except TFRecordError as exc:
                if on_error == "raise":
                    raise
                stats.skip(exc)
                if "length checksum" in exc.reason:
                    nxt = _resync(fh, offset, size)
                    if nxt is None:
                        return
                    offset = nxt
                elif exc.reason.startswith("truncated"):
                    return
                else:
                    offset += 16 + length
                continue
            stats.records += 1
            yield offset, payload
            offset += 16 + length


def encode_record(payload: bytes) -> bytes:
    """One framed TFRecord record."""
    length = struct.pack("<Q", len(payload))
    return length + _FOOTER.pack(masked_crc32c(length)) + payload + _FOOTER.pack(masked_crc32c(payload))


def write_tfrecord(path: str | os.PathLike, payloads: Iterable[bytes]) -> int:
    """Write payloads as a TFRecord file, atomically (temporary name, then rename). Returns the count."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        for payload in payloads:
            fh.write(encode_record(payload))
            n += 1
    return n
