"""Dataset rows -> Mask R-CNN samples, named augmentation presets, and the real/synthetic mix.

A row (``stitched`` or ``synthetic`` config; same ``objects`` + ``instance_mask`` layout) becomes
``(image, target)``: a float CHW image in [0, 1] and ``{"boxes", "labels", "masks"}`` as torchvision
detection models expect, with label = CLASS_NAMES index + 1 (0 is background).

Objects without mask pixels (box-only labels, or a row with no ``instance_mask``) are handled by a
policy, because an object left out of the target is taught as background:

- ``drop-row`` (default): a row with any unmasked object is not used at all;
- ``box-fill``: the unmasked object's box is filled as its mask (teaches the mask head rectangles);
- ``skip-object``: the unmasked object is dropped and its image kept (it becomes background;
  only for users who ask for it, with a warning).

:class:`DetectionSources` counts what each policy dropped or filled (``report()``).

Synthetic rows can be filtered by their scores when they are read (:class:`ScoreFilter`,
:func:`filter_synthetic`), so a user picks the quality threshold instead of the generator: a row whose
seam score is above ``max_seam_score`` is dropped; an instance whose detector score is below
``min_instance_score`` or whose SAM predicted IoU is below ``min_sam_iou`` is dropped from its row's
target (its pixels become background). A score that was never measured (ground truth has no SAM
score; versions written before the scores have none) never drops anything; such rows and instances
are counted as unscored.

Randomness is derived: every draw of the mixing sampler carries its own seed (from the run seed,
the epoch and the draw number) and the augmentation of that sample runs under that seed alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import warnings

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from streetsynth import codec
from streetsynth.instances import Instances, decode_id_mask
from streetsynth.seeds import derive_seed

#: Known policies for objects with no mask pixels; the first is the default.
MISSING_MASK_POLICIES = ("drop-row", "box-fill", "skip-object")
DEFAULT_MISSING_MASKS = MISSING_MASK_POLICIES[0]
#: Sources a mix may weigh.
SOURCES = ("real", "synthetic")


def _none() -> Callable:
    return v2.Identity()


def _hflip() -> Callable:
    return v2.RandomHorizontalFlip(p=0.5)


def _hflip_scale() -> Callable:
    # Scale jitter about the centre that keeps the canvas size, so the model's own resize does
    # not undo it; boxes pushed off the canvas are clamped and then dropped if degenerate.
    return v2.Compose([
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomAffine(degrees=0.0, scale=(0.75, 1.25)),
        v2.ClampBoundingBoxes(),
        v2.SanitizeBoundingBoxes(min_size=1.0),
    ])


#: Augmentation presets by name.
PRESETS: dict[str, Callable[[], Callable]] = {"none": _none, "hflip": _hflip, "hflip_scale": _hflip_scale}


def build_augmentation(name: str) -> Callable:
    """The transform of a named preset; ValueError listing the known names otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown augmentation preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]()


def check_policy(missing_masks: str) -> str:
    """The policy name, or ValueError listing the known ones."""
    if missing_masks not in MISSING_MASK_POLICIES:
        raise ValueError(f"unknown missing-mask policy {missing_masks!r}; known: {', '.join(MISSING_MASK_POLICIES)}")
    return missing_masks


def unmasked_objects(row: dict[str, Any]) -> int:
    """How many of a row's objects have no pixel in its ``instance_mask`` (all, without one)."""
    objects = row.get("objects") or []
    ids = objects["instance_id"] if isinstance(objects, dict) else [o["instance_id"] for o in objects]
    if len(ids) == 0:
        return 0
    id_img = decode_id_mask(row.get("instance_mask"))
    if id_img is None:
        return len(ids)
    return int(np.isin(np.asarray(ids, np.int64), np.unique(id_img), invert=True).sum())


