"""The row schema of every streetsynth dataset, defined once.

The real configs (``stitched``, ``pairs``) and the synthetic config share the object and mask
layout, so training reads both the same way. ``datasets.Features`` are derived from here and
nowhere else. ``datasets`` is imported inside the feature functions: the names and constants here
are read by every command while its parser is built, which must not wait for ``datasets``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datasets

#: Classes we label, in ClassLabel order. Waymo's own types map onto these.
CLASS_NAMES: tuple[str, ...] = ("vehicle", "pedestrian", "cyclist", "sign")

#: Where an object's mask came from: Waymo's panoptic label, SAM prompted with the object's box,
#: a ground-truth mask of a test or import, or the Mask R-CNN + SAM labeler.
MASK_SOURCES: tuple[str, ...] = ("panoptic", "sam-box", "sam-box-empty", "ground-truth", "maskrcnn+sam")

#: Per-instance scores beside the detector's ``score``, each in [0, 1] or None where not measured:
#: ``sam_iou``: SAM's own predicted IoU of the mask it drew (the lowest over the SAM masks merged into it);
#: ``sam_stability``: SAM's stability score of that mask (IoU of its masks thresholded at logit -1 and +1);
#: ``gt_iou``: mask IoU against a ground truth or second labeler where both saw the object (inside the
#: region the ground truth covers).
INSTANCE_SCORES: tuple[str, ...] = ("sam_iou", "sam_stability", "gt_iou")
#: Per-row scores a load-time filter or a preview can use: ``generation.seam_score`` (lower is better),
#: ``generation.plausibility_score`` (higher is better), and ``quality_clip`` (the CLIP score x100 of the
#: invented region to its prompt, kept by ``quality`` in the version's ROW_SCORES_PATH sidecar, keyed by row id).
ROW_SCORES: tuple[str, ...] = ("seam_score", "plausibility_score", "quality_clip")
#: The sidecar of per-row scores measured after a version was written: JSON ``{row id: {score: value}}``.
ROW_SCORES_PATH = "meta/row_scores.json"

#: Waymo ``Label.Type`` number -> index into CLASS_NAMES (UNKNOWN=0 is dropped).
WAYMO_TYPE_TO_CLASS: dict[int, int] = {1: 0, 2: 1, 4: 2, 3: 3}

#: Waymo camera names (``CameraName.Name``).
CAMERA_IDS: dict[str, int] = {"FRONT": 1, "FRONT_LEFT": 2, "FRONT_RIGHT": 3, "SIDE_LEFT": 4, "SIDE_RIGHT": 5}
CAMERA_NAMES: dict[int, str] = {v: k for k, v in CAMERA_IDS.items()}

#: Columns a row may leave out (written as None): ``semantic_mask`` holds the stuff classes (road, sky, ...)
#: of frames with panoptic labels; rows made before it existed, and synthetic rows, have none.
OPTIONAL_COLUMNS: tuple[str, ...] = ("semantic_mask",)

#: Config names.
STITCHED = "stitched"
PAIRS = "pairs"
SYNTHETIC = "synthetic"
#: The split a synthetic version is published under.
SYNTHETIC_SPLIT = "synthetic"


def object_feature() -> dict:
    """One labelled object: an xyxy box in image pixels, its class, its instance id.

    ``instance_id`` is the value its pixels carry in the row's ``instance_mask`` (0 is
    background); ``source`` says which camera(s) saw it, or which labeler made it;
    ``mask_source`` says where its mask came from (one of MASK_SOURCES; None where unrecorded).
    ``score`` is the detector's confidence (1 for ground truth); the INSTANCE_SCORES fields are the
    labeler's other confidences, None where not measured (and absent from versions written before them).
    """
    from datasets import ClassLabel, List, Value

    return {
        "bbox": List(Value("float32"), length=4),
        "category": ClassLabel(names=list(CLASS_NAMES)),
        "instance_id": Value("int32"),
        "score": Value("float32"),
        "source": Value("string"),
        "mask_source": Value("string"),
        **{name: Value("float32") for name in INSTANCE_SCORES},
    }


def metadata_feature() -> dict:
    """Scene conditions from Waymo's ``Context.Stats``."""
    from datasets import Value

    return {"time_of_day": Value("string"), "location": Value("string"), "weather": Value("string")}


