"""The preview contact sheet and its HTML counts, on a hand-made repo with known objects."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from streetsynth import repo, schema
from streetsynth.instances import Instances

H, W = 64, 128


def _row(i: int) -> dict:
    masks = np.zeros((2, H, W), bool)
    masks[0, 10:30, 10:50] = True
    masks[1, 20:60, 70:80] = True
    fields = Instances.from_masks(masks, [0, 1], sources=["gt", "gt"]).to_row()
    return {"id": f"r{i}", "segment": "s", "timestamp_micros": i,
            "metadata": {"time_of_day": "Day", "location": "x", "weather": "sunny"},
            "image": Image.fromarray(np.full((H, W, 3), 40 * i, np.uint8)), "width": W, "height": H,
            "objects": fields["objects"], "instance_mask": fields["instance_mask"], "caption": "", "caption_source": "",
            "stitch": {"method": "t", "yaw_deg": 0.0, "front_x1": 80, "right_x0": 48}}


def test_preview_writes_sheet_and_html_with_counts(tmp_path):
    from streetsynth.cli import main

    data = tmp_path / "repo"
    repo.write_shard(data, schema.STITCHED, "train", 0, [_row(i) for i in range(5)], schema.stitched_features())
    repo.write_info(data, {"kind": "real"})
    repo.write_readme(data)
    out = tmp_path / "sheet.png"
    assert main(["preview", str(data), "--num", "2", "--out", str(out)]) == 0
    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert sheet.shape[1] > 3 * 300
    vehicle_orange = (np.abs(sheet.astype(int) - [255, 140, 0]).sum(axis=2) < 60).sum()
    assert vehicle_orange > 100  # vehicle boxes drawn / masks tinted in the class colour
    page = out.with_suffix(".html").read_text()
    assert "<td>2</td><td>5</td>" in page  # vehicles: 2 rows shown, 5 in the split
    assert "5 rows in the split" in page and "sheet.png" in page


def test_preview_of_missing_config_is_a_clear_error(tmp_path, capsys):
    from streetsynth.cli import main

    data = tmp_path / "repo"
    repo.write_shard(data, schema.STITCHED, "train", 0, [_row(0)], schema.stitched_features())
    repo.write_info(data, {"kind": "real"})
    assert main(["preview", str(data), "--config", "synthetic"]) == 2
    assert "no config 'synthetic'" in capsys.readouterr().err


def test_long_titles_are_shortened_in_the_middle_to_fit_their_tile():
    from PIL import ImageDraw, ImageFont

    from streetsynth.cards.contact_sheet import fit_text

    draw, font = ImageDraw.Draw(Image.new("RGB", (10, 10))), ImageFont.load_default()
    title = "80206506086407320_1000_000_0020_000_155000000020000 try 2 seam 14.1"
    short = fit_text(draw, title, font, 200)
    assert draw.textlength(short, font=font) <= 200 < draw.textlength(title, font=font)
    assert short.endswith("seam 14.1") and short.startswith("8020") and "..." in short
    assert fit_text(draw, "seam 1.2", font, 200) == "seam 1.2"


def test_preview_sorts_and_filters_by_scores_on_planted_rows(tmp_path):
    from factories_scores import write_planted
    from streetsynth.cards.preview import pick_rows, preview
    from streetsynth.repo import load_split

    folder = write_planted(tmp_path / "store")
    rows = load_split(folder, "synthetic", "synthetic")
    ids = lambda picks: [rows[i]["id"] for i in picks]  # noqa: E731
    # planted seam scores 0.1, 0.5, 0.2, 0.9; lowest SAM IoU per row 0.4, 0.4, 0.8, 0.4
    assert ids(pick_rows(rows, 2, sort="-seam_score")) == ["planted-3", "planted-1"]
    assert ids(pick_rows(rows, 4, sort="seam_score", where=["seam_score<0.6"])) == ["planted-0", "planted-2", "planted-1"]
    assert ids(pick_rows(rows, 4, where=["min_sam_iou>=0.5"])) == ["planted-2"]
    with pytest.raises(ValueError, match="min_sam_iou"):
        pick_rows(rows, 2, where=["sam<0.3"])
    sheet, page = preview(folder, num=2, sort="-seam_score", rejected=True, out=tmp_path / "p.png")
    assert sheet.stat().st_size > 0 and page.exists()
