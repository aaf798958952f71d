"""TFRecord framing: checksums against known vectors, round trips, and bad files under both policies."""

from __future__ import annotations

import struct

import pytest

from streetsynth.tfrecord import ReadStats, TFRecordError, encode_record, masked_crc32c, read_tfrecord, write_tfrecord


def _mask(crc: int) -> int:
    """The masking rule as the TFRecord format states it, written out independently."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


@pytest.mark.parametrize(
    "data, crc",
    [  # CRC32C check values: RFC 3720 B.4 and the standard "123456789" check.
        (b"", 0x00000000),
        (b"\x00" * 32, 0x8A9136AA),
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (b"123456789", 0xE3069283),
    ],
)
def test_masked_crc_matches_known_vectors(data, crc):
    assert masked_crc32c(data) == _mask(crc)


def test_masked_crc_of_empty_is_the_mask_delta():
    assert masked_crc32c(b"") == 0xA282EAD8


def test_record_framing_layout():
    rec = encode_record(b"abc")
    length, length_crc = struct.unpack("<QI", rec[:12])
    assert length == 3 and length_crc == masked_crc32c(rec[:8])
    assert rec[12:15] == b"abc" and struct.unpack("<I", rec[15:])[0] == masked_crc32c(b"abc")


def test_round_trip(tmp_path):
    payloads = [b"", b"x", bytes(range(256)) * 40, b"last"]
    path = tmp_path / "a.tfrecord"
    assert write_tfrecord(path, payloads) == 4
    stats = ReadStats()
    got = list(read_tfrecord(path, stats=stats))
    assert [p for _, p in got] == payloads
    assert [o for o, _ in got][:2] == [0, 16]
    assert stats.records == 4 and stats.skipped == 0


def _corrupt_payload(path, record_offset):
    data = bytearray(path.read_bytes())
    data[record_offset + 12] ^= 0xFF
    path.write_bytes(bytes(data))


def test_payload_crc_mismatch_raise_names_file_and_offset(tmp_path):
    path = tmp_path / "bad.tfrecord"
    write_tfrecord(path, [b"one", b"two", b"three"])
    _corrupt_payload(path, 19)  # the second record starts after 16 + 3 bytes
    with pytest.raises(TFRecordError) as err:
        list(read_tfrecord(path))
    assert str(path) in str(err.value) and "byte 19" in str(err.value) and "checksum" in str(err.value)


def test_payload_crc_mismatch_skip_reads_the_rest(tmp_path):
    path = tmp_path / "bad.tfrecord"
    write_tfrecord(path, [b"one", b"two", b"three"])
    _corrupt_payload(path, 19)
    stats = ReadStats()
    assert [p for _, p in read_tfrecord(path, on_error="skip", stats=stats)] == [b"one", b"three"]
    assert stats.skipped == 1 and "byte 19" in stats.errors[0]


def test_corrupt_length_skip_resyncs_to_next_record(tmp_path):
    path = tmp_path / "bad.tfrecord"
    write_tfrecord(path, [b"one", b"two", b"three"])
    data = bytearray(path.read_bytes())
    data[19] ^= 0x40  # the second record's length
    path.write_bytes(bytes(data))
    stats = ReadStats()
    assert [p for _, p in read_tfrecord(path, on_error="skip", stats=stats)] == [b"one", b"three"]
    assert stats.skipped == 1


def test_truncated_last_record(tmp_path):
    path = tmp_path / "cut.tfrecord"
    write_tfrecord(path, [b"one", b"two" * 100])
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(TFRecordError, match="truncated"):
        list(read_tfrecord(path))
    stats = ReadStats()
    assert [p for _, p in read_tfrecord(path, on_error="skip", stats=stats)] == [b"one"]
    assert stats.skipped == 1 and "truncated" in stats.errors[0]


def test_not_a_tfrecord_file(tmp_path):
    path = tmp_path / "notes.tfrecord"
    path.write_text("this is a text file, certainly not a TFRecord\n" * 5)
    with pytest.raises(TFRecordError, match="not a TFRecord file"):
        list(read_tfrecord(path))
    stats = ReadStats()
    assert list(read_tfrecord(path, on_error="skip", stats=stats)) == []
    assert stats.skipped == 1


def test_empty_file_has_no_records(tmp_path):
    path = tmp_path / "empty.tfrecord"
    path.write_bytes(b"")
    assert list(read_tfrecord(path)) == []


def test_unknown_policy_is_refused(tmp_path):
    path = tmp_path / "a.tfrecord"
    write_tfrecord(path, [b"a"])
    with pytest.raises(ValueError, match="on_error"):
        list(read_tfrecord(path, on_error="ignore"))


def test_reading_streams_without_loading_the_file(tmp_path):
    """Memory stays flat: the reader holds one record, so a generator over a big file is lazy."""
    path = tmp_path / "big.tfrecord"
    write_tfrecord(path, (bytes([i % 256]) * 100_000 for i in range(200)))
    it = read_tfrecord(path)
    offset, first = next(it)
    assert offset == 0 and len(first) == 100_000
    import tracemalloc

    tracemalloc.start()
    for _ in it:
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2_000_000  # 20 MB of records, a few hundred kB at a time