def stitch_feature() -> dict:
    """How a stitched scene was made and where each camera lies in it (canvas pixels).

    Columns ``[0, right_x0)`` come from FRONT alone, ``[front_x1, width)`` from FRONT_RIGHT alone;
    in the overlap ``[right_x0, front_x1)`` a seam (``seam_x``) separates them.
    """
    from datasets import List, Value

    return {
        "method": Value("string"),
        "yaw_deg": Value("float32"),
        "front_x1": Value("int32"),
        "right_x0": Value("int32"),
        "gain": List(Value("float32")),  # FRONT_RIGHT's per-channel exposure gain (RGB), applied before blending
        "residual_px": Value("float32"),  # median phase-correlation shift of the overlap's row bands, output px
        "seam_x": List(Value("int32")),  # per band of rows (evenly split), the first column from FRONT_RIGHT; [] = feathered
    }


def generation_feature() -> dict:
    """Provenance of one synthetic row: enough to regenerate it exactly.

    ``method`` names how the row was made (outpaint, occlude, rerender, ground; empty in rows
    written before the field existed); ``method_details`` is that method's own provenance as JSON.
    """
    from datasets import Value

    return {
        "source_id": Value("string"),
        "model_id": Value("string"),
        "model_revision": Value("string"),
        "prompt": Value("string"),
        "negative_prompt": Value("string"),
        "seed": Value("int64"),
        "steps": Value("int32"),
        "guidance_scale": Value("float32"),
        "strength": Value("float32"),
        "known_width": Value("int32"),
        "seam_score": Value("float32"),
        "seam_threshold": Value("float32"),
        "plausibility_score": Value("float32"),
        "attempts": Value("int32"),
        "labeler": Value("string"),
        "package_version": Value("string"),
        "method": Value("string"),
        "method_details": Value("string"),
    }


def _common() -> dict:
    from datasets import Value

    return {
        "id": Value("string"),
        "segment": Value("string"),
        "timestamp_micros": Value("int64"),
        "metadata": metadata_feature(),
    }


def stitched_features() -> datasets.Features:
    """Features of the ``stitched`` config: one wide FRONT + FRONT_RIGHT scene per frame."""
    from datasets import Features, Image, List, Value

    return Features(
        {
            **_common(),
            "image": Image(),
            "width": Value("int32"),
            "height": Value("int32"),
            "objects": List(object_feature()),
            "instance_mask": Image(),
            "semantic_mask": Image(),  # Waymo segmentation class per pixel (uint8 PNG) where panoptic labels exist
            "caption": Value("string"),
            "caption_source": Value("string"),
            "stitch": stitch_feature(),
        }
    )


def pairs_features() -> datasets.Features:
    """Features of the ``pairs`` config: FRONT and FRONT_RIGHT as two image columns."""
    from datasets import Features, Image, List, Value

    return Features(
        {
            **_common(),
            "front": Image(),
            "front_right": Image(),
            "objects_front": List(object_feature()),
            "objects_front_right": List(object_feature()),
            "caption": Value("string"),
            "caption_source": Value("string"),
        }
    )


def synthetic_features() -> datasets.Features:
    """Features of a synthetic version: the stitched layout plus the generation provenance."""
    from datasets import Features

    feats = {k: v for k, v in stitched_features().items() if k not in OPTIONAL_COLUMNS}
    feats["generation"] = generation_feature()
    return Features(feats)


def features_for(config: str) -> datasets.Features:
    """Features by config name; raises ValueError listing the known names."""
    table = {STITCHED: stitched_features, PAIRS: pairs_features, SYNTHETIC: synthetic_features}
    if config not in table:
        raise ValueError(f"unknown config {config!r}; known: {', '.join(table)}")
    return table[config]()


#: Waymo camera-segmentation semantic classes (``CameraSegmentation.Type``) -> CLASS_NAMES index.
#: car, truck, bus, other large vehicle, trailer -> vehicle; pedestrian; cyclist, motorcyclist;
#: sign. Other classes (road, building, sky, ...) are stuff, not instances we keep.
SEGMENTATION_TO_CLASS: dict[int, int] = {2: 0, 3: 0, 4: 0, 5: 0, 8: 0, 9: 1, 10: 2, 11: 2, 17: 3}
#: A representative Waymo segmentation class per CLASS_NAMES index (what the sample maker writes).
CLASS_TO_SEGMENTATION: dict[int, int] = {0: 2, 1: 9, 2: 10, 3: 17}
#: Stuff classes the sample maker paints (segmentation type numbers).
SEG_ROAD, SEG_BUILDING, SEG_SKY, SEG_VEGETATION = 20, 19, 25, 24
