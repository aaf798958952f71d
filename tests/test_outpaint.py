"""Outpainting: canvases, exact paste of the known pixels, batching."""

from __future__ import annotations

import numpy as np
import pytest
import factories_producers as producers
from factories_generate import stitched_row, street_image

from streetsynth.generators.outpaint import Canvas, known_width_for, make_canvas, outpaint_batch, paste_known


@pytest.fixture(scope="module")
def pipe():
    return producers.tiny_pipeline()  # built once per session, declaring its id and revision


def _row(width=128, front_x1=88):
    from PIL import Image
    import io

    row = stitched_row(0, np.random.default_rng(1), 64, width, front_x1)
    row["image"] = Image.open(io.BytesIO(row["image"]["bytes"]))
    return row


def test_known_width_from_stitch_scaled_and_from_fraction():
    row = {"id": "r", "width": 200, "stitch": {"front_x1": 150}}
    assert known_width_for(row, 200) == 150
    assert known_width_for(row, 128) == 96  # 150 * 128 / 200
    assert known_width_for(row, 128, invent_fraction=0.25) == 96
    with pytest.raises(ValueError, match="'bad'"):
        known_width_for({"id": "bad", "width": 200, "stitch": {"front_x1": 0}}, 200)


def test_canvas_keeps_left_and_masks_right():
    row = _row(front_x1=88)
    c = make_canvas(row)
    src = np.asarray(row["image"])
    assert c.known_width == 88 and c.image.shape == (64, 128, 3)
    assert np.array_equal(c.image[:, :88], src[:, :88])
    assert (c.mask[:, :88] == 0).all() and (c.mask[:, 88:] == 255).all()
    assert not np.array_equal(c.image[:, 88:], src[:, 88:])  # the real right part does not leak in


def test_known_pixels_exact_after_outpainting(pipe):
    rows = [_row(front_x1=x) for x in (80, 96)]
    canvases = [make_canvas(r) for r in rows]
    out = outpaint_batch(pipe, canvases, ["street"] * 2, ["cartoon"] * 2, [1, 2], steps=2, feather=8)
    for img, r, c in zip(out, rows, canvases):
        src = np.asarray(r["image"])
        assert img.shape == src.shape and img.dtype == np.uint8
        assert np.array_equal(img[:, :c.known_width], src[:, :c.known_width])  # bit for bit


def test_batched_call_equals_one_padded_call_per_sample(pipe):
    canvases = [make_canvas(_row()) for _ in range(3)]
    batched = outpaint_batch(pipe, canvases, ["a"] * 3, ["b"] * 3, [5, 6, 7], steps=2, pad_to=3)
    single = outpaint_batch(pipe, canvases[1:2], ["a"], ["b"], [6], steps=2, pad_to=3)
    assert np.array_equal(batched[1], single[0])
    other_seed = outpaint_batch(pipe, canvases[1:2], ["a"], ["b"], [99], steps=2, pad_to=3)
    assert not np.array_equal(batched[1], other_seed[0])


def test_feather_removes_the_colour_step_and_touches_only_its_band():
    rng = np.random.default_rng(0)
    src = street_image(rng, 64, 128)
    kw = 80
    mask = np.zeros((64, 128), np.uint8)
    mask[:, kw:] = 255
    canvas = Canvas(src.copy(), mask, kw, 1.0)
    generated = np.clip(src.astype(int) + 30, 0, 255).astype(np.uint8)  # the VAE shifted every colour
    plain = generated.copy()
    plain[:, :kw] = src[:, :kw]
    pasted = paste_known(generated, canvas, feather=8)
    assert np.array_equal(pasted[:, :kw], src[:, :kw])
    assert np.array_equal(pasted[:, kw + 8:], generated[:, kw + 8:])
    def jump(img):  # mean colour change from the last known column to the first invented one
        return float(np.abs(img[:, kw].astype(int) - img[:, kw - 1].astype(int)).mean())

    natural = float(np.abs(np.diff(src[:, kw - 10:kw].astype(int), axis=1)).mean())
    assert jump(plain) > 25 and jump(pasted) < natural + 3
