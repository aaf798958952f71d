"""COCO export: every box and mask round-trips through pycocotools exactly, and the files train outside streetsynth."""

from __future__ import annotations

import json

import factories_producers as producers
import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from streetsynth.cli import main
from streetsynth.codec import decode
from streetsynth.instances import Instances
from streetsynth.training.export_coco import ExportConfig, export


def _by_row_id(coco: COCO) -> dict[str, dict]:
    return {img["row_id"]: img for img in coco.dataset["images"]}


def test_every_box_and_mask_round_trips_through_pycocotools(tmp_path, produced_real):
    real = produced_real  # frames 0 and 2 of each segment carry panoptic masks, frame 1 boxes only
    res = export(ExportConfig(data=str(real), out=str(tmp_path / "coco")))
    assert sorted(res.annotations) == ["train", "validation"]
    for split in ("train", "validation"):
        rows = producers.rows(real, "stitched", split)
        masked = [r for r in rows if Instances.from_row(r).masks is not None]
        coco = COCO(str(tmp_path / "coco" / "annotations" / f"instances_{split}.json"))
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["vehicle", "pedestrian", "cyclist", "sign"]
        images = _by_row_id(coco)
        assert sorted(images) == sorted(r["id"] for r in masked) and len(masked) == 2  # drop-row: frame 1 left out
        assert res.counts[split] == {"images": 2, "annotations": sum(len(r["objects"]) for r in masked),
                                     "dropped_rows": 1, "dropped_objects": 0, "box_filled": 0}
        for row in masked:
            img = images[row["id"]]
            path = tmp_path / "coco" / "images" / split / img["file_name"]
            assert path.read_bytes() == row["image"]["bytes"] and (img["width"], img["height"]) == (row["width"], row["height"])
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
            inst = Instances.from_row(row)
            assert len(anns) == len(inst) > 0
            for ann, obj, mask in zip(anns, row["objects"], inst.masks):
                x0, y0, x1, y1 = obj["bbox"]
                assert ann["bbox"] == [x0, y0, x1 - x0, y1 - y0] and ann["category_id"] == obj["category"] + 1
                assert np.array_equal(coco.annToMask(ann).astype(bool), mask)
                assert ann["area"] == mask.sum() and ann["iscrowd"] == 0
                assert ann["score"] == obj["score"] and ann["mask_source"] == obj["mask_source"] == "panoptic"


def test_box_fill_and_skip_object_and_the_rows_scores(tmp_path, produced_synthetic):
    syn = produced_synthetic
    rows = producers.rows(syn, "synthetic", "synthetic")
    export(ExportConfig(data=str(syn), out=str(tmp_path / "fill"), missing_masks="box-fill"))
    coco = COCO(str(tmp_path / "fill" / "annotations" / "instances_synthetic.json"))
    images = _by_row_id(coco)
    assert sorted(images) == sorted(r["id"] for r in rows)
    filled = 0
    for row in rows:
        img = images[row["id"]]
        assert img["generation"]["seam_score"] == row["generation"]["seam_score"]
        assert img["generation"]["attempts"] == row["generation"]["attempts"] == 1
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
        assert len(anns) == len(row["objects"])
        if Instances.from_row(row).masks is None:
            for ann, obj in zip(anns, row["objects"]):
                x0, y0, x1, y1 = (int(round(v)) for v in obj["bbox"])
                box = np.zeros((row["height"], row["width"]), bool)
                box[y0:y1, x0:x1] = True
                assert ann["box_filled"] and np.array_equal(coco.annToMask(ann).astype(bool), box)
                filled += 1
    assert filled > 0  # the box-only source rows stayed box-only in the generated version

    export(ExportConfig(data=str(syn), out=str(tmp_path / "skip"), missing_masks="skip-object"))
    data = json.loads((tmp_path / "skip" / "annotations" / "instances_synthetic.json").read_text())
    assert len(data["images"]) == len(rows) and len(data["annotations"]) == len(coco.dataset["annotations"]) - filled


class CocoInstances(torch.utils.data.Dataset):
    """A plain COCO instance-segmentation dataset, as a user of another trainer writes one."""

    def __init__(self, root, annotation_file):
        self.root, self.coco = root, COCO(str(annotation_file))
        self.ids = sorted(self.coco.imgs)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        info = self.coco.imgs[self.ids[i]]
        image = decode((self.root / info["file_name"]).read_bytes())
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=[info["id"]]))
        boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], dtype=torch.float32)
        masks = torch.from_numpy(np.stack([self.coco.annToMask(a) for a in anns]))
        labels = torch.tensor([a["category_id"] for a in anns], dtype=torch.int64)
        return torch.from_numpy(image).permute(2, 0, 1).float() / 255, {"boxes": boxes, "labels": labels, "masks": masks}


def test_exported_files_train_torchvision_mask_rcnn_one_step(tmp_path, produced_real):
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    out = tmp_path / "coco"
    assert main(["export", "--data", str(produced_real), "--format", "coco", "--out", str(out),
                 "--split", "train"]) == 0
    dataset = CocoInstances(out / "images" / "train", out / "annotations" / "instances_train.json")
    images, targets = zip(*(dataset[i] for i in range(len(dataset))))
    torch.manual_seed(0)
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5)
    model = MaskRCNN(backbone, num_classes=5, min_size=64, max_size=128)
    model.train()
    before = [p.detach().clone() for p in model.roi_heads.mask_predictor.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = model(list(images), list(targets))
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_mask"] > 0
    sum(losses.values()).backward()
    optimizer.step()
    after = list(model.roi_heads.mask_predictor.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before))  # the mask head learnt from the masks


def test_bad_input_is_a_clear_error(tmp_path, capsys, produced_real):
    real = produced_real
    assert main(["export", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "not a streetsynth dataset repo" in capsys.readouterr().err
    with pytest.raises(ValueError, match="has no split"):
        export(ExportConfig(data=str(real), out=str(tmp_path / "o"), splits=["test"]))
    with pytest.raises(ValueError, match="unknown --format 'yolo'"):
        export(ExportConfig(data=str(real), out=str(tmp_path / "o"), format="yolo"))


def test_the_labellers_scores_ride_along_as_annotation_keys(tmp_path, produced_labelled):
    rows = producers.rows(produced_labelled, "synthetic", "synthetic")
    (produced_copy := producers.copy_repo(produced_labelled, tmp_path / "v")).joinpath(
        "meta", "row_scores.json").write_text(json.dumps({rows[0]["id"]: {"quality_clip": 21.5}}))
    export(ExportConfig(data=str(produced_copy), out=str(tmp_path / "out")))
    coco = COCO(str(tmp_path / "out" / "annotations" / "instances_synthetic.json"))
    images = _by_row_id(coco)
    assert images[rows[0]["id"]]["quality_clip"] == 21.5 and "quality_clip" not in images[rows[1]["id"]]
    n = 0
    for row in rows:
        if row["id"] not in images:
            continue
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[images[row["id"]]["id"]]))
        for ann, obj in zip(anns, row["objects"]):
            assert np.isfinite(ann["sam_iou"]) and 0 <= ann["sam_stability"] <= 1
            assert (ann["score"], ann["sam_iou"], ann["sam_stability"]) == (obj["score"], obj["sam_iou"],
                                                                            obj["sam_stability"])
            assert "gt_iou" not in ann  # never measured: left out, not written as null
            n += 1
    assert n > 0
