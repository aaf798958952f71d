"""``generate --style-image``: a reference image (or a folder, one drawn per sample) steers the invented part
through an IP-Adapter; rows record which reference by digest; a sample's pixels depend on its own reference
only, not on the references of the samples sharing its pipeline call."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from factories_generate import make_real_repo
from PIL import Image

from streetsynth.digest import file_digest
from streetsynth.generators.generate import GenerateConfig, run_generation
from streetsynth.models.inpaint import build_tiny
from streetsynth.models.tiny_ip_adapter import WEIGHT, write_tiny_ip_adapter
from streetsynth.repo import load_split, read_info


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("style")
    real = make_real_repo(root / "real", rows=3)
    adapter = write_tiny_ip_adapter(root / "adapter", build_tiny("sd-inpaint").pipeline.unet)
    styles = root / "styles"
    styles.mkdir()
    for name, colour in (("red.png", (255, 0, 0)), ("blue.png", (0, 0, 255))):
        Image.new("RGB", (40, 40), colour).save(styles / name)
    return root, real, adapter, styles


def _generate(world, store, style, batch_size=3):
    root, real, adapter, _ = world
    res = run_generation(GenerateConfig(
        real=str(real), out=str(root / store), model="tiny", steps=2, batch_size=batch_size, seed=5, seam_threshold=1e9,
        progress=False, style_image=None if style is None else str(style), style_scale=1.0, ip_adapter=str(adapter),
        ip_adapter_weight=WEIGHT))
    return res.folder, {r["id"]: r for r in load_split(res.folder, "synthetic", "synthetic")}


def test_each_sample_is_steered_by_its_own_reference_and_records_its_digest(world):
    root, real, _, styles = world
    folder, rows = _generate(world, "styled", styles)
    _, plain = _generate(world, "plain", None)
    digests = {p.name: file_digest(p) for p in styles.iterdir()}
    picked = {sid: json.loads(r["generation"]["method_details"])["style"] for sid, r in rows.items()}
    assert rows.keys() == plain.keys() and len(rows) == 3
    assert {p["name"] for p in picked.values()} == {"red.png", "blue.png"}  # the folder is drawn from per sample
    for sid, row in rows.items():
        assert picked[sid] == {"name": picked[sid]["name"], "digest": digests[picked[sid]["name"]], "scale": 1.0}
        assert plain[sid]["generation"]["method_details"] is None
        kw = row["generation"]["known_width"]
        styled_px, plain_px = np.asarray(row["image"]), np.asarray(plain[sid]["image"])
        assert np.array_equal(styled_px[:, :kw], plain_px[:, :kw])  # known pixels kept exactly
        assert np.abs(styled_px[:, kw + 8:].astype(int) - plain_px[:, kw + 8:]).mean() > 1.0  # the style steers
    for name in ("red.png", "blue.png"):  # one reference alone gives the same pixels as drawn from the folder
        single = root / f"only-{name}"
        single.mkdir()
        shutil.copy(styles / name, single / name)
        _, alone = _generate(world, f"only-{name}", single / name, batch_size=1)
        for sid, p in picked.items():
            if p["name"] == name:
                assert np.array_equal(np.asarray(alone[sid]["image"]), np.asarray(rows[sid]["image"]))
    info = read_info(folder)
    assert info["settings"]["style_image"]["name"] == "styles" and info["settings"]["style_image"]["images"] == 2
    assert info["settings"]["ip_adapter"] == "adapter" and str(root) not in json.dumps(info)
    assert info["settings"]["batch_size"] == 1  # several references: one sample per pipeline call


def test_one_reference_for_all_keeps_the_batch(world):
    """A single reference steers every sample alike, so samples still share pipeline calls."""
    root, _, _, styles = world
    folder, rows = _generate(world, "one-ref-batched", styles / "red.png")
    digest = file_digest(styles / "red.png")
    assert read_info(folder)["settings"]["batch_size"] == 3
    assert {json.loads(r["generation"]["method_details"])["style"]["digest"] for r in rows.values()} == {digest}


def test_a_family_without_an_ip_adapter_is_refused_by_name(world):
    root, real, adapter, styles = world
    with pytest.raises(ValueError, match="flux-fill family takes no IP-Adapter"):
        run_generation(GenerateConfig(real=str(real), out=str(root / "flux"), model="tiny:flux-fill", steps=1,
                                      progress=False, style_image=str(styles), ip_adapter=str(adapter)))
    assert not (root / "flux").exists()  # refused before any folder was made
