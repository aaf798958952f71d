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
from streetsynth.config import MAX_SIDE, Size, check_size  # noqa: F401 - MAX_SIDE: its old home
from streetsynth.contact_sheet import Tile
from streetsynth.instances import Instances
from streetsynth.models.inpaint import LoadedModel, injected, load, spec_family
from streetsynth.repo import load_split, read_info
from streetsynth.schema import STITCHED
from streetsynth.seeds import derive_seed
from streetsynth.versions import check_out_outside, check_version, fingerprint

from .merge_labels import merge_labels
from .method_run import (CONTACT_SHEET_PATH, MethodResult, MethodRun, finish_counts, finish_run, open_run, row_tile,
                         source_record, synthetic_row, version_rows)
from .outpaint import DEFAULT_NEGATIVE, DEFAULT_PROMPT, Canvas, make_canvas, outpaint_batch
from .seam import SeamGate
from .seam_plausibility import plausibility_score
from .style_reference import IP_ADAPTER, StyleImages, adapter_name, load_ip_adapter, weight_for

__all__ = ["CONTACT_SHEET_PATH", "GenerateConfig", "GenerateResult", "run_generation"]

METHOD = "outpaint"
CARRIED_LABELER = "carried-from-source:known-region-clipped"
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
    seam_threshold: float | None = None  # seam scores above this reject an attempt (default: the gate's calibrated one)
    plausibility_threshold: float | None = None  # plausibility scores below this reject too (default: recorded only)
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
    size: Size | None = None  # canvas (H, W); default the source size rounded down to 8
    invent_fraction: float | None = None  # share of the width to invent; default from stitch.front_x1
    feather: int = 8  # columns right of the known edge that blend the colour difference away
    rows_per_shard: int = 64  # rows per Parquet shard
    detector: str | None = None  # detector spec for the labeler (with sam)
    sam: str | None = None  # SAM spec for the labeler (with detector)
    style_image: str | None = None  # a reference image, or a folder of them (one drawn per row), via IP-Adapter
    style_scale: float = 0.6  # IP-Adapter scale: how strongly the reference steers the invented part
    ip_adapter: str = IP_ADAPTER  # IP-Adapter Hub id or local folder
    ip_adapter_weight: str | None = None  # its weight file inside (default: the model family's)
    sheet_samples: int = 6  # accepted samples on the contact sheet
    keep_rejected: int = 6  # rejected attempts kept as thumbnails per process
    progress: bool = True  # show a tqdm bar
    pipeline: Any = field(default=None, repr=False)  # injected LoadedModel (tests, benchmarks)
    labeler: Any = field(default=None, repr=False)  # injected labeler: image -> Instances, .description


#: The result every method returns (kept under this name for callers of ``run_generation``).
GenerateResult = MethodResult


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

    def __init__(self, index: int, sample_id: str, row: dict[str, Any], canvas: Canvas, prompt: str,
                 style=None) -> None:
        self.index, self.id, self.row, self.canvas, self.prompt = index, sample_id, row, canvas, prompt
        self.style = style  # its StyleReference under --style-image
        self.attempt = 0
        self.rejected = 0


def sample_ids(source_ids: list[str], num: int) -> list[str]:
    """Ids of ``num`` samples over the source rows (``~k`` marks the k-th reuse of a row)."""
    n = len(source_ids)
    return [source_ids[i % n] + (f"~{i // n}" if i >= n else "") for i in range(num)]


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
    for name in ("seam_threshold", "plausibility_threshold"):
        v = getattr(cfg, name)
        if v is not None and not (math.isfinite(v) and v >= 0):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {v}")
    if cfg.guidance is not None and (not math.isfinite(cfg.guidance) or cfg.guidance < 0):
        raise ValueError(f"--guidance must be a finite number >= 0, got {cfg.guidance}")
    if not 0.0 < cfg.strength <= 1.0:
        raise ValueError(f"--strength must lie in (0, 1], got {cfg.strength}")
    if cfg.invent_fraction is not None and not 0.0 < cfg.invent_fraction < 1.0:
        raise ValueError(f"--invent-fraction must lie in (0, 1), got {cfg.invent_fraction}")
    if cfg.size is not None:
        check_size(cfg.size)
    if cfg.feather < 0:
        raise ValueError(f"feather must be >= 0, got {cfg.feather}")
    if (cfg.detector is None) != (cfg.sam is None):
        raise ValueError("--detector and --sam go together: give both or neither")


