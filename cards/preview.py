"""A dataset's preview: a contact sheet of labelled rows and an HTML page of class counts.

Rows can be sorted and filtered by any score (:data:`PREVIEW_SCORES`): a row's own (seam,
plausibility, the ``quality`` CLIP score kept in its version's row-score sidecar) or the lowest of
its instances' (detector score, SAM predicted IoU, SAM stability). With ``rejected`` the sheet puts
the worst-scored accepted rows (left) beside the best-scored rejected attempts a generation kept
(right), so a user sees both sides of a threshold before choosing one.
"""

from __future__ import annotations

import html
import json
import operator
import re
from pathlib import Path
from typing import Any

import numpy as np

from streetsynth import repo, schema
from streetsynth.repo import pick_config


#: Scores a preview sorts and filters by: a row's own, or the lowest over its instances (``min_<score>``).
PREVIEW_SCORES = ("seam_score", "plausibility_score", "quality_clip", "min_score", "min_sam_iou", "min_sam_stability")
#: Where a generation keeps its rejected attempts' thumbnails and notes (generators/generate.py REJECTED_DIR).
REJECTED_DIR = "meta/rejected"
_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


def row_score(row: dict[str, Any], name: str, sidecar: dict[str, dict[str, float]] | None = None) -> float | None:
    """One of PREVIEW_SCORES for a row; None where it was not measured."""
    if name not in PREVIEW_SCORES:
        raise ValueError(f"unknown score {name!r}; known: {', '.join(PREVIEW_SCORES)}")
    if name in ("seam_score", "plausibility_score"):
        value = (row.get("generation") or {}).get(name)
    elif name == "quality_clip":
        value = (sidecar or {}).get(str(row.get("id")), {}).get(name)
    else:
        key = name[len("min_"):]
        values = [o.get(key) for o in row.get("objects") or [] if o.get(key) is not None]
        value = min(values) if values else None
    return None if value is None or not np.isfinite(value) else float(value)


def parse_where(text: str) -> tuple[str, Any, float]:
    """``"seam_score<=0.5"`` -> (score, operator, threshold); ValueError naming the known scores otherwise."""
    m = re.fullmatch(r"\s*([a-z_]+)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*", text or "")
    if not m or m.group(1) not in PREVIEW_SCORES:
        raise ValueError(f"--where takes SCORE<=X (or <, >, >=) with SCORE one of {', '.join(PREVIEW_SCORES)}; "
                         f"got {text!r}")
    return m.group(1), _OPS[m.group(2)], float(m.group(3))


def read_row_scores(data: Path) -> dict[str, dict[str, float]]:
    """The version's sidecar of per-row scores (schema.ROW_SCORES_PATH), empty if it has none."""
    path = Path(data) / schema.ROW_SCORES_PATH
    return json.loads(path.read_text()) if path.exists() else {}


def pick_rows(rows, num: int, sort: str | None = None, where: list[str] | None = None,
              sidecar: dict | None = None) -> list[int]:
    """Indices of the rows to show: those passing every ``where``, sorted by ``sort`` (``-name`` for
    descending; rows without the score last) and cut to ``num``; without ``sort``, evenly spaced."""
    conds = [parse_where(w) for w in where or []]
    names = {n for n, _, _ in conds} | ({sort.lstrip("-")} if sort else set())
    cols = [c for c in ("id", "objects", "generation") if c in rows.column_names]
    view = rows.select_columns(cols) if names else None
    scores = [{n: row_score(r, n, sidecar) for n in names} for r in view] if names else [{}] * len(rows)
    keep = [i for i, sc in enumerate(scores)
            if all(sc[n] is not None and op(sc[n], t) for n, op, t in conds)]
    if not sort:
        idx = np.unique(np.linspace(0, len(keep) - 1, min(num, len(keep))).round().astype(int)) if keep else []
        return [keep[int(i)] for i in idx]
    name, sign = sort.lstrip("-"), (-1.0 if sort.startswith("-") else 1.0)
    keep.sort(key=lambda i: (scores[i][name] is None, sign * (scores[i][name] or 0.0)))
    return keep[:num]


def _title(row: dict[str, Any], names: list[str], sidecar: dict | None) -> str:
    parts = [str(row.get("id", ""))[-20:]]
    for n in names:
        v = row_score(row, n, sidecar)
        parts.append(f"{n} {'-' if v is None else f'{v:.3g}'}")
    return " ".join(parts)


def rejected_tiles(data: Path, num: int) -> list:
    """Tiles of the ``num`` best-scored (lowest seam score) rejected attempts a generation kept."""
    from PIL import Image

    from streetsynth.contact_sheet import Tile

    folder = Path(data) / REJECTED_DIR
    notes = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []
    notes.sort(key=lambda n: n["seam_score"])
    return [Tile(np.asarray(Image.open(folder / n["thumbnail"]).convert("RGB")),
                 f"{n['id'][-20:]} try {n['attempt']} seam_score {n['seam_score']:.3g} REJECTED", border=(200, 0, 0))
            for n in notes[:num]]


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
            out: Path | None = None, columns: int = 3, sort: str | None = None, where: list[str] | None = None,
            rejected: bool = False) -> tuple[Path, Path]:
    """Write the contact sheet PNG and its HTML page; returns both paths. ``config`` defaults to the
    repo's synthetic config, else its stitched one; ``split`` to the config's first. ``sort``/``where``
    pick the rows by score (:func:`pick_rows`); ``rejected`` shows the worst accepted rows by seam
    score (unless ``sort`` says otherwise) beside the best rejected attempts, two columns."""
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
    sidecar = read_row_scores(data)
    if rejected and not sort:
        sort = "-seam_score"
    picks = pick_rows(ds, num, sort, where, sidecar)
    names = list(dict.fromkeys(([sort.lstrip("-")] if sort else []) + [parse_where(w)[0] for w in where or []]))
    tiles, shown = [], []
    for i in picks:
        row = ds[int(i)]
        inst = Instances.from_row(row)
        shown.append(row["objects"])
        title = _title(row, names, sidecar) if names else str(row.get("id", i))[:48]
        tiles.append(Tile(row["image"], title=title, instances=inst, border=(0, 160, 0) if rejected else None))
    if rejected:
        others = rejected_tiles(data, len(tiles))
        pairs = [t for k in range(max(len(tiles), len(others)))
                 for t in (tiles[k] if k < len(tiles) else None, others[k] if k < len(others) else None) if t]
        tiles, columns = pairs, 2
    out = Path(out) if out is not None else Path(data) / f"preview-{config}-{split}.png"
    title = f"{Path(data).name} {config}/{split}"
    sheet = render_sheet(tiles, out, columns=columns, heading=f"{title}: {len(tiles)} of {len(ds)} rows")
    page = write_html(out.with_suffix(".html"), sheet, title, object_counts(shown), object_counts(ds["objects"]),
                      len(ds))
    return sheet, page
