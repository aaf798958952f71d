"""Re-rendering keeps the real labels exactly and drops the instances the new image does not show."""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from factories_generate import make_real_repo

from streetsynth.generators.rerender import ADE20K_COLORS, RerenderConfig, run_rerender, seg_condition
from streetsynth.generators.writer import manifest_counts, read_manifest
from streetsynth.instances import Instances
from streetsynth.models.load import declare
from streetsynth.repo import load_split

PEDESTRIAN_COLOR = ADE20K_COLORS[1]


class ErasingPipeline:
    """Returns the conditioning layout itself with every pedestrian-coloured pixel erased."""

    def __call__(self, image, **kw):
        img = np.asarray(image).copy()
        img[(img == PEDESTRIAN_COLOR).all(axis=2)] = 0
        return SimpleNamespace(images=img[None].astype(np.float32) / 255.0)


def colour_detector(image):
    """A detector that follows the image: one mask per connected region of a class colour."""
    masks, classes = [], []
    for cls in (0, 1):
        n, labels = cv2.connectedComponents((image == ADE20K_COLORS[cls]).all(axis=2).astype(np.uint8))
        for k in range(1, n):
            masks.append(labels == k)
            classes.append(cls)
    h, w = image.shape[:2]
    return (np.stack(masks) if masks else np.zeros((0, h, w), bool)), np.asarray(classes, np.int64)


def _cfg(tmp_path, **kw):
    base = dict(real=str(tmp_path / "real"), out=str(tmp_path / "store"), steps=2, seed=1, rows_per_shard=2,
                pipeline=declare(ErasingPipeline(), "test/erasing", "seed-0"), verifier=colour_detector)
    return RerenderConfig(**{**base, **kw})


def test_erased_instance_is_dropped_and_kept_labels_are_the_real_ones(tmp_path):
    real = make_real_repo(tmp_path / "real", rows=2)
    res = run_rerender(_cfg(tmp_path))
    src = {r["id"]: r for r in load_split(real, "stitched", "train")}
    rows = list(load_split(res["folder"], "synthetic", "synthetic"))
    masked = [i for i, r in src.items() if r["instance_mask"] is not None]  # box-only frames are skipped
    assert [r["id"] for r in rows] == [f"{i}#rerender" for i in masked] and masked
    for row in rows:
        s = src[row["generation"]["source_id"]]
        d = json.loads(row["generation"]["method_details"])
        old, new = Instances.from_row(s), Instances.from_row(row)
        expected = _agreement_after_erasing_pedestrians(old)
        assert d["agreement"] == {str(int(i)): round(v, 6) for i, v in zip(old.ids, expected)}
        keep = np.asarray(expected) >= 0.5
        assert d["dropped_ids"] == [int(i) for i in old.ids[~keep]] and (old.classes[~keep] == 1).any()
        assert list(new.ids) == list(old.ids[keep]) and np.array_equal(new.masks, old.masks[keep])
        assert np.array_equal(new.boxes, old.boxes[keep]) and row["generation"]["method"] == "rerender"
        assert row["generation"]["prompt"].startswith(s["caption"] + ", ")


def _agreement_after_erasing_pedestrians(inst: Instances) -> list[float]:
    """Each instance's best IoU with a same-class region of the layout once pedestrians are erased:
    0 for pedestrians; for a vehicle, the connected region of vehicle pixels it lies in."""
    ids = inst.id_mask()
    vehicles = np.isin(ids, inst.ids[inst.classes == 0])
    _, regions = cv2.connectedComponents(vehicles.astype(np.uint8))
    out = []
    for i, cls in zip(inst.ids, inst.classes):
        mine = ids == i
        if cls != 0 or not mine.any():
            out.append(0.0)
            continue
        out.append(max(float((mine & (regions == k)).sum()) / float((mine | (regions == k)).sum())
                       for k in np.unique(regions[mine])))
    return out


def test_rows_with_too_few_surviving_instances_are_dropped_and_an_empty_version_is_refused(tmp_path):
    real = make_real_repo(tmp_path / "real", rows=2)
    rows = load_split(real, "stitched", "train")
    most = max(len(r["objects"]) for r in rows)
    with pytest.raises(ValueError, match=rf"0 rows accepted from \d+ attempts .*fewer than --min-kept {most + 1}") as err:
        run_rerender(_cfg(tmp_path, min_kept=most + 1))
    attempts = int(str(err.value).split("0 rows accepted from ")[1].split()[0])
    folder = tmp_path / "store" / "v0.1.0"
    counts = manifest_counts(read_manifest(folder / "meta" / "manifest.json"))
    assert 1 <= attempts <= len(rows) and counts["failed_samples"] == len(rows) and counts["accepted"] == 0
    assert not (folder / "meta" / "info.json").exists()


def test_condition_uses_the_ade20k_palette():
    masks = np.zeros((2, 8, 8), bool)
    masks[0, :4], masks[1, 5:, 5:] = True, True
    cond = seg_condition(Instances.from_masks(masks, [0, 1]))
    assert tuple(cond[0, 0]) == (0, 102, 200) and tuple(cond[7, 7]) == (150, 5, 61) and not cond[5, 0].any()