@dataclass
class _Plan:
    """A generation run resolved from its config: the source rows, the model, the labeler, the identity."""

    cfg: GenerateConfig
    source: Any  # the real split (datasets.Dataset)
    ids: list[str]  # sample ids, one per sample index
    model: LoadedModel
    guidance: float
    negative_prompt: str | None
    labeler: Any
    labeler_desc: str
    settings: dict[str, Any]
    real_info: dict[str, Any]
    styles: StyleImages | None = None

    def fingerprint(self) -> str:
        m = self.model
        return fingerprint({"source_fingerprint": self.real_info.get("fingerprint"), "source_split": self.cfg.split,
                            "model_id": m.model_id, "model_revision": m.revision, "labeler": self.labeler_desc,
                            "settings": self.settings, "package_version": streetsynth.__version__})

    def new_sample(self, i: int) -> _Sample:
        cfg, row = self.cfg, self.source[i % len(self.source)]
        canvas = make_canvas(row, cfg.size, cfg.invent_fraction, self.model.family.size_multiple)
        prompt = (row.get("caption") or cfg.prompt) if cfg.prompt_source == "caption" else cfg.prompt
        style = None if self.styles is None else self.styles.pick(cfg.seed, self.ids[i])
        return _Sample(i, self.ids[i], row, canvas, prompt, style)

    def row(self, s: _Sample, image: np.ndarray, score: float, seed: int, plausibility: float) -> dict[str, Any]:
        """The synthetic row of an accepted attempt: carried ground truth in the known part, the labeler's
        instances in the invented part."""
        cfg, h, w = self.cfg, *image.shape[:2]
        inst = carry_known_objects(s.row, s.canvas, h, w)
        if self.labeler is not None:
            known = np.zeros((h, w), bool)
            known[:, : s.canvas.known_width] = True
            inst = merge_labels(inst, self.labeler(image), known, self.labeler_desc)
        gen = {"source_id": s.row["id"], "model_id": self.model.model_id, "model_revision": self.model.revision,
               "prompt": s.prompt, "negative_prompt": self.negative_prompt, "seed": seed, "steps": cfg.steps,
               "guidance_scale": self.guidance, "strength": cfg.strength, "known_width": s.canvas.known_width,
               "seam_score": score, "seam_threshold": cfg.seam_threshold, "plausibility_score": plausibility,
               "attempts": s.attempt + 1,
               "labeler": self.labeler_desc}
        details = None if s.style is None else {"style": s.style.record}
        return synthetic_row(s.id, image, _with_mask_sources(inst, s.row), gen, METHOD, details, source=s.row,
                             known_width=s.canvas.known_width, predictor=getattr(self.labeler, "predictor", None))


def plan_generation(config: GenerateConfig) -> _Plan:
    """Check the config, read the source, load the model and labeler: everything before the first write."""
    validate_config(config)
    check_version(config.version)
    check_out_outside(config.out, config.real)
    cfg = replace(config, seam_threshold=SeamGate(config.seam_threshold).threshold)
    real_info = read_info(cfg.real)
    source = load_split(cfg.real, STITCHED, cfg.split)
    if len(source) == 0:
        raise ValueError(f"{cfg.real}: split {cfg.split!r} of {STITCHED!r} has no rows")
    num = len(source) if cfg.num is None else cfg.num
    styles = StyleImages(cfg.style_image, cfg.style_scale) if cfg.style_image else None
    if styles is not None:  # refused before a model is loaded
        cfg = replace(cfg, ip_adapter_weight=weight_for(_family(cfg).name, cfg.ip_adapter_weight))
        if len(styles.files) > 1 and cfg.batch_size > 1:
            # diffusers gives one call one reference: samples drawing different ones would each need a
            # call padded to the batch (batch-size times the work); one sample per call costs about one batch.
            print(f"--style-image {styles.path.name}: {len(styles.files)} references, so one sample per pipeline "
                  f"call (--batch-size {cfg.batch_size} -> 1)")
            cfg = replace(cfg, batch_size=1)
    model = _loaded(cfg)
    if styles is not None:
        load_ip_adapter(model.pipeline, cfg.ip_adapter, cfg.ip_adapter_weight, cfg.style_scale)
    guidance = model.family.default_guidance if cfg.guidance is None else cfg.guidance
    negative_prompt = _negative_prompt(cfg, model.family)
    labeler = cfg.labeler
    if labeler is None and cfg.detector is not None:
        from streetsynth.generators.label import build_labeler

        labeler = build_labeler(detector=cfg.detector, sam=cfg.sam, device=cfg.device)
    settings = {k: v for k, v in vars(cfg).items()
                if k not in ("real", "out", "device", "dtype", "attention", "compile", "version", "progress",
                             "pipeline", "labeler", "model", "revision", "sheet_samples", "keep_rejected",
                             "style_image", "style_scale", "ip_adapter", "ip_adapter_weight")}
    settings.update(num=num, guidance=guidance, negative_prompt=negative_prompt)
    if styles is not None:  # recorded by digest and name, never by local path
        settings.update(style_image=styles.record(), ip_adapter_weight=cfg.ip_adapter_weight,
                        ip_adapter=adapter_name(cfg.ip_adapter))
    return _Plan(cfg, source, sample_ids(list(source["id"]), num), model, guidance, negative_prompt, labeler,
                 labeler.description if labeler is not None else CARRIED_LABELER, settings, real_info, styles)