def row_to_sample(row: dict[str, Any], missing_masks: str = DEFAULT_MISSING_MASKS
                  ) -> tuple[tv_tensors.Image, dict[str, Any]]:
    """One row -> (uint8 image, target with BoundingBoxes, labels, Mask), before augmentation.

    Under ``drop-row`` a row with an unmasked object raises ValueError (the sources drop such rows
    before drawing); ``box-fill`` fills the object's box, ``skip-object`` leaves the object out.
    """
    check_policy(missing_masks)
    image = tv_tensors.Image(torch.from_numpy(codec.to_rgb(row["image"], row.get("id")).copy()).permute(2, 0, 1))
    h, w = image.shape[-2:]
    try:
        inst = Instances.from_row(row, height=h, width=w)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"row {row.get('id', '?')}: bad objects/instance_mask: {exc}") from exc
    if inst.masks is None:
        masks = np.zeros((len(inst), h, w), bool)
    else:
        masks = inst.masks.copy()
    has_pixels = masks.reshape(len(inst), h * w).any(axis=1)
    if missing_masks == "drop-row" and not has_pixels.all():
        raise ValueError(f"row {row.get('id', '?')}: {int((~has_pixels).sum())} object(s) without a mask; "
                         "the drop-row policy does not train on it")
    if missing_masks == "box-fill":
        for i in np.flatnonzero(~has_pixels):
            x0, y0, x1, y1 = np.round(inst.boxes[i]).astype(int)
            masks[i, max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
        keep = masks.reshape(len(inst), h * w).any(axis=1)
    else:
        keep = has_pixels
    boxes = inst.boxes[keep]
    keep_boxes = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    idx = np.flatnonzero(keep)[keep_boxes]
    target = {
        "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(inst.boxes[idx]).reshape(-1, 4),
                                          format="XYXY", canvas_size=(h, w)),
        "labels": torch.from_numpy(inst.classes[idx] + 1).to(torch.int64),
        "masks": tv_tensors.Mask(torch.from_numpy(masks[idx]).to(torch.uint8)),
    }
    return image, target


