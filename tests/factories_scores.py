"""A synthetic version with planted scores, written through the methods' writer (generators/method_run.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from factories_train import make_scene
from streetsynth.generators.method_run import finish_counts, finish_run, open_run, synthetic_row
from streetsynth.instances import Instances

#: Planted per-row seam scores and per-instance detector scores / SAM predicted IoUs (None: not measured).
SEAM = [0.1, 0.5, 0.2, 0.9]
SCORE = [0.2, 0.6, 0.9]
SAM_IOU = [[0.95, 0.4, 0.8], [0.95, 0.4, 0.8], [0.95, None, 0.8], [0.95, 0.4, 0.8]]


def write_planted(store) -> Path:
    """A synthetic version written through the methods' writer, each row with the planted scores."""
    run = open_run("planted", store, "planted-fp", None, rows_per_shard=3)
    for i, seam in enumerate(SEAM):
        image, inst = make_scene(i, n_objects=3)
        sam = np.array([np.nan if v is None else v for v in SAM_IOU[i]], np.float32)
        inst = Instances(inst.boxes, inst.classes, inst.height, inst.width, masks=inst.masks, scores=SCORE,
                         sources=["maskrcnn+sam"] * 3, extra={"sam_iou": sam})
        gen = {"source_id": f"src-{i}", "seed": i, "seam_score": seam, "attempts": 1, "labeler": "planted"}
        row = synthetic_row(f"planted-{i}", image, inst, gen, "planted",
                            source={"segment": "seg-p", "timestamp_micros": i})
        run.writer.add(row["id"], row, attempts=1, rejected=0)
    _, counts = finish_counts(run, "planted")
    finish_run(run, {"counts": counts}, None)
    return run.folder


