"""The test data, made by the real producers once per session: sample maker -> builder -> tiny generate -> label.

Every repo a test reads comes out of this chain, so tests see what the producers really write
(the builder's stitch record, box-only and panoptic objects, the generator's provenance, the
labeler's masks). Each step is cached per process under one temporary folder; a test gets its own
copy (:func:`copy_repo`) so it may change it freely. Sizes are tiny: a few frames at 64x128.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from streetsynth import repo, schema

#: The tiny inpainting model the chain generates with, and the id it declares.
TINY_MODEL = ("streetsynth/tiny-random-inpaint", "seed-0")


@functools.cache
def session_dir() -> Path:
    """One temporary folder per test process, removed at exit."""
    path = Path(tempfile.mkdtemp(prefix="streetsynth-producers-"))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.cache
def sample(n_train: int = 3, n_val: int = 3, seed: int = 0, view_size: tuple[int, int] = (96, 144),
           panoptic_every: int = 2) -> Path:
    """Waymo v1 segments from the sample maker: one training segment of ``n_train`` frames and one
    validation segment of ``n_val`` (the frames are those ``make_sample`` renders for that seed);
    every ``panoptic_every``-th frame of a segment carries panoptic masks, the others boxes only."""
    from streetsynth.builders.sample import make_sample

    out = session_dir() / f"sample-{n_train}-{n_val}-{seed}-{view_size[0]}x{view_size[1]}-{panoptic_every}"
    make_sample(out, segments=1, frames=n_train, seed=seed, view_size=view_size, panoptic_every=panoptic_every)
    if n_val:
        both = out.with_name(out.name + "-both")
        make_sample(both, segments=2, frames=n_val, seed=seed, view_size=view_size, panoptic_every=panoptic_every)
        shutil.move(both / "validation", out / "validation")
    return out


@functools.cache
def real(n_train: int = 3, n_val: int = 3, height: int = 64, width: int = 128, seed: int = 0,
         panoptic_every: int = 2) -> Path:
    """The REAL repo ``build_real`` makes of :func:`sample` at ``height`` x ``width``."""
    from streetsynth.builders.waymo import build_real

    out = session_dir() / f"real-{n_train}-{n_val}-{height}x{width}-{seed}-{panoptic_every}"
    view = (max(96, height * 3 // 2), max(144, width * 9 // 8))
    build_real(sample(n_train, n_val, seed, view, panoptic_every), out, size=(height, width))
    return out


@functools.cache
def tiny_pipeline():
    """The tiny random SD inpainting pipeline, declaring :data:`TINY_MODEL`."""
    from streetsynth.models.tiny_inpaint import build_tiny_inpaint_pipeline

    pipe = build_tiny_inpaint_pipeline(seed=0)
    pipe._streetsynth_model = TINY_MODEL
    return pipe


@functools.cache
def synthetic(num: int = 3, seed: int = 0) -> Path:
    """A synthetic version ``run_generation`` writes from :func:`real` (every attempt accepted)."""
    from streetsynth.generators.generate import GenerateConfig, run_generation

    res = run_generation(GenerateConfig(real=str(real(max(3, num))), out=str(session_dir() / f"store-{num}-{seed}"), num=num,
                                        steps=2, batch_size=num, seed=seed, seam_threshold=1e9, max_attempts=1,
                                        pipeline=tiny_pipeline(), progress=False))
    return res.folder


@functools.cache
def labelled(num: int = 3, seed: int = 0) -> Path:
    """:func:`synthetic` labelled again by the tiny detector + SAM labeler (``label_repo``)."""
    from streetsynth.generators.label import build_labeler
    from streetsynth.generators.relabel import label_repo

    labeler = build_labeler("tiny", "tiny", score_threshold=0.1, keep_overlap=0.0)
    return label_repo(synthetic(num, seed), session_dir() / f"labelled-{num}-{seed}", labeler, progress=False).folder


def copy_repo(src: Path, dst: str | Path) -> Path:
    """A private copy of a produced repo at ``dst``."""
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return Path(dst)


def rows(folder: Path, config: str, split: str) -> list[dict]:
    """The rows of a split as Python dicts (the Arrow columns, images as bytes)."""
    return pa.concat_tables(pq.read_table(f) for f in repo.shard_files(folder, config, split)).to_pylist()


def class_counts(folder: Path, config: str, split: str) -> dict[str, int]:
    """Objects per class name in a split, counted from its rows."""
    counts = dict.fromkeys(schema.CLASS_NAMES, 0)
    for row in rows(folder, config, split):
        for o in row["objects"]:
            counts[schema.CLASS_NAMES[o["category"]]] += 1
    return counts
