"""Generating a synthetic dataset version from a real one: outpaint, gate seams, label, write.

Sample ``i`` comes from source row ``i % rows`` of the real ``stitched`` split; its id is the
source id (with ``~k`` for the k-th reuse of a row). Attempt ``a`` of a sample uses the seed
``derive_seed(run_seed, sample_id, a)``, and every pipeline call is padded to the batch size, so
a sample's pixels depend on nothing else: resumed and multi-process runs give the same rows.

Labels: with a labeler (``--detector`` and ``--sam``) each accepted image is labelled afresh.
Without one, the source row's objects are carried over *clipped to the known region*: those
pixels are the real ones, so their labels stay true; the invented region is left unlabelled
(its pixels are new, and a box there would be a guess). ``generation.labeler`` says which.
"""

from __future__ import annotations

import json
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

import streetsynth
from streetsynth import codec
from streetsynth.cards.contact_sheet import Tile, render_sheet
from streetsynth.instances import Instances
from streetsynth.repo import load_split, read_info, write_info, write_readme
from streetsynth.schema import STITCHED, SYNTHETIC, SYNTHETIC_SPLIT, synthetic_features
from streetsynth.seeds import derive_seed
from streetsynth.versions import fingerprint, resolve_version, store_lock

from streetsynth.models.inpaint import LoadedModel, injected, load

from .merge_labels import merge_labels
from .relabel import mask_box_only
from .outpaint import DEFAULT_NEGATIVE, DEFAULT_PROMPT, Canvas, make_canvas, outpaint_batch
from .seam import DEFAULT_METHOD, SeamGate
from .seam import METHODS as SEAM_METHODS
from .writer import ShardWriter, manifest_counts, merge_manifests, read_manifest

CARRIED_LABELER = "carried-from-source:known-region-clipped"
CONTACT_SHEET_PATH = "meta/contact_sheet.png"
REJECTED_DIR = "meta/rejected"
PROMPT_SOURCES = ("default", "caption")


@dataclass
class GenerateConfig:
    """Everything a generation run needs; all but the injected objects enter the fingerprint."""

    real: str  # source REAL dataset repo (a folder with the "stitched" config)
    out: str  # store folder holding one subfolder per synthetic version
    model: str = "tiny"  # inpainting model id or folder of any known family; "tiny[:family]" = tiny random
    revision: str | None = None  # Hub revision of the model
    split: str = "train"  # split of the real dataset to outpaint
    num: int | None = None  # number of samples (default: one per source row)
    batch_size: int = 4  # canvases per pipeline call
    steps: int = 30  # denoising steps
    guidance: float | None = None  # guidance scale (default: the model family's, e.g. 7.5 SD, 30 FLUX Fill)
    strength: float = 1.0  # inpainting strength (1.0: the invented region starts from noise)
    seam_threshold: float | None = None  # seam scores above this reject an attempt (default: the method's calibrated one)
    seam_method: str = DEFAULT_METHOD  # seam gate: "profile" (default), the classic "column-sum", or "row-band"
    max_attempts: int = 3  # attempts per sample before it is dropped
    seed: int = 0  # run seed; every sample's seeds derive from it
    device: str = "cpu"  # torch device for the pipeline
    dtype: str | None = None  # fp32/fp16/bf16 (default fp16 on CUDA, fp32 elsewhere)
    attention: str | None = None  # diffusers attention backend name, e.g. "native" or "flash"
    compile: bool = False  # torch.compile the denoiser (UNet or transformer)
    version: str | None = None  # version X.Y.Z to write (default: resume same fingerprint, else next patch)
    prompt_source: str = "default"  # "default": the fixed prompt; "caption": the source row's caption
    prompt: str = DEFAULT_PROMPT  # prompt when prompt_source is "default"
    negative_prompt: str | None = None  # negative prompt (default: ours where the family takes one)
    allow_drop: tuple[str, ...] = ()  # call arguments the pipeline may ignore (otherwise refusing one is an error)
    size: tuple[int, int] | None = None  # canvas (H, W); default the source size rounded down to 8
    invent_fraction: float | None = None  # share of the width to invent; default from stitch.front_x1
    feather: int = 8  # columns right of the known edge that blend the colour difference away
    rows_per_shard: int = 64  # rows per Parquet shard
    detector: str | None = None  # detector spec for the labeler (with sam)
    sam: str | None = None  # SAM spec for the labeler (with detector)
    sheet_samples: int = 6  # accepted samples on the contact sheet
    keep_rejected: int = 6  # rejected attempts kept as thumbnails per process
    progress: bool = True  # show a tqdm bar
    pipeline: Any = field(default=None, repr=False)  # injected LoadedModel (tests, benchmarks)
    labeler: Any = field(default=None, repr=False)  # injected labeler: image -> Instances, .description


