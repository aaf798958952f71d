"""Controls that show a comparison can see an effect: an oracle version and a noise version.

Both are written from the real train split as synthetic versions by the generators' own writer
(:mod:`streetsynth.generators.method_run`), so ``compare`` reads them like any generated version:

- ``oracle``: every real train scene with its true labels. Beside a small real fraction it is
  "more real data, perfectly labelled": a comparison that cannot show it helps cannot show anything.
- ``noise``: the same scenes, each with the labels of another scene (a derangement drawn from the
  seed): right images, wrong objects. It should hurt, or at least not help.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streetsynth import codec, schema
from streetsynth.instances import Instances
from streetsynth.repo import load_split, read_info
from streetsynth.seeds import derive_seed

CONTROLS = ("oracle", "noise")
#: What a control's rows record as their labeler (not "carried-from-source": they are fully labelled).
LABELER = {"oracle": "ground-truth", "noise": "ground-truth-of-another-scene"}


def parse_controls(text: str | None) -> list[str]:
    """``"oracle,noise"`` -> ``["oracle", "noise"]``; ValueError naming unknown ones."""
    names = [p.strip() for p in (text or "").split(",") if p.strip()]
    unknown = [n for n in names if n not in CONTROLS]
    if unknown:
        raise ValueError(f"--control: unknown control(s) {', '.join(unknown)}; known: {', '.join(CONTROLS)}")
    return names


def derangement(n: int, seed: int) -> np.ndarray:
    """A permutation of ``range(n)`` that moves every index (a shifted random order), from ``seed``."""
    if n < 2:
        raise ValueError(f"a noise control needs at least 2 scenes to swap labels between, got {n}")
    order = np.random.default_rng(derive_seed(seed, "noise")).permutation(n)
    out = np.empty(n, np.int64)
    out[order] = np.roll(order, 1)
    return out


def write_control(real: str | Path, out: str | Path, kind: str, seed: int = 0) -> Path:
    """Write (or resume) the ``kind`` control version of ``real``'s train split under the store
    ``out``; returns the version folder."""
    from streetsynth.generators.method_run import finish_counts, finish_run, method_fingerprint, open_run, synthetic_row
    from streetsynth.repo import source_record

    parse_controls(kind)
    rows = load_split(real, schema.STITCHED, "train")
    info = read_info(real)
    method = f"control-{kind}"
    run = open_run(method, out, method_fingerprint(method, {"source_fingerprint": info.get("fingerprint"), "seed": seed}),
                   None, 64)
    labels_of = derangement(len(rows), seed) if kind == "noise" else np.arange(len(rows))
    done = run.done()
    for i in range(len(rows)):
        row = rows[i]
        sid = f"{kind}-{row['id']}"
        if sid in done:
            continue
        image = codec.to_rgb(row["image"], row.get("id"))
        donor = rows[int(labels_of[i])]
        if (donor["height"], donor["width"]) != image.shape[:2]:
            raise ValueError(f"{real}: rows {row['id']} and {donor['id']} differ in size; a noise control needs "
                             "scenes of one size")
        inst = Instances.from_row(donor)
        gen = {"source_id": row["id"], "seed": seed, "labeler": LABELER[kind]}
        details = {"control": kind, "labels_from": donor["id"]}
        run.writer.add(sid, synthetic_row(sid, image, inst, gen, f"control-{kind}", details, row),
                       attempts=1, rejected=0)
    card = (f"A {kind} control made from the real train split: "
            + ("every scene with its true labels." if kind == "oracle" else
               "every scene with the labels of another scene (wrong objects on purpose).")
            + " It exists to check that a comparison can see an effect; never train a model to keep on it.")
    _, counts = finish_counts(run, "the real train split has no scene")
    finish_run(run, {"source": source_record(real, info, split="train"), "labeler": LABELER[kind], "counts": counts},
               card)
    return run.folder