def run_generation(config: GenerateConfig) -> MethodResult:
    """Generate (or resume) a synthetic version; see the module docstring for the guarantees."""
    plan = plan_generation(config)
    rank, world, barrier = _process_state(plan.cfg.device)
    run = open_run(METHOD, plan.cfg.out, plan.fingerprint(), plan.cfg.version, plan.cfg.rows_per_shard,
                   rank, world, barrier)
    done = run.done()
    mine = [i for i in range(len(plan.ids)) if i % world == rank and plan.ids[i] not in done]
    if rank == 0 and plan.cfg.model.startswith("tiny") and plan.cfg.pipeline is None:
        print("model: the TINY RANDOM pipeline (streetsynth.models.tiny_inpaint): images are noise, "
              "for testing the flow only")
    _AttemptLoop(plan, run, mine).run()
    result = _finish_generation(plan, run, barrier)
    barrier()
    return result


def _finish_generation(plan: _Plan, run: MethodRun, barrier) -> MethodResult:
    """Count the whole version once every process has flushed; process 0 writes info.json, the README and
    the contact sheet."""
    cfg, m = plan.cfg, plan.model
    manifest, counts = finish_counts(run, f"every attempt scored above --seam-threshold {cfg.seam_threshold}",
                                     barrier)
    sheet = None
    if run.rank == 0:
        rejected_dir = run.folder / REJECTED_DIR
        info = {"source": source_record(cfg.real, plan.real_info, config=STITCHED, split=cfg.split),
                "model": {"id": m.model_id, "revision": m.revision}, "labeler": plan.labeler_desc,
                "settings": plan.settings, "counts": counts, "rejected_examples": _rejected_examples(rejected_dir)}
        sheet = finish_run(run, info, None, _sheet_tiles(run, manifest, rejected_dir, cfg.sheet_samples),
                           heading=f"synthetic {run.tag}: accepted (green), rejected attempts (red)", columns=3)
    return MethodResult(run.folder, run.tag, run.resumed, counts, sheet, m.model_id, m.revision, run.rank)


