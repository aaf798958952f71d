"""`label` on a real repo made by the sample maker and builder: ground-truth box prompts, resume after SIGKILL."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import datasets
import numpy as np
import pytest
from PIL import Image
from segment_anything import SamPredictor

from streetsynth import repo
from streetsynth.builders.waymo import build_real
from streetsynth.cli import main
from streetsynth.generators.label import build_labeler
from streetsynth.generators.relabel import label_repo, mask_iou, sam_box_masks
from streetsynth.instances import Instances, decode_id_mask
from streetsynth.models.sam import build_constant_sam
from streetsynth.builders.sample import make_sample

VIEW = (96, 144)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    root = tmp_path_factory.mktemp("relabel")
    make_sample(root / "sample", segments=2, frames=4, seed=0, view_size=VIEW)
    build_real(root / "sample", root / "real", size=(64, 160))
    return root / "real"


@pytest.fixture(scope="module")
def labeler():
    return build_labeler("tiny", "tiny")


def _rows(folder, split):
    ds = repo.load_split(folder, "stitched", split)
    return list(ds.cast_column("image", datasets.Image(decode=False)))


@pytest.mark.slow
def test_ground_truth_boxes_give_every_object_a_mask_panoptic_first(real, labeler, tmp_path):
    res = label_repo(real, tmp_path / "store", labeler, prompt_boxes="ground-truth", shard_size=2, progress=False)
    assert res.tag == "v0.1.0"
    ious = []
    n_panoptic = n_sam = n_empty = 0
    for split in ("train", "validation"):
        src, out = _rows(real, split), _rows(res.folder, split)
        assert [r["id"] for r in out] == [r["id"] for r in src]
        for old, new in zip(src, out):
            assert new["image"]["bytes"] == old["image"]["bytes"]
            keep = ("bbox", "category", "instance_id", "source")
            assert [{k: o[k] for k in keep} for o in new["objects"]] == [{k: o[k] for k in keep} for o in old["objects"]]
            if not old["objects"]:
                continue
            h, w = old["height"], old["width"]
            before, after = Instances.from_row(old, h, w), Instances.from_row(new, h, w)
            panoptic = before.masks.any(axis=(1, 2)) if before.masks is not None else np.zeros(len(before), bool)
            rgb = np.asarray(Image.open(io.BytesIO(old["image"]["bytes"])).convert("RGB"))
            sam, sam_scores = sam_box_masks(labeler, rgb, before.boxes)
            for name in ("sam_iou", "sam_stability"):  # SAM's own scores of the mask each box drew
                got = np.array([o[name] for o in new["objects"]], np.float32)
                assert np.isfinite(got).all() and ((got >= 0) & (got <= 1.0 + 1e-6) if name == "sam_stability"
                                                   else np.isfinite(got)).all()
                np.testing.assert_allclose(got, sam_scores[name], rtol=1e-5, atol=1e-6)
            gt_iou = [o["gt_iou"] for o in new["objects"]]
            want_iou = mask_iou(sam[panoptic], before.masks[panoptic]) if panoptic.any() else []
            assert [v for v, p in zip(gt_iou, panoptic) if not p] == [None] * int((~panoptic).sum())
            np.testing.assert_allclose([v for v, p in zip(gt_iou, panoptic) if p], want_iou, rtol=1e-5)
            taken = before.masks[panoptic].any(axis=0) if panoptic.any() else np.zeros((h, w), bool)
            for k in np.flatnonzero(panoptic):
                assert np.array_equal(after.masks[k], before.masks[k])  # panoptic masks win, untouched
            # SAM's masks where no panoptic object is; overlapping SAM masks resolve as every id mask does
            want = np.where(panoptic[:, None, None], after.masks, sam & ~taken)
            want = Instances(before.boxes, before.classes, h, w, masks=want, ids=before.ids).id_mask()
            assert np.array_equal(decode_id_mask(new["instance_mask"]), want)
            shown = np.isin(before.ids, want)
            assert [o["mask_source"] for o in new["objects"]] == \
                ["panoptic" if p else "sam-box" if s else "sam-box-empty" for p, s in zip(panoptic, shown)]
            n_empty += int((~panoptic & ~shown).sum())
            if panoptic.any():
                ious += mask_iou(sam[panoptic], before.masks[panoptic]).tolist()
            n_panoptic += int(panoptic.sum())
            n_sam += int((~panoptic).sum())
    assert n_panoptic > 0 and n_sam > 0  # the sample has frames with and without panoptic labels
    info = repo.read_info(res.folder)
    want_sources = {"panoptic": n_panoptic, "sam-box": n_sam - n_empty, "sam-box-empty": n_empty}
    assert info["mask_sources"] == {k: v for k, v in want_sources.items() if v}
    assert info["mask_iou"]["sam_vs_panoptic"] == {"objects": len(ious), "mean": round(float(np.mean(ious)), 4),
                                                   "median": round(float(np.median(ious)), 4)}


def _label_cmd(real, store):
    return [sys.executable, "-m", "streetsynth.cli", "label", "--data", str(real), "--out", str(store),
            "--prompt-boxes", "ground-truth", "--shard-size", "1"]


def _shards(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted((folder / "data").rglob("*.parquet"))}


@pytest.mark.slow
def test_sigkill_then_resume_equals_a_clean_run(real, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    clean = subprocess.run(_label_cmd(real, tmp_path / "clean"), env=env, capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stderr
    assert "SAM vs panoptic mask IoU" in clean.stdout

    store = tmp_path / "killed"
    proc = subprocess.Popen(_label_cmd(real, store), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = store / "v0.1.0" / "meta" / "manifest-train.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists() and len(json.loads(manifest.read_text() or "{}").get("shards", [])) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (store / "v0.1.0" / repo.INFO_PATH).exists()

    again = subprocess.run(_label_cmd(real, store), env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in store.iterdir() if p.is_dir()) == ["v0.1.0"]
    assert _shards(store / "v0.1.0") == _shards(tmp_path / "clean" / "v0.1.0")
    resumed, clean_info = repo.read_info(store / "v0.1.0"), repo.read_info(tmp_path / "clean" / "v0.1.0")
    assert resumed["mask_iou"] == clean_info["mask_iou"] and resumed["mask_sources"] == clean_info["mask_sources"]


def test_label_refuses_bad_arguments_before_loading_models(real, tmp_path, capsys):
    assert main(["label", "--data", str(real), "--out", str(tmp_path / "s"), "--shard-size", "0"]) == 2
    assert "--shard-size must be >= 1" in capsys.readouterr().err
    assert main(["label", "--data", str(real), "--out", str(tmp_path / "s"), "--prompt-boxes", "ground-truth",
                 "--mode", "auto"]) == 2
    assert "needs --mode box" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def _box_rect(box, h, w, margin=4):
    x0, y0, x1, y1 = box
    m = np.zeros((h, w), bool)
    m[max(int(np.floor(y0)) - margin, 0):int(np.ceil(y1)) + margin,
      max(int(np.floor(x0)) - margin, 0):int(np.ceil(x1)) + margin] = True
    return m


@pytest.mark.parametrize("full", [True, False], ids=["sam-fills-the-image", "sam-finds-nothing"])
def test_ground_truth_sam_masks_stay_in_their_box_or_are_counted_empty(real, tmp_path, full):
    """A SAM answering every box with the whole image gives each box-only object its box (plus the margin,
    minus panoptic pixels); a SAM finding nothing leaves them box-only, each counted as ``sam-box-empty``."""
    lab = build_labeler("tiny", "tiny")
    lab.predictor = SamPredictor(build_constant_sam(full))
    res = label_repo(real, tmp_path / "store", lab, splits=["train"], limit=2, prompt_boxes="ground-truth",
                     progress=False)  # a panoptic frame and a box-only one
    counts: dict[str, int] = {}
    out = _rows(res.folder, "train")
    assert len(out) == 2
    for old, new in zip(_rows(real, "train"), out):
        h, w = old["height"], old["width"]
        before = Instances.from_row(old, h, w)
        panoptic = before.masks.any(axis=(1, 2)) if before.masks is not None else np.zeros(len(before), bool)
        masks = before.masks.copy() if before.masks is not None else np.zeros((len(before), h, w), bool)
        taken = masks[panoptic].any(axis=0)
        for k in np.flatnonzero(~panoptic):
            masks[k] = _box_rect(before.boxes[k], h, w) & ~taken if full else False
        want = Instances(before.boxes, before.classes, h, w, masks=masks, ids=before.ids).id_mask()
        assert np.array_equal(decode_id_mask(new["instance_mask"]), want)
        shown = np.isin(before.ids, want)
        sources = ["panoptic" if p else "sam-box" if s else "sam-box-empty" for p, s in zip(panoptic, shown)]
        assert [o["mask_source"] for o in new["objects"]] == sources
        for s in sources:
            counts[s] = counts.get(s, 0) + 1
    assert counts["panoptic"] > 0 and counts.get("sam-box" if full else "sam-box-empty", 0) > 0
    assert (full and "sam-box-empty" not in counts) or (not full and "sam-box" not in counts)
    assert repo.read_info(res.folder)["mask_sources"] == dict(sorted(counts.items()))


class Killed(Exception):
    pass


def test_interrupted_label_run_resumes_to_the_info_of_an_uninterrupted_one(real, tmp_path, monkeypatch):
    """A run that dies after two of three rows (panoptic, box-only; the third is panoptic), resumed: info.json
    (mask IoU included) and the shards equal a clean run's, and nothing published names a local path."""
    from streetsynth.generators import relabel

    lab = build_labeler("tiny", "tiny")
    how = {"splits": ["train"], "limit": 3, "shard_size": 1, "prompt_boxes": "ground-truth", "progress": False}
    clean = label_repo(real, tmp_path / "clean", lab, **how)
    real_row, calls = relabel.box_prompted_row, []

    def dies_on_the_third_row(row, labeler):
        calls.append(row["id"])
        if len(calls) == 3:
            raise Killed
        return real_row(row, labeler)

    monkeypatch.setattr(relabel, "box_prompted_row", dies_on_the_third_row)
    with pytest.raises(Killed):
        label_repo(real, tmp_path / "store", lab, **how)
    monkeypatch.setattr(relabel, "box_prompted_row", real_row)
    again = label_repo(real, tmp_path / "store", lab, **how)
    info, want = repo.read_info(again.folder), repo.read_info(clean.folder)
    assert want["mask_iou"]["sam_vs_panoptic"]["objects"] == 11  # the train split's panoptic objects: 5 + 6
    assert info["mask_iou"] == want["mask_iou"] and info["mask_sources"] == want["mask_sources"]
    assert _shards(again.folder) == _shards(clean.folder)
    assert info["source"] == {"name": "real", "kind": want["source"]["kind"], "version": want["source"]["version"],
                              "fingerprint": repo.read_info(real)["fingerprint"]}
    for folder in (clean.folder, again.folder):
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix in (".json", ".md", ".jsonl"):
                text = path.read_text()
                assert str(tmp_path) not in text and str(real.resolve()) not in text, path


