"""What a panoptic frame costs beyond a box-only one, and how fast its labels can be decoded.

Renders a small Waymo-size sample with panoptic labels on every frame, then times, on one thread:
``stitched_row`` of the same frames with and without their panoptic labels (the box-only frame is
the same record with the labels dropped), and the decode of one 16-bit 1280x1920 panoptic PNG with
every decoder importable here (OpenCV, which the builder uses, and Pillow always; pyspng,
imagecodecs and pyvips when installed), plus zlib's inflate of the PNG's data alone.

    .venv/bin/python benchmarks/panoptic_decode.py [--frames 4 --view 1280x1920 --size 512x1024]
"""

from __future__ import annotations

import argparse
import copy
import io
import struct
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np

from streetsynth.builders.captions import make_captioner
from streetsynth.builders.sample import make_sample
from streetsynth.builders.waymo import stitched_row
from streetsynth.builders.waymo_v1 import read_records
from streetsynth.config import parse_size
from timing import best_ms


def idat(png: bytes) -> bytes:
    """The PNG's concatenated IDAT payload (the zlib stream)."""
    out, i = [], 8
    while i < len(png):
        (n,) = struct.unpack(">I", png[i : i + 4])
        if png[i + 4 : i + 8] == b"IDAT":
            out.append(png[i + 8 : i + 8 + n])
        i += 12 + n
    return b"".join(out)


def decoders() -> dict:
    from PIL import Image

    found = {"opencv imdecode(IMREAD_UNCHANGED) (the builder's)":
             lambda b: cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_UNCHANGED),
             "pillow": lambda b: np.asarray(Image.open(io.BytesIO(b)))}
    try:
        import pyspng

        found["pyspng (libspng)"] = pyspng.load
    except ImportError:
        pass
    try:
        import imagecodecs

        found["imagecodecs png_decode (libpng)"] = imagecodecs.png_decode
    except ImportError:
        pass
    try:
        import pyvips

        def vips(b):
            im = pyvips.Image.new_from_buffer(b, "", access="sequential")
            return np.ndarray(buffer=im.write_to_memory(), dtype=np.uint16, shape=(im.height, im.width))

        found["pyvips (libspng)"] = vips
    except ImportError:
        pass
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--view", type=parse_size, default=(1280, 1920))
    ap.add_argument("--size", type=parse_size, default=(512, 1024))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        files = make_sample(Path(tmp), 1, args.frames, seed=0, view_size=args.view, panoptic_every=1)
        records = list(read_records(files[0]))
    box_only = copy.deepcopy(records)
    for rec in box_only:
        for view in rec.cameras.values():
            view.panoptic = None
    cap = make_captioner("template")
    stitched_row(records[0], args.size, cap)

    def rows(recs, fresh: bool):
        for rec in recs:
            if fresh:  # decode the labels again, as a build does
                for view in rec.cameras.values():
                    view.panoptic.__dict__.pop("label", None)
            stitched_row(rec, args.size, cap)

    ms_box = best_ms(lambda: rows(box_only, False), args.repeat) / len(records)
    ms_pan = best_ms(lambda: rows(records, True), args.repeat) / len(records)
    png = records[0].cameras["FRONT"].panoptic.png
    print(f"{len(records)} frames, {args.view[0]}x{args.view[1]} views -> {args.size[0]}x{args.size[1]}, one thread")
    print(f"  stitched_row: box-only {ms_box:.1f} ms, with panoptic labels {ms_pan:.1f} ms ({ms_pan / ms_box:.2f}x)")
    print(f"  one panoptic label: {len(png) / 1e3:.0f} kB PNG, 16-bit {args.view[0]}x{args.view[1]}; two per frame")
    ref = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    for name, fn in decoders().items():
        got = np.asarray(fn(png))
        got = got[..., 0] if got.ndim == 3 else got  # pyspng hands back a second (alpha) channel
        same = np.array_equal(got, ref)
        ms = best_ms(lambda: fn(png), 3 * args.repeat)
        print(f"  {name:52}{ms:7.2f} ms   two labels = {2 * ms / ms_box:.2f}x a box-only frame{'' if same else '  (DIFFERENT PIXELS)'}")
    data = idat(png)
    print(f"  {'zlib inflate of the PNG data alone (Python zlib ' + zlib.ZLIB_RUNTIME_VERSION + ')':52}"
          f"{best_ms(lambda: zlib.decompress(data), 3 * args.repeat):7.2f} ms")


if __name__ == "__main__":
    main()