def augment(image: tv_tensors.Image, target: dict[str, Any], transform: Callable, seed: int
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Apply ``transform`` under its own seed; returns a float [0, 1] image and plain tensors.

    Objects whose mask lost every pixel (scaled off the canvas) are dropped with their box.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        image, target = transform(image, target)
    masks = target["masks"].as_subclass(torch.Tensor)
    keep = masks.flatten(1).bool().any(dim=1) if len(masks) else torch.zeros(0, dtype=torch.bool)
    out = {
        "boxes": target["boxes"].as_subclass(torch.Tensor)[keep].float().reshape(-1, 4),
        "labels": target["labels"][keep],
        "masks": masks[keep],
    }
    return F.to_dtype(image, torch.float32, scale=True).as_subclass(torch.Tensor), out


def _mask_columns(rows: Sequence) -> Sequence:
    """Only the columns the mask check reads (a datasets.Dataset skips decoding the images)."""
    if hasattr(rows, "select_columns"):
        return rows.select_columns([c for c in ("id", "objects", "instance_mask") if c in rows.column_names])
    return rows


class DetectionSources(Dataset):
    """Rows of several sources (``{"real": ds, "synthetic": ds}``) as augmented samples.

    Indexed by ``(source, row, seed)`` tuples as :class:`MixSampler` draws them, ``row`` counting
    the rows the missing-mask policy kept; a plain int index reads the first source without
    augmentation randomness (seed 0). ``counts`` says, per source, how many rows were read and
    how many rows/objects the policy dropped or filled.
    """

    def __init__(self, sources: dict[str, Sequence], augmentation: str = "none",
                 missing_masks: str = DEFAULT_MISSING_MASKS):
        self.missing_masks = check_policy(missing_masks)
        self.sources = dict(sources)
        self.names = list(self.sources)
        self.transform = build_augmentation(augmentation)
        self.rows: dict[str, np.ndarray] = {}
        self.counts: dict[str, dict[str, int]] = {}
        for name, rows in self.sources.items():
            unmasked = np.array([unmasked_objects(r) for r in _mask_columns(rows)], dtype=np.int64)
            partial = unmasked > 0
            keep = ~partial if self.missing_masks == "drop-row" else np.ones(len(unmasked), bool)
            self.rows[name] = np.flatnonzero(keep)
            self.counts[name] = {"rows": len(unmasked), "rows_with_unmasked": int(partial.sum()),
                                 "unmasked_objects": int(unmasked.sum()), "rows_dropped": int((~keep).sum()),
                                 "objects_dropped": int(unmasked.sum()) if self.missing_masks == "skip-object" else 0,
                                 "objects_box_filled": int(unmasked.sum()) if self.missing_masks == "box-fill" else 0}
        n_skipped = sum(c["objects_dropped"] for c in self.counts.values())
        if n_skipped:
            warnings.warn(f"missing-mask policy skip-object: {n_skipped} unmasked object(s) are left out of "
                          "their images' targets and will be learnt as background; prefer drop-row or box-fill",
                          stacklevel=2)

    def sizes(self) -> dict[str, int]:
        """Rows per source that the policy kept."""
        return {k: len(v) for k, v in self.rows.items()}

    def report(self) -> str:
        """One line per source: rows read and what the missing-mask policy did."""
        lines = []
        for name, c in self.counts.items():
            if not c["rows"]:
                continue
            lines.append(f"{name}: {c['rows']} rows, {c['rows_with_unmasked']} with unmasked objects "
                         f"({c['unmasked_objects']} objects); policy {self.missing_masks}: "
                         f"dropped {c['rows_dropped']} rows, dropped {c['objects_dropped']} objects, "
                         f"box-filled {c['objects_box_filled']} objects")
        return "\n".join(lines)

    def __len__(self) -> int:
        return sum(self.sizes().values())

    def __getitem__(self, key) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if isinstance(key, (int, np.integer)):
            key = (self.names[0], int(key), 0)
        source, index, seed = key
        row = self.sources[source][int(self.rows[source][int(index)])]
        image, target = row_to_sample(row, self.missing_masks)
        return augment(image, target, self.transform, int(seed))


def parse_mix(text: str | dict[str, float]) -> dict[str, float]:
    """``"real=1.0,synthetic=0.5"`` -> ``{"real": 1.0, "synthetic": 0.5}`` (sampling weights).

    Sources left out weigh 0. ValueError on bad syntax, unknown sources, negative weights or an
    all-zero mix.
    """
    if isinstance(text, dict):
        pairs = list(text.items())
    else:
        pairs = []
        for part in (p.strip() for p in text.split(",") if p.strip()):
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"mix {text!r}: expected SOURCE=WEIGHT, got {part!r}")
            try:
                pairs.append((name.strip(), float(value)))
            except ValueError:
                raise ValueError(f"mix {text!r}: weight of {name.strip()!r} is not a number: {value!r}") from None
    mix = {s: 0.0 for s in SOURCES}
    for name, weight in pairs:
        if name not in SOURCES:
            raise ValueError(f"mix {text!r}: unknown source {name!r}; known: {', '.join(SOURCES)}")
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"mix {text!r}: weight of {name!r} must be finite and >= 0, got {weight}")
        mix[name] = float(weight)
    if sum(mix.values()) <= 0:
        raise ValueError(f"mix {text!r}: at least one source needs a positive weight")
    return mix


def format_mix(mix: dict[str, float]) -> str:
    """The canonical text of a mix, sources with weight 0 left out: ``real=1,synthetic=0.5``."""
    return ",".join(f"{k}={v:g}" for k, v in mix.items() if v > 0)