class _AttemptLoop:
    """Batches of attempts through the pipeline until every sample is accepted or out of attempts.

    Labelling and image encoding of accepted images run on one worker thread while the next
    pipeline call runs; the seam gate stays inline because it decides the next batch (retries).
    Source rows are decoded and made into canvases ahead, on another thread, for the same reason.
    Rows are written in sample order, so a resumed run's shards hold the same rows.
    """

    def __init__(self, plan: _Plan, run: MethodRun, mine: list[int]) -> None:
        self.plan, self.run_, self.cfg = plan, run, plan.cfg
        self.gate = SeamGate(threshold=plan.cfg.seam_threshold, gap=plan.cfg.feather)
        self.post = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate-post")
        self.loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate-load")
        self.ahead: deque[Future] = deque()
        self.todo, self.order = deque(mine), deque(mine)  # not yet started; emission order
        self.retry: deque[_Sample] = deque()
        self.finished: dict[int, tuple[Future | None, _Sample]] = {}
        self.stats = {"accepted": 0, "rejected": 0, "attempts": 0}
        self.kept_rejected = 0
        self.bar = tqdm(total=len(mine), desc=f"generate[{run.rank}]" if run.world > 1 else "generate",
                        unit="sample", disable=not plan.cfg.progress)

    def run(self) -> None:
        self._load_ahead()
        while self.ahead or self.retry:
            batch: list[_Sample] = []
            while len(batch) < self.cfg.batch_size and (self.retry or self.ahead):
                batch.append(self.retry.popleft() if self.retry else self.ahead.popleft().result())
            self._load_ahead()
            for group in _same_size(batch):
                self._attempt(group)
            self._emit_ready()
            self.bar.set_postfix(accepted=self.stats["accepted"], rejected=self.stats["rejected"],
                                 attempts_per_s=f"{self.stats['attempts'] / max(self.bar.format_dict['elapsed'], 1e-9):.2f}")
        self.bar.close()
        self.post.shutdown()
        self.loader.shutdown()

    def _load_ahead(self) -> None:
        while self.todo and len(self.ahead) < 2 * self.cfg.batch_size:
            self.ahead.append(self.loader.submit(self.plan.new_sample, self.todo.popleft()))

    def _attempt(self, group: list[_Sample]) -> None:
        """One pipeline call for same-sized samples; each result is accepted, retried or dropped."""
        cfg, plan = self.cfg, self.plan
        seeds = [derive_seed(cfg.seed, s.id, s.attempt) for s in group]
        negative = None if plan.negative_prompt is None else [plan.negative_prompt] * len(group)
        images = outpaint_batch(plan.model.pipeline, [s.canvas for s in group], [s.prompt for s in group], negative,
                                seeds, cfg.steps, plan.guidance, cfg.strength, cfg.feather, pad_to=cfg.batch_size,
                                max_sequence_length=plan.model.family.max_sequence_length, allow_drop=cfg.allow_drop,
                                style=None if plan.styles is None else group[0].style.image)
        for s, image, seed in zip(group, images, seeds):
            score, plaus = self.gate.score(image, s.canvas.mask), plausibility_score(image, s.canvas.mask)
            self.stats["attempts"] += 1
            if self.gate.accepts(score) and not plaus < (cfg.plausibility_threshold or 0.0):
                self.finished[s.index] = (self.post.submit(plan.row, s, image, score, seed, plaus), s)
                self.stats["accepted"] += 1
                self.bar.update(1)
                continue
            self.stats["rejected"] += 1
            s.rejected += 1
            if self.kept_rejected < cfg.keep_rejected:
                _keep_rejected(self.run_.folder / REJECTED_DIR, s, image, score, seed)
                self.kept_rejected += 1
            s.attempt += 1
            if s.attempt < cfg.max_attempts:
                self.retry.append(s)
            else:
                s.attempt -= 1
                self.finished[s.index] = (None, s)
                self.bar.update(1)

    def _emit_ready(self) -> None:
        """Write finished samples in order; one still labelling waits for the next call unless none is left."""
        while self.order and self.order[0] in self.finished:
            job, s = self.finished[self.order[0]]
            if job is not None and not job.done() and (self.ahead or self.retry):
                break
            self.finished.pop(self.order.popleft())
            self.run_.writer.add(s.id, job.result() if job is not None else None, attempts=s.attempt + 1,
                                 rejected=s.rejected)


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


def _family(cfg: GenerateConfig):
    """The model's family without loading it (an injected pipeline's is its own)."""
    return _loaded(cfg).family if cfg.pipeline is not None else spec_family(cfg.model, cfg.revision)


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


def _sheet_tiles(run: MethodRun, manifest: dict[str, Any], rejected_dir: Path, k: int) -> list[Tile]:
    """Accepted samples of the whole version (green) and kept rejected attempts (red)."""
    tiles = [row_tile(row, f"{row['id']} seam {row['generation']['seam_score']:.2f} "
                           f"({len(row['objects'] or [])} inst)", border=(0, 160, 0))
             for row in version_rows(run, manifest, k)]
    for note in _rejected_examples(rejected_dir):
        image = np.asarray(Image.open(rejected_dir / note["thumbnail"]).convert("RGB"))
        tiles.append(Tile(image, f"{note['id']} try {note['attempt']} seam {note['seam_score']:.2f} REJECTED",
                          border=(200, 0, 0)))
    return tiles
