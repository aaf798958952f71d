"""Peak memory of reading one v2 segment: the whole ``camera_image`` table against the reader's
column selection, camera filter and batched scan.

    python benchmarks/v2_read_memory.py [--frames 200] [--image-kb 300]

A segment-sized table (200 frames x 5 cameras, each image ``--image-kb`` of incompressible bytes
behind a JPEG marker, like Waymo's 1920x1280 JPEGs) is written by ``waymo_v2.write_v2`` (row groups of
50 rows) and then rewritten as one row group (the worst layout a foreign file can have); each way
of reading it then runs in a fresh process, and its peak resident memory above the process's memory
after imports (``VmHWM``) is printed with the table's size on disk. Ways:

- ``whole``: ``pq.read_table`` of every column and camera, then the two cameras selected (the
  reader before issue 24);
- ``filtered``: ``pq.read_table`` with the needed columns and a ``key.camera_name`` filter;
- ``reader``: ``waymo_v2.read_records`` over the whole segment, as the builder runs it (every
  component read as the builder needs it, each frame's image bytes copied out when it is yielded).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

WAYS = ("whole", "filtered", "reader")


def write_segment(out: Path, frames: int, image_kb: int) -> Path:
    """A v2 segment of ``frames`` frames x 5 cameras with random image bytes; its camera_image file."""
    import numpy as np

    from streetsynth.builders.frames import CameraView, FrameRecord
    from streetsynth.builders.sample import make_cameras
    from streetsynth.builders.waymo_v2 import write_v2
    from streetsynth.schema import CAMERA_IDS

    rng = np.random.default_rng(0)
    cams = make_cameras((1280, 1920))
    records = []
    for f in range(frames):
        views = {name: CameraView(name, b"\xff\xd8\xff" + rng.bytes(image_kb * 1024), cams.get(name),
                                  np.zeros((0, 4), np.float32), np.zeros(0, np.int64), [])
                 for name in CAMERA_IDS}
        records.append(FrameRecord("bench_segment", 1_550_000_000_000_000 + f * 100_000, "Day", "bench", "sunny", views))
    (written,) = write_v2(records, out)
    return written


def _status_kb(field: str) -> int:
    """A field of /proc/self/status in KiB (VmHWM: this process's peak resident memory, reset by exec;
    ``ru_maxrss`` is not, so a child would inherit the writer's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(way: str, path: Path) -> dict:
    """Run in a fresh process: peak RSS (MB) above the RSS after imports."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from streetsynth.builders import waymo_v2

    base = _status_kb("VmHWM")
    if way == "whole":
        table = pq.read_table(path)
        n = table.filter(pc.is_in(table.column(waymo_v2.CAMERA), pa.array([1, 3], pa.int8()))).num_rows
    elif way == "filtered":
        n = waymo_v2.read_component(path, waymo_v2.IMAGE, ("FRONT", "FRONT_RIGHT")).num_rows
    else:
        n = sum(len(r.cameras) for r in waymo_v2.read_records(path))
    peak = _status_kb("VmHWM")
    return {"way": way, "images": n, "peak_mb": round((peak - base) / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--image-kb", type=int, default=300)
    ap.add_argument("--measure", nargs=2, metavar=("WAY", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    import pyarrow.parquet as pq

    if args.measure:
        print(json.dumps(measure(args.measure[0], Path(args.measure[1]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = write_segment(Path(tmp), args.frames, args.image_kb)
        mb = path.stat().st_size / 1e6
        print(f"camera_image table: {args.frames} frames x 5 cameras, {mb:.0f} MB on disk; "
              f"kept: FRONT + FRONT_RIGHT = {2 / 5 * mb:.0f} MB of images")
        for layout in ("row groups of 50 rows (write_v2)", "one row group"):
            if layout == "one row group":
                pq.write_table(pq.read_table(path).combine_chunks(), path, row_group_size=1 << 20)
                assert pq.ParquetFile(path).metadata.num_row_groups == 1
            print(f" {layout}:")
            for way in WAYS:
                out = subprocess.run([sys.executable, __file__, "--measure", way, str(path)], check=True,
                                     capture_output=True, text=True).stdout
                r = json.loads(out)
                print(f"  {way:9s} {r['images']:4d} images  peak {r['peak_mb']:7.1f} MB  ({r['peak_mb'] / mb:.2f}x the table)")


if __name__ == "__main__":
    main()
