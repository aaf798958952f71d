"""Pictures people look at: instance masks overlaid class-coloured, and contact sheets of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from streetsynth.instances import Instances
from streetsynth.repo import atomic_path
from streetsynth.schema import CLASS_NAMES

#: RGB colour per class, in CLASS_NAMES order.
CLASS_COLORS: tuple[tuple[int, int, int], ...] = ((255, 140, 0), (30, 144, 255), (50, 205, 50), (220, 20, 60))


def overlay(image, instances: Instances | None, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 image with each instance's mask tinted by class and its box outlined."""
    img = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.uint8).copy()
    if instances is None or not len(instances):
        return img
    colors = np.asarray(CLASS_COLORS, np.float32)[instances.classes]
    if instances.masks is not None:
        # The colour each pixel gets from the last instance covering it (smaller ones drawn last).
        ids = instances.id_mask()
        lut = np.zeros((int(instances.ids.max()) + 1, 3), np.float32)
        lut[instances.ids] = colors
        tint = lut[ids]
        covered = (ids > 0)[..., None]
        img = np.where(covered, (1 - alpha) * img + alpha * tint, img).astype(np.uint8)
    for box, color in zip(instances.boxes.round().astype(int), colors.astype(int).tolist()):
        cv2.rectangle(img, (box[0], box[1]), (box[2] - 1, box[3] - 1), tuple(color), 1)
    return img


def class_counts(instances: Instances | None) -> dict[str, int]:
    if instances is None:
        return {}
    counts = np.bincount(instances.classes, minlength=len(CLASS_NAMES))
    return {name: int(n) for name, n in zip(CLASS_NAMES, counts) if n}


@dataclass
class Tile:
    """One picture on a sheet: the image, a caption line, optional instances, optional border."""

    image: object
    title: str = ""
    instances: Instances | None = None
    border: tuple[int, int, int] | None = None


def fit_text(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text`` shortened in the middle (...) until it fits ``width`` pixels (ids are long,
    their ends and the trailing seam score are what people read)."""
    if draw.textlength(text, font=font) <= width:
        return text
    head, tail = text[: len(text) // 2], text[len(text) // 2 :]
    while (head or tail) and draw.textlength(f"{head}...{tail}", font=font) > width:
        if len(head) >= len(tail) // 2:
            head = head[:-1]
        else:
            tail = tail[1:]
    return f"{head}...{tail}"


def render_sheet(tiles: list[Tile], path: str | Path, columns: int = 3, tile_width: int = 384,
                 heading: str = "") -> Path:
    """Write a PNG grid of tiles, each with its title and per-class counts underneath (atomically)."""
    font = ImageFont.load_default()
    line = 14
    thumbs = []
    for t in tiles:
        img = Image.fromarray(overlay(t.image, t.instances))
        h = max(1, round(img.height * tile_width / img.width))
        thumbs.append(img.resize((tile_width, h), Image.BILINEAR))
    cell_h = max((t.height for t in thumbs), default=64) + 2 * line + 8
    rows = max(1, -(-len(tiles) // columns))
    top = line + 8 if heading else 0
    sheet = Image.new("RGB", (columns * (tile_width + 8) + 8, top + rows * cell_h + 8), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if heading:
        draw.text((8, 4), heading, fill=(0, 0, 0), font=font)
    for i, (tile, thumb) in enumerate(zip(tiles, thumbs)):
        x = 8 + (i % columns) * (tile_width + 8)
        y = top + 8 + (i // columns) * cell_h
        sheet.paste(thumb, (x, y))
        if tile.border:
            draw.rectangle([x - 3, y - 3, x + thumb.width + 2, y + thumb.height + 2], outline=tile.border, width=3)
        draw.text((x, y + thumb.height + 3), fit_text(draw, tile.title, font, tile_width), fill=(0, 0, 0), font=font)
        counts = ", ".join(f"{n} {name}" for name, n in class_counts(tile.instances).items())
        if counts:
            draw.text((x, y + thumb.height + 3 + line), counts, fill=(60, 60, 60), font=font)
    path = Path(path)
    with atomic_path(path) as tmp:  # a full disk keeps the old sheet and names this one
        sheet.save(tmp, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    return path
