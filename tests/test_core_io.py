"""The core's small I/O helpers: the image codec, the streamed file digest, atomic writes."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from streetsynth import codec, repo
from streetsynth.digest import file_digest


def _rgb() -> np.ndarray:
    img = np.zeros((24, 40, 3), np.uint8)
    img[..., 0] = np.arange(40, dtype=np.uint8)[None, :] * 6  # red ramps left to right
    img[4:12, 8:20] = (0, 200, 30)
    return img


def test_png_round_trips_rgb_and_16_bit_labels_exactly():
    img = _rgb()
    assert np.array_equal(codec.decode(codec.encode(img, "png")), img)
    labels = (np.arange(24 * 40, dtype=np.uint16).reshape(24, 40) * 61).astype(np.uint16)
    back = codec.decode_unchanged(codec.encode(labels, "png"))
    assert back.dtype == np.uint16 and np.array_equal(back, labels)


def test_jpeg_keeps_channel_order():
    data = codec.encode(_rgb(), "jpeg", quality=95)
    assert data[:2] == b"\xff\xd8"
    back = codec.decode(data).astype(int)
    assert np.abs(back[6:10, 10:18] - (0, 200, 30)).max() <= 6  # green stays green, not swapped to blue


def test_bad_bytes_and_formats_are_named():
    with pytest.raises(ValueError, match="camera FRONT: not a decodable image"):
        codec.decode(b"nope", what="camera FRONT")
    with pytest.raises(ValueError, match="known: jpeg, png"):
        codec.encode(_rgb(), "gif")


def test_file_digest_streams_a_file_larger_than_a_block(tmp_path):
    path = tmp_path / "weights.bin"
    data = np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()
    path.write_bytes(data)
    assert file_digest(path) == hashlib.sha256(data).hexdigest()[:12]
    assert file_digest(path, chars=64) == hashlib.sha256(data).hexdigest()


def test_atomic_path_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "shard.parquet"
    repo.atomic_write_bytes(path, b"old")
    with pytest.raises(RuntimeError):
        with repo.atomic_path(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["shard.parquet"]
    repo.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and len(list(tmp_path.iterdir())) == 1


def test_an_atomic_write_removes_what_a_killed_writer_left_but_not_a_live_ones(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path = tmp_path / "model.safetensors"
    killed = tmp_path / f".model.safetensors.{int(dead.stdout)}.0badc0de.tmp"
    live = tmp_path / f".model.safetensors.{os.getpid()}.0123abcd.tmp"  # this process, writing it right now
    other = tmp_path / f".other.bin.{int(dead.stdout)}.0badc0de.tmp"
    for p in (killed, live, other):
        p.write_bytes(b"half")
    repo.atomic_write_bytes(path, b"whole")
    assert path.read_bytes() == b"whole" and not killed.exists() and live.exists() and other.exists()