class MixSampler(Sampler):
    """Draws ``num_samples`` (source, row, seed) keys per epoch: the source by its weight, the row
    uniformly within it, each draw with its own derived augmentation seed.

    Weights are normalised over the sources that have rows; ``set_epoch`` gives a new, equally
    reproducible sequence. Every process of a distributed run draws the same sequence (the
    launcher shards the batches).
    """

    def __init__(self, sizes: dict[str, int], weights: dict[str, float], num_samples: int, seed: int):
        live = {k: float(weights.get(k, 0.0)) for k, n in sizes.items() if n > 0 and weights.get(k, 0.0) > 0}
        missing = [k for k, w in weights.items() if w > 0 and sizes.get(k, 0) == 0]
        if missing:
            raise ValueError(f"mix weighs source(s) {', '.join(missing)} that have no rows")
        if not live:
            raise ValueError("mix selects no source with rows")
        self.names = list(live)
        total = sum(live.values())
        self.probs = torch.tensor([live[k] / total for k in self.names], dtype=torch.float64)
        self.sizes = sizes
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[tuple[str, int, int]]:
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "mix", self.epoch))
        which = torch.multinomial(self.probs, self.num_samples, replacement=True, generator=gen)
        unit = torch.rand(self.num_samples, generator=gen, dtype=torch.float64)
        for i, (s, u) in enumerate(zip(which.tolist(), unit.tolist())):
            name = self.names[s]
            row = min(int(u * self.sizes[name]), self.sizes[name] - 1)
            yield name, row, derive_seed(self.seed, f"aug/{self.epoch}", i)


def collate(batch: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """A batch as the lists torchvision detection models take."""
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)


def select_segments(rows: Sequence, fraction: float, seed: int) -> Sequence:
    """The rows of a random ``fraction`` of the segments (at least one), drawn from ``seed``.

    Whole segments, not frames: frames of one segment are near-duplicates, so a fraction of frames
    would hold almost as much information as all of them. ``fraction`` 1 returns ``rows`` as given.
    """
    if fraction >= 1 or not len(rows):
        return rows
    segments = np.asarray(rows["segment"] if hasattr(rows, "column_names") else [r["segment"] for r in rows])
    names = np.unique(segments)
    k = max(1, int(round(fraction * len(names))))
    chosen = np.random.default_rng(derive_seed(seed, "real-fraction")).choice(names, size=k, replace=False)
    index = np.flatnonzero(np.isin(segments, chosen))
    return rows.select(index) if hasattr(rows, "select") else [rows[int(i)] for i in index]


#: Load-time filters by name, as ``--sweep`` and the flags spell them (underscores or dashes).
FILTERS = ("max_seam_score", "min_instance_score", "min_sam_iou")


@dataclass(frozen=True)
class ScoreFilter:
    """Thresholds applied to synthetic rows when they are read; None leaves a score unfiltered."""

    max_seam_score: float | None = None  # drop rows whose generation.seam_score is above this
    min_instance_score: float | None = None  # drop instances whose detector score is below this
    min_sam_iou: float | None = None  # drop instances whose SAM predicted IoU is below this

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is not None and not np.isfinite(value):
                raise ValueError(f"--{name.replace('_', '-')} must be a finite number, got {value}")

    @classmethod
    def from_config(cls, config: Any) -> "ScoreFilter":
        """The filter of any object with the FILTERS as attributes (a TrainConfig)."""
        return cls(**{k: getattr(config, k, None) for k in FILTERS})

    def active(self) -> bool:
        return any(v is not None for v in asdict(self).values())

    def describe(self) -> str:
        """``min_instance_score=0.5,max_seam_score=0.2`` (empty when nothing is filtered)."""
        return ",".join(f"{k}={v:g}" for k, v in asdict(self).items() if v is not None)


def _objects(row: dict[str, Any]) -> list[dict[str, Any]]:
    objects = row.get("objects") or []
    if isinstance(objects, dict):  # columnar form
        return [dict(zip(objects, vals)) for vals in zip(*objects.values())]
    return list(objects)


def _below(value: Any, threshold: float | None) -> bool:
    return threshold is not None and value is not None and np.isfinite(value) and value < threshold


