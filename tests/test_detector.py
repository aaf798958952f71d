"""Detector building, our checkpoint folders, COCO state-dict files and the class maps."""

from __future__ import annotations

import json

import pytest
import torch

from streetsynth.models import detector as det
from streetsynth.schema import CLASS_NAMES

PED, VEH, CYC, SIGN = (CLASS_NAMES.index(n) for n in ("pedestrian", "vehicle", "cyclist", "sign"))


def test_coco_class_map_maps_people_and_vehicles_and_options():
    base = det.coco_class_map()
    assert base == {1: PED, 3: VEH, 4: VEH, 6: VEH, 8: VEH}
    full = det.coco_class_map(cyclist=True, sign=True)
    assert full[2] == CYC and full[13] == SIGN


def test_unknown_arch_is_refused():
    with pytest.raises(ValueError, match="known: v2, v1, mobilenet, tiny"):
        det.build_maskrcnn("resnet9000")


def test_tiny_is_the_seeded_model_nudged_to_person_and_car():
    model, cmap, desc = det.load_detector("tiny")
    assert desc == "maskrcnn:tiny(seed=0)" and cmap == det.coco_class_map()
    torch.manual_seed(0)
    plain = det.build_maskrcnn("tiny", num_classes=det.COCO_NUM_CLASSES).state_dict()
    nudged = model.state_dict()
    cls, mask = "roi_heads.box_predictor.cls_score.bias", "roi_heads.mask_predictor.mask_fcn_logits.bias"
    assert [k for k in plain if not torch.equal(plain[k], nudged[k])] == [cls, mask]
    expected_cls = plain[cls].clone()
    expected_cls[[1, 3]] += 4.0  # person and car
    assert torch.equal(nudged[cls], expected_cls) and torch.equal(nudged[mask], plain[mask] + 4.0)
    # it answers with exactly its 6 detections, all person or car, each mask filling its own box
    with torch.no_grad():
        out = model([torch.rand(3, 128, 256, generator=torch.Generator().manual_seed(1))])[0]
    assert out["masks"].shape == (6, 1, 128, 256) and set(out["labels"].tolist()) <= {1, 3}
    for m, box in zip(out["masks"][:, 0] > 0.5, out["boxes"].round().int().tolist()):
        x0, y0, x1, y1 = box
        inside = m[y0:y1, x0:x1]
        assert inside.sum() == m.sum() and inside.float().mean() >= 15 / 16  # one column lost at the border


def test_checkpoint_folder_round_trip_maps_labels_to_class_names(tmp_path):
    model = det.build_maskrcnn("tiny", num_classes=3, min_size=64, max_size=128)
    det.save_checkpoint_dir(model, {"arch": "tiny", "num_classes": 3, "class_names": ["pedestrian", "vehicle"],
                                    "min_size": 64, "max_size": 128}, tmp_path / "ckpt")
    loaded, cmap, desc = det.load_detector(str(tmp_path / "ckpt"))
    assert cmap == {1: PED, 2: VEH}
    assert desc.startswith("maskrcnn:tiny:ckpt@")
    assert loaded.transform.min_size == (64,) and loaded.transform.max_size == 128
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["arch"] == "tiny"


def test_checkpoint_config_needs_arch(tmp_path):
    with pytest.raises(ValueError, match="needs 'arch'"):
        det.save_checkpoint_dir(det.build_maskrcnn("tiny", num_classes=3), {"num_classes": 3}, tmp_path / "c")
    (tmp_path / "bad").mkdir()
    with pytest.raises(FileNotFoundError, match="not a detector checkpoint"):
        det.load_detector(str(tmp_path / "bad"))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_coco_state_dict_file_loads_with_the_coco_map(tmp_path, suffix):
    from safetensors.torch import save_file

    model = det.build_tiny_detector(seed=3)
    path = tmp_path / f"coco{suffix}"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    loaded, cmap, desc = det.load_detector(str(path), cyclist=True)
    assert cmap == det.coco_class_map(cyclist=True) and "tiny" in desc and "cyclist=True" in desc
    assert torch.equal(loaded.state_dict()["roi_heads.box_predictor.cls_score.bias"], state[
        "roi_heads.box_predictor.cls_score.bias"])


def test_coco_weights_file_with_other_num_classes_gets_new_heads(tmp_path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in det.build_tiny_detector().state_dict().items()}, str(tmp_path / "c.safetensors"))
    model = det.build_maskrcnn("tiny", num_classes=5, weights=str(tmp_path / "c.safetensors"))
    assert model.roi_heads.box_predictor.cls_score.out_features == 5
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 5


def test_architectures_are_recognised_from_state_dicts():
    for arch in ("v1", "v2", "mobilenet", "tiny"):
        assert det.infer_arch(det.build_maskrcnn(arch, num_classes=3).state_dict()) == arch


def test_torchvision_weights_offline_say_they_are_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(OSError, match="not available offline"):
        det.load_detector("DEFAULT")
    with pytest.raises(ValueError, match="unknown torchvision weights"):
        det.load_detector("MaskRCNN_ResNet50_FPN_V2_Weights.NOPE")


def test_missing_and_unpicklable_files_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError):
        det.load_detector(str(tmp_path / "none.pth"))
    bad = tmp_path / "evil.pth"
    torch.save({"obj": object()}, bad)
    with pytest.raises(ValueError, match="weights_only=True"):
        det.load_detector(str(bad))
