"""A dataset's preview: a contact sheet of labelled rows and an HTML page of class counts."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from streetsynth import repo, schema
from streetsynth.repo import pick_config


def object_counts(objects_column) -> dict[str, int]:
    """Objects per class over a whole ``objects`` column (a list of lists of records)."""
    cats = [o["category"] for objs in objects_column for o in objs]
    counts = np.bincount(np.asarray(cats, np.int64), minlength=len(schema.CLASS_NAMES))
    return dict(zip(schema.CLASS_NAMES, counts.tolist()))


def write_html(path: Path, sheet: Path, title: str, shown: dict[str, int], total: dict[str, int], rows: int) -> Path:
    """A small page with the sheet and a table of counts per class (shown rows and the whole split)."""
    from streetsynth.contact_sheet import CLASS_COLORS

    lines = []
    for i, name in enumerate(schema.CLASS_NAMES):
        colour = "#{:02x}{:02x}{:02x}".format(*CLASS_COLORS[i])
        lines.append(f"<tr><td><span style='color:{colour}'>&#9632;</span> {html.escape(name)}</td>"
                     f"<td>{shown[name]}</td><td>{total[name]}</td></tr>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{rows} rows in the split.</p>"
            "<table border='1' cellpadding='4'><tr><th>class</th><th>on the sheet</th><th>in the split</th></tr>"
            + "".join(lines) + f"</table><p><img src='{html.escape(sheet.name)}' style='max-width:100%'></p>"
            "</body></html>\n")
    repo.atomic_write_text(path, page)
    return path


def preview(data: Path, config: str | None = None, split: str | None = None, num: int = 12,
            out: Path | None = None, columns: int = 3) -> tuple[Path, Path]:
    """Write the contact sheet PNG and its HTML page; returns both paths. ``config`` defaults to the
    repo's synthetic config, else its stitched one; ``split`` to the config's first."""
    from streetsynth.contact_sheet import Tile, render_sheet
    from streetsynth.instances import Instances

    if num < 1:
        raise ValueError(f"--num must be >= 1, got {num}")
    available = repo.data_configs(data)
    config = pick_config(available, config, data)
    split = split or next(iter(available[config]))
    if split not in available[config]:
        raise ValueError(f"{data}: config {config!r} has no split {split!r} (has: {', '.join(available[config])})")
    ds = repo.load_split(data, config, split)
    picks = np.unique(np.linspace(0, len(ds) - 1, min(num, len(ds))).round().astype(int)) if len(ds) else []
    tiles, shown = [], []
    for i in picks:
        row = ds[int(i)]
        inst = Instances.from_row(row)
        shown.append(row["objects"])
        tiles.append(Tile(row["image"], title=str(row.get("id", i))[:48], instances=inst))
    out = Path(out) if out is not None else Path(data) / f"preview-{config}-{split}.png"
    title = f"{Path(data).name} {config}/{split}"
    sheet = render_sheet(tiles, out, columns=columns, heading=f"{title}: {len(tiles)} of {len(ds)} rows")
    page = write_html(out.with_suffix(".html"), sheet, title, object_counts(shown), object_counts(ds["objects"]),
                      len(ds))
    return sheet, page