@dataclass
class GenerateResult:
    folder: Path  # the version folder written
    tag: str  # its version tag, e.g. v0.1.0
    resumed: bool  # whether an unfinished or finished run of the same fingerprint was continued
    counts: dict[str, Any]  # accepted, failed_samples, attempts, rejected_attempts, acceptance_rate, shards
    contact_sheet: Path | None  # the contact sheet PNG (process 0 only)
    model_id: str
    model_revision: str
    rank: int = 0  # this process's index (only process 0 writes info, README and the contact sheet)


def _process_state(device: str):
    """(rank, world, barrier) from accelerate's PartialState (gloo between CPU processes)."""
    from accelerate import PartialState

    state = PartialState(cpu=str(device).startswith("cpu"))
    return state.process_index, state.num_processes, state.wait_for_everyone


def carry_known_objects(row: dict[str, Any], canvas: Canvas, height: int, width: int) -> Instances:
    """The source row's instances scaled to the canvas and clipped to its known columns."""
    inst = Instances.from_row(row)
    kw = canvas.known_width
    if not len(inst):
        return Instances.empty(height, width, with_masks=inst.masks is not None)
    if inst.masks is not None:
        ids = inst.id_mask()
        if ids.shape != (height, width):
            ids = cv2.resize(ids, (width, height), interpolation=cv2.INTER_NEAREST)
        ids[:, kw:] = 0
        masks = inst.ids[:, None, None] == ids[None].astype(np.int32)
        return Instances.from_masks(masks, inst.classes, inst.scores, inst.ids, inst.sources)
    boxes = inst.boxes * np.float32(canvas.scale)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, kw)
    keep = boxes[:, 2] - boxes[:, 0] >= 1.0
    return Instances(boxes[keep], inst.classes[keep], height, width, scores=inst.scores[keep],
                     ids=inst.ids[keep], sources=[s for s, k in zip(inst.sources, keep) if k])


def _with_mask_sources(inst: Instances, source_row: dict[str, Any]) -> dict[str, Any]:
    """``inst.to_row()`` with each masked object's ``mask_source``: the source row's for carried ground
    truth (same instance id), ``maskrcnn+sam`` where the labeler drew the mask or part of it."""
    labels = inst.to_row()
    if inst.masks is None:
        return labels
    objects = source_row.get("objects") or []
    if isinstance(objects, dict):  # columnar, as some datasets formats give it
        objects = [dict(zip(objects, vals)) for vals in zip(*objects.values())]
    carried = {o["instance_id"]: o.get("mask_source") for o in objects}
    for obj, mask in zip(labels["objects"], inst.masks):
        if not mask.any():
            obj["mask_source"] = None
        elif obj["source"] == "ground-truth":
            obj["mask_source"] = carried.get(obj["instance_id"])
        else:
            obj["mask_source"] = "maskrcnn+sam"
    return labels


class _Sample:
    """One sample in flight: its source row, canvas, prompt and attempt history."""

    def __init__(self, index: int, sample_id: str, row: dict[str, Any], canvas: Canvas, prompt: str) -> None:
        self.index, self.id, self.row, self.canvas, self.prompt = index, sample_id, row, canvas, prompt
        self.attempt = 0
        self.rejected = 0


