"""The layout palette: one RGB colour per class of a scene layout, ours (not ADE20K's).

A layout is what a layout ControlNet sees: the real row's instances (``schema.CLASS_NAMES``)
drawn over its stuff classes (from ``semantic_mask``, Waymo's segmentation types, where the
frame has panoptic labels). ``streetsynth train controlnet`` trains on these colours and
``rerender --controlnet`` draws them, so the two agree by construction. Black means "no
layout here": unlabelled pixels, rows without panoptic labels outside their instances, and the
empty condition of layout dropout.

| class | RGB | Waymo segmentation types |
| --- | --- | --- |
| vehicle | (0, 0, 255) | car, truck, bus, other large vehicle, trailer |
| pedestrian | (255, 0, 0) | pedestrian |
| cyclist | (255, 128, 0) | cyclist, motorcyclist |
| sign | (255, 255, 0) | sign |
| road | (128, 64, 128) | road, lane marker, road marker |
| sidewalk | (244, 35, 232) | sidewalk |
| building | (70, 70, 70) | building |
| vegetation | (107, 142, 35) | vegetation |
| sky | (70, 130, 180) | sky |
| ground | (152, 251, 152) | ground |
| pole | (153, 153, 153) | pole, construction cone/pole |
| traffic light | (250, 170, 30) | traffic light |
| bicycle | (119, 11, 32) | bicycle, motorcycle (parked, no rider) |
"""

from __future__ import annotations

import numpy as np

from streetsynth.instances import Instances
from streetsynth.schema import CLASS_NAMES, SEGMENTATION_TO_CLASS

#: Palette name recorded with every trained ControlNet and every layout-conditioned row.
PALETTE_NAME = "streetsynth-layout-v1"
#: The file beside a trained ControlNet that names the palette it learned (``palette_record``).
PALETTE_FILE = "layout_palette.json"
#: Stuff (and unkept thing) classes of the layout, after CLASS_NAMES.
STUFF_NAMES: tuple[str, ...] = ("road", "sidewalk", "building", "vegetation", "sky", "ground", "pole",
                                "traffic light", "bicycle")
LAYOUT_NAMES: tuple[str, ...] = CLASS_NAMES + STUFF_NAMES
#: RGB per LAYOUT_NAMES entry.
LAYOUT_COLORS: dict[str, tuple[int, int, int]] = {
    "vehicle": (0, 0, 255), "pedestrian": (255, 0, 0), "cyclist": (255, 128, 0), "sign": (255, 255, 0),
    "road": (128, 64, 128), "sidewalk": (244, 35, 232), "building": (70, 70, 70), "vegetation": (107, 142, 35),
    "sky": (70, 130, 180), "ground": (152, 251, 152), "pole": (153, 153, 153), "traffic light": (250, 170, 30),
    "bicycle": (119, 11, 32),
}
#: Waymo segmentation type -> stuff name (things go through ``schema.SEGMENTATION_TO_CLASS``).
SEGMENTATION_TO_STUFF: dict[int, str] = {20: "road", 21: "road", 22: "road", 23: "sidewalk", 19: "building",
                                         24: "vegetation", 25: "sky", 26: "ground", 14: "pole", 15: "pole",
                                         18: "traffic light", 6: "bicycle", 7: "bicycle"}


def segmentation_lut() -> np.ndarray:
    """(256, 3) uint8: Waymo segmentation type -> layout colour (black for types outside the palette)."""
    lut = np.zeros((256, 3), np.uint8)
    for seg, cls in SEGMENTATION_TO_CLASS.items():
        lut[seg] = LAYOUT_COLORS[CLASS_NAMES[cls]]
    for seg, name in SEGMENTATION_TO_STUFF.items():
        lut[seg] = LAYOUT_COLORS[name]
    return lut


def palette_record() -> dict:
    """The palette as JSON-able data: its name and every class's colour (saved beside a trained ControlNet)."""
    return {"name": PALETTE_NAME, "colors": {n: list(LAYOUT_COLORS[n]) for n in LAYOUT_NAMES}}


def draw_layout(inst: Instances, semantic: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) uint8 layout: ``semantic`` (Waymo types) coloured where given, the instances on top.

    Instance pixels take their class's colour whatever the semantic map says there, so a row's
    labels and its layout agree; rows without masks draw their stuff only (no boxes are filled).
    """
    h, w = inst.height, inst.width
    if semantic is not None and semantic.shape != (h, w):
        raise ValueError(f"semantic map {semantic.shape} does not match the instances' canvas {(h, w)}")
    out = segmentation_lut()[semantic] if semantic is not None else np.zeros((h, w, 3), np.uint8)
    if inst.masks is None or len(inst) == 0:
        return out
    ids = inst.id_mask()
    lut = np.zeros((int(inst.ids.max(initial=0)) + 1, 3), np.uint8)
    lut[inst.ids] = [LAYOUT_COLORS[CLASS_NAMES[int(c)]] for c in inst.classes]
    return np.where((ids > 0)[..., None], lut[ids], out)


def row_semantic(row: dict) -> np.ndarray | None:
    """A row's ``semantic_mask`` as (H, W) uint8 Waymo types (decoded PIL or raw bytes), or None without one."""
    sem = row.get("semantic_mask")
    if sem is None:
        return None
    if isinstance(sem, dict):
        from streetsynth import codec

        return codec.decode_unchanged(sem["bytes"], f"row {row.get('id')} semantic_mask")
    return np.asarray(sem, np.uint8)


def row_layout(row: dict) -> np.ndarray:
    """The layout of a dataset row (its ``objects``, ``instance_mask`` and, where present, ``semantic_mask``)."""
    return draw_layout(Instances.from_row(row), row_semantic(row))