def test_label_refuses_to_write_into_its_source(real, capsys):
    for out in (real, real / "masks"):
        assert main(["label", "--data", str(real), "--out", str(out), "--prompt-boxes", "ground-truth"]) == 2
        assert "lies inside it" in capsys.readouterr().err
    assert not (real / "masks").exists() and not (real / "v0.1.0").exists()


def test_generate_with_a_sam_gives_every_carried_box_only_object_a_mask(real, tmp_path):
    """Outpainting a box-only frame with a labeler: each carried object gets SAM's mask from its own box."""
    from streetsynth.generators.generate import GenerateConfig, run_generation
    from streetsynth.models.tiny_inpaint import build_tiny_inpaint_pipeline

    pipe = build_tiny_inpaint_pipeline(seed=0)
    pipe._streetsynth_model = ("streetsynth/tiny-random-inpaint", "seed-0")
    lab = build_labeler("tiny", "tiny", score_threshold=1.0)  # the detector finds nothing: only carried objects
    lab.predictor = SamPredictor(build_constant_sam(True))
    res = run_generation(GenerateConfig(real=str(real), out=str(tmp_path / "store"), num=2, steps=2, batch_size=2,
                                         seam_threshold=1e9, pipeline=pipe, labeler=lab, progress=False))
    rows = {r["id"]: r for r in _rows(real, "train")}
    out = repo.load_split(res.folder, "synthetic", "synthetic").cast_column("image", datasets.Image(decode=False))
    seen = set()
    for row in out:
        src = rows[row["generation"]["source_id"]]
        inst = Instances.from_row(row)
        sources = [o["mask_source"] for o in row["objects"]]
        seen.update(sources)
        if src["instance_mask"] is None:  # a box-only source frame: every object SAM's box, cut to the box
            assert sources == ["sam-box"] * len(inst) and len(inst) > 0
            for box, mask in zip(inst.boxes, inst.masks):
                assert mask.any() and not (mask & ~_box_rect(box, row["height"], row["width"])).any()
        else:
            assert set(sources) == {"panoptic"}
    assert seen == {"sam-box", "panoptic"}