def sample_ids(source_ids: list[str], num: int) -> list[str]:
    """Ids of ``num`` samples over the source rows (``~k`` marks the k-th reuse of a row)."""
    n = len(source_ids)
    return [source_ids[i % n] + (f"~{i // n}" if i >= n else "") for i in range(num)]


#: The largest canvas side ``--size`` accepts (pixels).
MAX_SIDE = 8192


def validate_config(cfg: GenerateConfig) -> None:
    """Refuse bad settings with a message naming the option, before any model is loaded or folder made."""
    import math

    if cfg.prompt_source not in PROMPT_SOURCES:
        raise ValueError(f"unknown prompt source {cfg.prompt_source!r}; known: {', '.join(PROMPT_SOURCES)}")
    for name in ("max_attempts", "batch_size", "steps", "rows_per_shard"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    if cfg.num is not None and cfg.num < 1:
        raise ValueError(f"--num must be >= 1, got {cfg.num}")
    if cfg.seam_method not in SEAM_METHODS:
        raise ValueError(f"unknown --seam-method {cfg.seam_method!r}; known: {', '.join(SEAM_METHODS)}")
    if cfg.seam_threshold is not None and not (math.isfinite(cfg.seam_threshold) and cfg.seam_threshold >= 0):
        raise ValueError(f"--seam-threshold must be a finite number >= 0, got {cfg.seam_threshold}")
    if cfg.guidance is not None and (not math.isfinite(cfg.guidance) or cfg.guidance < 0):
        raise ValueError(f"--guidance must be a finite number >= 0, got {cfg.guidance}")
    if not 0.0 < cfg.strength <= 1.0:
        raise ValueError(f"--strength must lie in (0, 1], got {cfg.strength}")
    if cfg.invent_fraction is not None and not 0.0 < cfg.invent_fraction < 1.0:
        raise ValueError(f"--invent-fraction must lie in (0, 1), got {cfg.invent_fraction}")
    if cfg.size is not None:
        h, w = cfg.size
        if not (8 <= h <= MAX_SIDE and 16 <= w <= MAX_SIDE):
            raise ValueError(f"--size {h}x{w} out of range: height 8..{MAX_SIDE}, width 16..{MAX_SIDE}")
    if cfg.feather < 0:
        raise ValueError(f"feather must be >= 0, got {cfg.feather}")
    if (cfg.detector is None) != (cfg.sam is None):
        raise ValueError("--detector and --sam go together: give both or neither")


def run_generation(config: GenerateConfig) -> GenerateResult:
    """Generate (or resume) a synthetic version; see the module docstring for the guarantees."""
    validate_config(config)
    cfg = replace(config, seam_threshold=SeamGate(config.seam_threshold, config.seam_method).threshold)
    rank, world, barrier = _process_state(cfg.device)
    real_info = read_info(cfg.real)
    source = load_split(cfg.real, STITCHED, cfg.split)
    if len(source) == 0:
        raise ValueError(f"{cfg.real}: split {cfg.split!r} of {STITCHED!r} has no rows")
    num = len(source) if cfg.num is None else cfg.num
    ids = sample_ids(list(source["id"]), num)

    model = _loaded(cfg)
    pipe, family, model_id, model_rev = model.pipeline, model.family, model.model_id, model.revision
    guidance = family.default_guidance if cfg.guidance is None else cfg.guidance
    negative_prompt = _negative_prompt(cfg, family)
    labeler = cfg.labeler
    if labeler is None and cfg.detector is not None:
        from streetsynth.generators.label import build_labeler

        labeler = build_labeler(detector=cfg.detector, sam=cfg.sam, device=cfg.device)
    labeler_desc = labeler.description if labeler is not None else CARRIED_LABELER
    gate = SeamGate(threshold=cfg.seam_threshold, method=cfg.seam_method)

    settings = {k: v for k, v in vars(cfg).items()
                if k not in ("real", "out", "device", "dtype", "attention", "compile", "version", "progress",
                             "pipeline", "labeler", "model", "revision", "sheet_samples", "keep_rejected")}
    settings.update(num=num, guidance=guidance, negative_prompt=negative_prompt)
    fp = fingerprint({"source_fingerprint": real_info.get("fingerprint"), "source_split": cfg.split,
                      "model_id": model_id, "model_revision": model_rev, "labeler": labeler_desc,
                      "settings": settings, "package_version": streetsynth.__version__})
    if rank == 0:
        with store_lock(cfg.out):  # another run may be choosing a version in this store right now
            folder, tag, resumed = resolve_version(cfg.out, fp, cfg.version)
            writer = ShardWriter(folder, SYNTHETIC, SYNTHETIC_SPLIT, synthetic_features(), cfg.rows_per_shard, fp,
                                 rank, world)
        if world > 1:
            merge_manifests(folder, world, fp)
    barrier()
    if rank != 0:
        folder, tag, resumed = resolve_version(cfg.out, fp, cfg.version)
        writer = ShardWriter(folder, SYNTHETIC, SYNTHETIC_SPLIT, synthetic_features(), cfg.rows_per_shard, fp, rank, world)

    done = writer.done_ids()
    mine = [i for i in range(num) if i % world == rank and ids[i] not in done]
    if rank == 0 and cfg.model.startswith("tiny") and cfg.pipeline is None:
        print("model: the TINY RANDOM pipeline (streetsynth.tiny): images are noise, for testing the flow only")

    def new_sample(i: int) -> _Sample:
        row = source[i % len(source)]
        canvas = make_canvas(row, cfg.size, cfg.invent_fraction, family.size_multiple)
        prompt = (row.get("caption") or cfg.prompt) if cfg.prompt_source == "caption" else cfg.prompt
        return _Sample(i, ids[i], row, canvas, prompt)

    def finish_row(s: _Sample, image: np.ndarray, score: float, seed: int) -> dict[str, Any]:
        h, w = image.shape[:2]
        inst = carry_known_objects(s.row, s.canvas, h, w)
        if labeler is not None:
            # The source's ground truth in the known part, the labeler's instances in the invented part.
            known = np.zeros((h, w), bool)
            known[:, : s.canvas.known_width] = True
            inst = merge_labels(inst, labeler(image), known, labeler_desc)
        src = s.row
        labels = mask_box_only(_with_mask_sources(inst, src), image, getattr(labeler, "predictor", None))
        return {
            "id": s.id, "segment": src.get("segment"), "timestamp_micros": src.get("timestamp_micros"),
            "metadata": src.get("metadata"), "image": {"bytes": codec.encode_lossless(image), "path": None},
            "width": w, "height": h, **labels, "caption": src.get("caption"),
            "caption_source": src.get("caption_source"),
            "stitch": {"method": "outpaint", "yaw_deg": (src.get("stitch") or {}).get("yaw_deg"),
                       "front_x1": s.canvas.known_width, "right_x0": s.canvas.known_width},
            "generation": {
                "source_id": src["id"], "model_id": model_id, "model_revision": model_rev, "prompt": s.prompt,
                "negative_prompt": negative_prompt, "seed": seed, "steps": cfg.steps,
                "guidance_scale": guidance, "strength": cfg.strength, "known_width": s.canvas.known_width,
                "seam_score": score, "seam_threshold": cfg.seam_threshold, "attempts": s.attempt + 1,
                "labeler": labeler_desc, "package_version": streetsynth.__version__, "method": "outpaint",
            },
        }

    rejected_dir = Path(folder) / REJECTED_DIR
    kept_rejected = 0
    # Labelling and image encoding of accepted images run on one worker thread while the next
    # pipeline call runs; the seam gate stays inline because it decides the next batch (retries).
    # Source rows are decoded and made into canvases ahead, on another thread, for the same reason.
    post = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate-post")
    loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate-load")
    ahead: deque[Future] = deque()

    def load_ahead() -> None:
        while todo and len(ahead) < 2 * cfg.batch_size:
            ahead.append(loader.submit(new_sample, todo.popleft()))

    finished: dict[int, tuple[Future | None, _Sample]] = {}
    order = deque(mine)  # emission order
    todo = deque(mine)  # not yet started
    retry: deque[_Sample] = deque()
    stats = {"accepted": 0, "rejected": 0, "attempts": 0}
    bar = tqdm(total=len(mine), desc=f"generate[{rank}]" if world > 1 else "generate", unit="sample",
               disable=not cfg.progress)
    load_ahead()
    while ahead or retry:
        batch: list[_Sample] = []
        while len(batch) < cfg.batch_size and (retry or ahead):
            batch.append(retry.popleft() if retry else ahead.popleft().result())
        load_ahead()
        for group in _same_size(batch):
            seeds = [derive_seed(cfg.seed, s.id, s.attempt) for s in group]
            images = outpaint_batch(pipe, [s.canvas for s in group], [s.prompt for s in group],
                                    None if negative_prompt is None else [negative_prompt] * len(group), seeds,
                                    cfg.steps, guidance, cfg.strength, cfg.feather, pad_to=cfg.batch_size,
                                    max_sequence_length=family.max_sequence_length, allow_drop=cfg.allow_drop)
            for s, image, seed in zip(group, images, seeds):
                score = gate.score(image, s.canvas.mask)
                stats["attempts"] += 1
                if gate.accepts(score):
                    finished[s.index] = (post.submit(finish_row, s, image, score, seed), s)
                    stats["accepted"] += 1
                    bar.update(1)
                    continue
                stats["rejected"] += 1
                s.rejected += 1
                if kept_rejected < cfg.keep_rejected:
                    _keep_rejected(rejected_dir, s, image, score, seed)
                    kept_rejected += 1
                s.attempt += 1
                if s.attempt < cfg.max_attempts:
                    retry.append(s)
                else:
                    s.attempt -= 1
                    finished[s.index] = (None, s)
                    bar.update(1)
        while order and order[0] in finished:
            job, s = finished[order[0]]
            if job is not None and not job.done() and (ahead or retry):
                break  # still labelling/encoding: write it after the next pipeline call
            finished.pop(order.popleft())
            writer.add(s.id, job.result() if job is not None else None, attempts=s.attempt + 1, rejected=s.rejected)
        bar.set_postfix(accepted=stats["accepted"], rejected=stats["rejected"],
                        attempts_per_s=f"{stats['attempts'] / max(bar.format_dict['elapsed'], 1e-9):.2f}")
    bar.close()
    post.shutdown()
    loader.shutdown()
    writer.flush()
    barrier()

    sheet = None
    manifest = merge_manifests(folder, world, fp) if rank == 0 else read_manifest(writer.path)
    counts = manifest_counts(manifest)
    if counts["accepted"] == 0:
        raise ValueError(f"{folder}: 0 rows accepted from {counts['attempts']} attempts (every attempt scored above "
                         f"--seam-threshold {cfg.seam_threshold}); {tag} is left unpublished (no info.json)")
    if rank == 0:
        write_info(folder, {
            "kind": "synthetic", "version": tag, "fingerprint": fp,
            "source": {"repo": str(Path(cfg.real).resolve()), "fingerprint": real_info.get("fingerprint"),
                       "config": STITCHED, "split": cfg.split},
            "model": {"id": model_id, "revision": model_rev}, "labeler": labeler_desc,
            "settings": settings, "counts": counts, "package_version": streetsynth.__version__,
            "rejected_examples": _rejected_examples(rejected_dir),
        })
        write_readme(folder, default=SYNTHETIC)
        sheet = _contact_sheet(folder, manifest, rejected_dir, cfg.sheet_samples, tag)
    barrier()
    return GenerateResult(Path(folder), tag, resumed, counts, sheet, model_id, model_rev, rank)


def _loaded(cfg: GenerateConfig) -> LoadedModel:
    """The injected model (which must declare its id and revision) or the one ``cfg.model`` names."""
    if cfg.pipeline is None:
        return load(cfg.model, cfg.device, cfg.dtype, cfg.revision, cfg.attention, cfg.compile)
    if isinstance(cfg.pipeline, LoadedModel):
        return cfg.pipeline
    declared = getattr(cfg.pipeline, "_streetsynth_model", None)
    if declared is None:
        raise ValueError("an injected pipeline must declare its id and revision: pass "
                         "streetsynth.models.inpaint.injected(pipeline, model_id, revision)")
    return injected(cfg.pipeline, *declared)


def _negative_prompt(cfg: GenerateConfig, family) -> str | None:
    """Ours by default where the family takes one; none for FLUX Fill; a given one it cannot take is an error."""
    if family.negative_prompt:
        return DEFAULT_NEGATIVE if cfg.negative_prompt is None else cfg.negative_prompt
    if cfg.negative_prompt is not None and "negative_prompt" not in cfg.allow_drop:
        raise ValueError(f"{family.name} models take no negative prompt; leave --negative-prompt unset")
    return None


def _same_size(batch: list[_Sample]) -> list[list[_Sample]]:
    """The batch split into runs of canvases of one size (a pipeline call takes one size)."""
    groups: dict[tuple[int, ...], list[_Sample]] = {}
    for s in batch:
        groups.setdefault(s.canvas.image.shape, []).append(s)
    return list(groups.values())


def _keep_rejected(folder: Path, s: _Sample, image: np.ndarray, score: float, seed: int) -> None:
    """A thumbnail and a JSON note of one rejected attempt, for the contact sheet and info.json."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{s.id}-a{s.attempt}".replace("/", "_")
    h, w = image.shape[:2]
    thumb = cv2.resize(image, (256, max(1, round(h * 256 / w))), interpolation=cv2.INTER_AREA)
    Image.fromarray(thumb).save(folder / f"{stem}.png")
    note = {"id": s.id, "attempt": s.attempt, "seed": seed, "seam_score": score, "thumbnail": f"{stem}.png"}
    (folder / f"{stem}.json").write_text(json.dumps(note) + "\n")


def _rejected_examples(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


def _contact_sheet(folder: Path, manifest: dict[str, Any], rejected_dir: Path, k: int, tag: str) -> Path | None:
    """Accepted samples (green) and kept rejected attempts (red) on one PNG."""
    import pyarrow.parquet as pq

    tiles: list[Tile] = []
    for shard in manifest.get("shards", []):
        if len(tiles) >= k:
            break
        if not shard["path"]:
            continue
        table = pq.read_table(Path(folder) / shard["path"], columns=["id", "width", "height", "image", "objects",
                                                                     "instance_mask", "generation"])
        for row in table.to_pylist()[: k - len(tiles)]:
            image = codec.decode(row["image"]["bytes"], row["id"])
            inst = Instances.from_row(row)
            title = f"{row['id']} seam {row['generation']['seam_score']:.2f} ({len(inst)} inst)"
            tiles.append(Tile(image, title, inst, border=(0, 160, 0)))
    for note in _rejected_examples(rejected_dir):
        image = np.asarray(Image.open(rejected_dir / note["thumbnail"]).convert("RGB"))
        tiles.append(Tile(image, f"{note['id']} try {note['attempt']} seam {note['seam_score']:.2f} REJECTED",
                          border=(200, 0, 0)))
    if not tiles:
        return None
    return render_sheet(tiles, Path(folder) / CONTACT_SHEET_PATH,
                        heading=f"synthetic {tag}: accepted (green), rejected attempts (red)")