def test_layout_conditions_draw_the_rows_stuff_classes(tmp_path):
    from streetsynth.generators.layout_palette import LAYOUT_COLORS
    from streetsynth.generators.rerender import ADE20K_STUFF, condition_image
    from streetsynth.schema import SEG_ROAD, SEG_SKY

    rows = load_split(make_real_repo(tmp_path / "real", rows=2), "stitched", "train")
    row = next(r for r in rows if r["semantic_mask"] is not None)
    inst, sem = Instances.from_row(row), np.asarray(row["semantic_mask"])
    image = np.asarray(row["image"])
    free = inst.id_mask() == 0
    for condition, colours in (("layout", {SEG_ROAD: LAYOUT_COLORS["road"], SEG_SKY: LAYOUT_COLORS["sky"]}),
                               ("seg", {SEG_ROAD: ADE20K_STUFF[SEG_ROAD], SEG_SKY: ADE20K_STUFF[SEG_SKY]})):
        cond = condition_image(condition, row, inst, image)
        for seg, colour in colours.items():
            assert (sem == seg).any() and (cond[(sem == seg) & free] == colour).all(), condition


def test_a_trained_controlnet_drives_rerender_and_rows_record_its_digest(tmp_path):
    from streetsynth.digest import file_digest
    from streetsynth.training.controlnet import ControlNetConfig, train_controlnet

    real = make_real_repo(tmp_path / "real", rows=2)
    cn = tmp_path / "cn"
    train_controlnet(ControlNetConfig(real=str(real), model="tiny", out=str(cn), max_steps=1, height=64, width=128,
                                      lr=1e-3, progress=False))
    digest = file_digest(cn / "diffusion_pytorch_model.safetensors")

    def nothing(image):
        return np.zeros((0, *image.shape[:2]), bool), np.zeros(0, np.int64)

    cfg = RerenderConfig(real=str(real), out=str(tmp_path / "store"), model="tiny", controlnet=str(cn), steps=2,
                         seed=1, iou_threshold=0.0, verifier=nothing)
    res = run_rerender(cfg)
    rows = list(load_split(res["folder"], "synthetic", "synthetic"))
    assert rows
    for row in rows:
        d = json.loads(row["generation"]["method_details"])
        assert d["condition"] == "layout" and d["stuff_drawn"] is True
        assert d["controlnet"] == {"name": "cn", "digest": digest, "palette": "streetsynth-layout-v1"}
        assert row["generation"]["model_id"].endswith("+cn") and digest in row["generation"]["model_revision"]
    info = json.loads((res["folder"] / "meta" / "info.json").read_text())
    assert info["controlnet"]["digest"] == digest and str(tmp_path) not in json.dumps(info)


def _style_folder(path, colours):
    from PIL import Image

    path.mkdir(parents=True)
    for i, colour in enumerate(colours):
        Image.new("RGB", (40, 40), colour).save(path / f"ref{i}.png")
    return path


def _nothing(image):
    return np.zeros((0, *image.shape[:2]), bool), np.zeros(0, np.int64)


def test_style_image_steers_rerender_through_an_ip_adapter_and_rows_record_its_digest(tmp_path):
    from streetsynth.digest import file_digest
    from streetsynth.models.tiny_controlnet import build_tiny_unet
    from streetsynth.models.tiny_ip_adapter import WEIGHT, write_tiny_ip_adapter

    real = make_real_repo(tmp_path / "real", rows=3)
    adapter = write_tiny_ip_adapter(tmp_path / "adapter", build_tiny_unet(3))
    styles = _style_folder(tmp_path / "styles", [(255, 0, 0), (0, 0, 255)])

    def run(store, style):
        cfg = RerenderConfig(real=str(real), out=str(tmp_path / store), model="tiny", steps=2, seed=1,
                             iou_threshold=0.0, verifier=_nothing, style_image=style, style_scale=1.0,
                             ip_adapter=str(adapter), ip_adapter_weight=WEIGHT)
        res = run_rerender(cfg)
        return res, {r["id"]: r for r in load_split(res["folder"], "synthetic", "synthetic")}

    res, rows = run("styled", str(styles))
    _, plain = run("plain", None)
    digests = {p.name: file_digest(p) for p in styles.iterdir()}
    assert rows.keys() == plain.keys() and rows
    for sid, row in rows.items():
        style = json.loads(row["generation"]["method_details"])["style"]
        assert style == {"name": style["name"], "digest": digests[style["name"]], "scale": 1.0}
        assert json.loads(plain[sid]["generation"]["method_details"])["style"] is None
        assert not np.array_equal(np.asarray(row["image"]), np.asarray(plain[sid]["image"]))  # the style steers
    info = json.loads((res["folder"] / "meta" / "info.json").read_text())
    assert info["settings"]["style_image"]["name"] == "styles" and info["settings"]["style_image"]["images"] == 2
    assert str(tmp_path) not in json.dumps(info)


def test_style_image_errors_name_the_missing_file(tmp_path):
    from streetsynth.generators.style_reference import IP_ADAPTER_WEIGHT, StyleImages, load_ip_adapter
    from streetsynth.models.tiny_controlnet import build_tiny_controlnet_pipeline

    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        StyleImages(tmp_path / "nope.png", 0.6)
    pipe = build_tiny_controlnet_pipeline(0)
    with pytest.raises(FileNotFoundError, match=r"h94/IP-Adapter.*models/ip-adapter_sd15\.safetensors.*offline"):
        load_ip_adapter(pipe, "h94/IP-Adapter", IP_ADAPTER_WEIGHT)  # HF_HUB_OFFLINE=1 in the tests
    (tmp_path / "adapter").mkdir()
    with pytest.raises(FileNotFoundError, match=r"missing .*adapter/models/ip-adapter_sd15\.safetensors"):
        load_ip_adapter(pipe, str(tmp_path / "adapter"), IP_ADAPTER_WEIGHT)