def plan_filter(rows: Sequence, flt: ScoreFilter) -> tuple[np.ndarray, list[list[int]], dict[str, int]]:
    """``(kept row indices, per kept row the indices of its kept objects, counts)`` of ``flt`` on ``rows``.

    Reads only ``objects`` and ``generation`` (images are not decoded). Counts: rows, rows_dropped
    (seam score), rows_unscored (no seam score while one is filtered), instances (in the rows read),
    instances_dropped_score, instances_dropped_sam_iou, instances_unscored_sam (no SAM IoU while it
    is filtered), instances_kept (in the kept rows).
    """
    cols = [c for c in ("objects", "generation") if c in getattr(rows, "column_names", ("objects", "generation"))]
    view = rows.select_columns(cols) if hasattr(rows, "select_columns") else rows
    c = dict.fromkeys(("rows", "rows_dropped", "rows_unscored", "instances", "instances_dropped_score",
                       "instances_dropped_sam_iou", "instances_unscored_sam", "instances_kept"), 0)
    keep_rows, keep_objects = [], []
    for i, row in enumerate(view):
        objects = _objects(row)
        c["rows"] += 1
        c["instances"] += len(objects)
        seam = (row.get("generation") or {}).get("seam_score")
        if flt.max_seam_score is not None and (seam is None or not np.isfinite(seam)):
            c["rows_unscored"] += 1
        if flt.max_seam_score is not None and seam is not None and np.isfinite(seam) and seam > flt.max_seam_score:
            c["rows_dropped"] += 1
            continue
        kept = []
        for k, o in enumerate(objects):
            if _below(o.get("score"), flt.min_instance_score):
                c["instances_dropped_score"] += 1
                continue
            if flt.min_sam_iou is not None and o.get("sam_iou") is None:
                c["instances_unscored_sam"] += 1
            if _below(o.get("sam_iou"), flt.min_sam_iou):
                c["instances_dropped_sam_iou"] += 1
                continue
            kept.append(k)
        keep_rows.append(i)
        keep_objects.append(kept)
        c["instances_kept"] += len(kept)
    return np.asarray(keep_rows, np.int64), keep_objects, c


def filter_synthetic(rows: Sequence, flt: ScoreFilter) -> tuple[Sequence, dict[str, Any]]:
    """``rows`` with ``flt`` applied (rows dropped, objects left out of kept rows), and what it did.

    A ``datasets.Dataset`` stays one (``select`` then a ``map`` of the ``objects`` column only); a list
    gives a list of shallow copies. The record holds the filter (``filter``) and :func:`plan_filter`'s counts.
    """
    if not flt.active() or not len(rows):
        return rows, {"filter": flt.describe(), "rows": len(rows), "rows_dropped": 0}
    index, kept, counts = plan_filter(rows, flt)
    record = {"filter": flt.describe(), **counts}
    pruned = counts["instances_dropped_score"] + counts["instances_dropped_sam_iou"] > 0
    if hasattr(rows, "select"):
        out = rows.select(index)
        if pruned:
            out = out.map(lambda objects, j: {"objects": [objects[k] for k in kept[j]]} if not isinstance(objects, dict)
                          else {"objects": {key: [vals[k] for k in kept[j]] for key, vals in objects.items()}},
                          with_indices=True, input_columns=["objects"], desc=f"filter {flt.describe()}",
                          new_fingerprint=derive_fingerprint(out, flt))
        return out, record
    out = []
    for i, k in zip(index, kept):
        row = dict(rows[int(i)])
        objects = _objects(row)
        row["objects"] = [objects[j] for j in k]
        out.append(row)
    return out, record


def derive_fingerprint(rows: Any, flt: ScoreFilter) -> str:
    """The datasets fingerprint of ``rows`` filtered by ``flt``: a new cache entry per source and filter."""
    import hashlib

    return hashlib.sha256(f"{rows._fingerprint}/{flt.describe()}".encode()).hexdigest()[:32]


def format_filter(record: dict[str, Any]) -> str:
    """One line: what a load-time filter dropped."""
    if not record.get("filter"):
        return ""
    return (f"synthetic filter {record['filter']}: dropped {record['rows_dropped']} of {record['rows']} rows "
            f"({record['rows_unscored']} without a seam score), {record['instances_dropped_score']} instances by "
            f"detector score and {record['instances_dropped_sam_iou']} by SAM IoU ({record['instances_unscored_sam']} "
            f"without one); {record['instances_kept']} of {record['instances']} instances kept")
