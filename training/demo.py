"""The whole pipeline on a sample the package makes itself, as one report (``streetsynth demo``).

Makes a Waymo-format sample (or reads real segments with ``source``), builds the real dataset,
gives every real object a mask (SAM prompted with its ground-truth box where the frame has no
panoptic label), generates a synthetic version with seam gating, labels it, trains Mask R-CNN on
real-only, real+synthetic and an oracle control (the real scenes with their true labels, written
as a synthetic version) with the full recipe, sweeps a load-time filter of the synthetic rows
(``train compare --sweep``), renders the dataset cards, and writes ``out/report.html`` with the
Δ pictures. With tiny random models the machinery is real, the
pictures are not; the AP is measured on rendered scenes, and says so.

It lives in training/ because training is the last stage it reaches and no stage imports
training: the demo can use every stage without making a loop between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streetsynth.cards.report import Stage

TINY_NOTE = ("Tiny RANDOM models stand in for Stable Diffusion, Mask R-CNN and SAM: outpaints are noise. "
             "The machinery is the real one; pass --model, --detector and --sam (and --source for real Waymo "
             "segments) for the real thing.")
RENDERED_NOTE = ("AP is measured on RENDERED scenes (the sample maker's street scenes), not on Waymo: it shows that "
                 "training learns and that the comparison can see an effect (the oracle), nothing about real data.")

@dataclass
class DemoConfig:
    out: Path  # everything the demo writes goes under here
    source: Path | None = None  # Waymo segments (v1 or v2); None = make a sample under out/sample
    segments: int = 4  # sample segments (the last is the validation split)
    frames: int = 4  # frames per segment
    view_size: tuple[int, int] = (192, 288)  # per-camera HxW of the rendered sample
    panoptic_every: int = 1  # sample frames with panoptic labels: every one, so AP is measured on true masks
    size: tuple[int, int] = (160, 384)  # stitched scene HxW (multiples of 8; pedestrians about 7 px wide)
    model: str = "tiny"  # inpainting model id or folder; "tiny" = tiny random pipeline
    detector: str = "tiny"  # Mask R-CNN spec for the labeler; "tiny" = tiny random detector
    sam: str = "tiny"  # SAM spec for the labeler; "tiny" = tiny random SAM
    num: int = 8  # synthetic samples to generate
    steps: int = 4  # diffusion steps per outpaint
    max_attempts: int = 3  # seam-gate attempts per sample
    seam_threshold: float | None = None  # None: the gate's calibrated one (opened for the tiny model, see below)
    train_steps: int = 80  # optimizer steps of each Mask R-CNN run (the 2x control gets twice as many)
    train_arch: str = "tiny"  # Mask R-CNN architecture trained on the mixes (v2 for the real recipe)
    real_fraction: float = 0.34  # share of the real train segments every mix trains on (one of three)
    seeds: int = 2  # training seeds per mix (the comparison reports their spread)
    jobs: int = 2  # training runs at once, one process each
    sweep: str | None = "auto"  # a `train compare --sweep` spec; "auto": thirds of the version's seam scores; None: skip
    sweep_steps: int | None = None  # optimizer steps of each sweep run (default train_steps)
    methods: bool = True  # also run occlude, rerender and ground once each
    base_model: str = "tiny"  # text-to-image SD 1.5 base for rerender (with its ControlNet) and ground
    device: str = "cpu"  # torch device for generation and labeling
    seed: int = 0  # the demo's run seed

    @property
    def tiny(self) -> bool:
        return "tiny" in (self.model, self.detector, self.sam)


def format_build(summary: Any) -> str:
    """What the build printed: rows per split, objects per class, skipped frames."""
    s = summary if isinstance(summary, dict) else vars(summary)
    return "\n".join([f"built the real dataset into {s['repo']}"] + [f"  {k}: {n} rows" for k, n in s["rows"].items()]
                     + ["  objects: " + ", ".join(f"{c} {n}" for c, n in s["objects"].items()),
                        f"  skipped frames: {s['skipped']}"])


def _banner(i: int, text: str) -> None:
    print(f"\n[{i}] {text}", flush=True)


def run_demo(cfg: DemoConfig) -> Path:
    """Run every stage and write the report; returns the report's path."""
    from streetsynth.cards.report import write_report
    from streetsynth.generators.label import build_labeler

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.tiny:
        print("NOTE: " + TINY_NOTE)
    stages: list[Stage] = []
    real = _sample_and_build(cfg, out, stages)
    tiny_labels = cfg.detector == "tiny" or cfg.sam == "tiny"
    labeler = build_labeler(cfg.detector, cfg.sam, device=cfg.device,
                            **({"score_threshold": 0.1, "keep_overlap": 0.0} if tiny_labels else {}))
    _banner(3, f"masks for every real object: SAM ({cfg.sam}) prompted with each row's ground-truth boxes")
    real = _mask_every_object(cfg, real, out, labeler, stages)
    synthetic = _generate(cfg, real, out, labeler, stages)
    if cfg.methods:
        _banner(5, "three more methods: occluders in boxes, layout-preserving re-rendering, grounded generation")
        stages.extend(_method_stages(cfg, real, out))
    stages.append(_train(cfg, real, synthetic, out))
    if cfg.sweep:
        stages.extend(_sweep(cfg, real, synthetic, out))
    report = write_report(out / "report.html", "streetsynth demo", stages,
                          notes=([TINY_NOTE] if cfg.tiny else []) + [RENDERED_NOTE] * (cfg.source is None))
    print(f"\nreport: {report}")
    return report


def _sample_and_build(cfg: DemoConfig, out: Path, stages: list[Stage]) -> Path:
    """Make the sample (unless ``cfg.source``) and build the real dataset; returns its folder."""
    from streetsynth.builders.sample import make_sample
    from streetsynth.builders.waymo import build_real
    from streetsynth.cards.preview import preview
    from streetsynth.cards.render import write_card
    from streetsynth.cards.report import Stage

    source = cfg.source
    if source is None:
        _banner(1, f"making a Waymo-format sample: {cfg.segments} segments x {cfg.frames} frames at "
                   f"{cfg.view_size[0]}x{cfg.view_size[1]} per camera")
        files = make_sample(out / "sample", cfg.segments, cfg.frames, cfg.seed, cfg.view_size,
                            panoptic_every=cfg.panoptic_every)
        source = out / "sample"
        stages.append(Stage("Sample", {"segments": len(files), "frames": cfg.segments * cfg.frames},
                            text="Rendered street scenes written as real Waymo v1 segment files "
                                 "(FRONT and FRONT_RIGHT JPEGs, calibrations, boxes, panoptic labels)."))
    else:
        _banner(1, f"reading Waymo segments from {source}")
    _banner(2, f"building the real dataset (stitched {cfg.size[0]}x{cfg.size[1]})")
    real = out / "real"
    summary = build_real(source, real, size=cfg.size, on_error="skip")
    s = summary if isinstance(summary, dict) else vars(summary)
    write_card(real)
    real_sheet, _ = preview(real, "stitched", "train", num=6, out=out / "real_scenes.png")
    counts = {f"{split} rows": n for split, n in s["rows"].items()}
    counts |= {f"{name}s": n for name, n in s["objects"].items() if n}
    counts |= {f"stitched by {m}": n for m, n in (s.get("methods") or {}).items()}
    counts["skipped frames"] = s["skipped"]
    stages.append(Stage("Real dataset", counts,
                        text="FRONT + FRONT_RIGHT warped with their full camera models (distortion, own "
                             "centres) onto a ground plane blended into a cylinder, exposure matched by a "
                             "per-channel gain, feather-blended and cropped to what both cover; boxes and "
                             "panoptic masks carried into the stitched scene.",
                        images=[(real_sheet, "Real stitched scenes with their instance masks")]))
    print(format_build(summary), flush=True)
    return real


def _generate(cfg: DemoConfig, real: Path, out: Path, labeler, stages: list[Stage]) -> Path:
    """Outpaint, seam-gate and label a synthetic version; measure its quality; returns its folder."""
    from streetsynth.cards.preview import preview
    from streetsynth.cards.render import write_card
    from streetsynth.cards.report import Stage
    from streetsynth.generators.generate import GenerateConfig, run_generation

    _banner(4, f"generating {cfg.num} synthetic scenes (model {cfg.model}), seam-gated, labelled "
               f"(detector {cfg.detector}, SAM {cfg.sam})")
    # The tiny random model paints noise, which the seam gate rightly rejects: the demo opens the gate
    # for it so the later stages have rows; a real model meets the calibrated threshold.
    threshold = cfg.seam_threshold if cfg.seam_threshold is not None or cfg.model != "tiny" else 1e9
    gen = run_generation(GenerateConfig(real=str(real), out=str(out / "synthetic"), model=cfg.model, num=cfg.num,
                                        steps=cfg.steps, max_attempts=cfg.max_attempts, seed=cfg.seed,
                                        device=cfg.device, labeler=labeler, size=cfg.size, seam_threshold=threshold))
    # FID/KID need two images a side; a run that accepted fewer says so instead.
    quality = _measure_quality(cfg, real, gen.folder) if gen.counts["accepted"] >= 2 else {}
    write_card(gen.folder)
    synth_sheet, _ = preview(gen.folder, "synthetic", "synthetic", num=6, out=out / "synthetic_masks.png")
    images = [(synth_sheet, "Accepted synthetic scenes with Mask R-CNN + SAM instance masks")]
    if gen.contact_sheet:
        images.insert(0, (gen.contact_sheet, "Accepted (green) and rejected (red) outpaints with seam scores"))
    stages.append(Stage(f"Synthetic {gen.tag}", dict(gen.counts) | quality, images=images,
                        text="The right part of each scene invented by the inpainting model, known pixels "
                             "pasted back exactly, outpaints with a visible seam rejected and retried."
                             + (" The tiny random model paints noise, which the calibrated gate rejects, so this "
                                "demo opens the gate (threshold 1e9) to carry its rows to the later stages."
                                if threshold == 1e9 else "")))
    return Path(gen.folder)


def _train(cfg: DemoConfig, real: Path, synthetic: Path, out: Path) -> Stage:
    """The comparison with the recipe: real-only, real+synthetic and the oracle control, at a small real
    fraction, with the 2x-steps control; the report stage with its table and the Δ picture."""
    from streetsynth.cards.report import Stage
    from streetsynth.training.compare import (CURVES_FILE, DELTA_FILE, compare_mixes, comparison_table,
                                              control_specs, format_comparison)

    _banner(6, f"training Mask R-CNN: real only, real + synthetic and an oracle control at real fraction "
               f"{cfg.real_fraction:g} ({cfg.seeds} seeds each, equal compute, plus real-only for twice the steps)")
    base = _train_config(cfg, real, synthetic, out / "train")
    mixes = ["real=1", "real=1,synthetic=0.5"] + control_specs(real, ["oracle"], out / "controls", cfg.seed)
    rows = compare_mixes(base, mixes, out / "train", seeds=cfg.seeds, steps=cfg.train_steps,
                         real_fractions=[cfg.real_fraction], jobs=cfg.jobs)
    print(format_comparison(rows))
    print("NOTE: " + RENDERED_NOTE)
    text = ("Box and mask AP on the REAL validation split (pycocotools), mean ± std over seeds; every mix gets the "
            "same optimizer steps and images, and Δ is paired by seed against real-only with its 95 % interval. "
            "The oracle is the real train scenes with their true labels written as a synthetic version: the effect "
            "a perfect generator would have. " + RENDERED_NOTE)
    images = [(out / "train" / DELTA_FILE, "Δ AP against real-only with 95 % intervals, per mix"),
              (out / "train" / CURVES_FILE, "Learning curves (band: spread over seeds)")]
    return Stage("Training", {"mixes": len(rows), "seeds per mix": cfg.seeds, "real fraction": cfg.real_fraction},
                 tables=[comparison_table(rows)], text=text, images=[i for i in images if i[0].exists()])


def _train_config(cfg: DemoConfig, real: Path, synthetic: Path, out: Path):
    """The recipe every demo training run shares (batch 2, batch-norm statistics recomputed on 8 images)."""
    from streetsynth.training.maskrcnn import TrainConfig

    return TrainConfig(real=str(real), out=str(out), synthetic=[str(synthetic)], arch=cfg.train_arch, batch_size=2,
                       seed=cfg.seed, norm_images=8, progress=False)


def _mask_every_object(cfg: DemoConfig, real: Path, out: Path, labeler, stages: list[Stage]) -> Path:
    """A new version of the real dataset in which every object has a mask (panoptic where the frame has
    one, else SAM prompted with the object's box): most real frames carry boxes only, and the later
    stages train on masks. Returns the new version's folder."""
    from streetsynth.cards.preview import preview
    from streetsynth.cards.report import Stage
    from streetsynth.generators.relabel import label_repo

    res = label_repo(real, out / "real-masks", labeler, prompt_boxes="ground-truth", progress=False)
    counts = {f"{split} rows": n for split, n in res.rows.items()}
    counts |= {f"masks from {source}": n for source, n in res.mask_sources.items()}
    iou = (res.mask_iou or {}).get("sam_vs_panoptic") or {}
    if iou.get("objects"):
        counts["SAM vs panoptic mask IoU (mean)"] = iou["mean"]
    sheet, _ = preview(res.folder, "stitched", "train", num=6, out=out / "real_masks.png")
    stages.append(Stage(f"Masks for every real object {res.tag}", counts,
                            text="Real frames mostly carry boxes only: SAM, prompted with each row's own "
                                 "ground-truth boxes, gives every such object a mask; panoptic masks are kept "
                                 "where the frame has them, and each object records its mask's source.",
                            images=[(sheet, "Real scenes with a mask for every object")]))
    print(f"labelled {sum(res.rows.values())} real rows into {res.folder} ({res.tag}); masks: "
          + ", ".join(f"{n} {s}" for s, n in res.mask_sources.items()), flush=True)
    return res.folder


def _measure_quality(cfg: DemoConfig, real: Path, folder: Path) -> dict[str, str]:
    """FID/KID of the synthetic version against the real scenes, whole image and invented region; recorded
    in the version's info (so its card shows it) and returned as report counts."""
    from streetsynth.generators.quality import QualityConfig, format_quality, measure_quality, record_quality
    from streetsynth.models.features import TinyFeatures
    from streetsynth.models.lpips import tiny_lpips

    tiny = cfg.model == "tiny"
    # Offline with tiny models: tiny random nets stand in for Inception and LPIPS (the numbers mean nothing).
    block = measure_quality(QualityConfig(real=str(real), synthetic=str(folder), **(
        {"size": (64, 64), "feature": TinyFeatures(), "lpips_size": (64, 128), "lpips_model": tiny_lpips()}
        if tiny else {})))
    record_quality(folder, block)
    print(format_quality(block), flush=True)
    lpips = block["lpips"]["invented_region"]
    return {f"{name} ({where.replace('_', ' ')})": f"{block[where][key]:.3g}"
            for where in ("images", "invented_region") for name, key in (("FID", "fid"), ("KID", "kid_mean"))} | {
        f"LPIPS diversity {name} (invented region)": "n/a" if lpips[key] is None else f"{lpips[key]:.3g}"
        for name, key in (("within rows", "within_rows"), ("across rows", "across_rows"))}


def _method_stages(cfg: DemoConfig, real: Path, out: Path) -> list[Stage]:
    """Run occlude, rerender and ground once each on the real dataset; one report stage per method."""
    from streetsynth.cards.report import Stage
    from streetsynth.generators.ground import GroundConfig, run_ground
    from streetsynth.generators.occlude import OccludeConfig, run_occlude
    from streetsynth.generators.rerender import RerenderConfig, run_rerender

    common = {"steps": cfg.steps, "seed": cfg.seed, "device": cfg.device}
    # Tiny random detectors agree with nothing, so verification is switched off for them.
    lenient = cfg.tiny or cfg.base_model == "tiny"
    occlude = OccludeConfig(real=str(real), out=str(out / "occlude"), model=cfg.model, min_size=8, size=128, num=4,
                            **common)
    rerender = RerenderConfig(real=str(real), out=str(out / "rerender"), model=cfg.base_model, num=4,
                              detector=cfg.detector, **common,
                              **({"iou_threshold": 0.0, "min_kept": 0} if lenient else {}))
    ground = GroundConfig(out=str(out / "ground"), model=cfg.base_model, num=2, size=cfg.size, sam=cfg.sam,
                          detector=cfg.detector, **common,
                          **({"iou_threshold": 0.0, "min_area": 16} if lenient else {}))
    runs = [
        ("Occluders in boxes", lambda: run_occlude(occlude),
         "An occluder inpainted over part of a pedestrian's or vehicle's box; every pixel outside the region is "
         "the real one; the occluded object's mask loses the occluder's pixels."),
        ("Layout-preserving re-rendering", lambda: run_rerender(rerender),
         "A ControlNet conditioned on the real instance layout renders a new appearance; instances the detector "
         "does not find again are dropped."),
        ("Grounded generation", lambda: run_ground(ground),
         "Scenes from text; masks from the UNet's cross-attention for the class words, sharpened by SAM, kept "
         "where Mask R-CNN agrees."),
    ]
    stages = []
    for name, run, text in runs:
        res = run()
        sheet = Path(res["folder"]) / "meta" / "contact_sheet.png"
        print(f"{name}: {res['tag']} at {res['folder']}: {res['counts']}", flush=True)
        stages.append(Stage(f"{name} {res['tag']}", dict(res["counts"]), text=text,
                            images=[(sheet, f"{name}: before and after, with masks")] if sheet.exists() else []))
    return stages


def auto_sweep(synthetic: Path) -> str | None:
    """``max-seam-score=A,B`` at the thirds of the version's seam scores (keep the best two thirds, the best
    third), or None when the scores do not split the rows (fewer than 3 rows, or ties)."""
    import numpy as np

    from streetsynth.repo import load_split

    scores = [g["seam_score"] for g in load_split(synthetic, "synthetic", "synthetic")["generation"]
              if g.get("seam_score") is not None]
    if len(scores) < 3:
        return None
    cuts = sorted({float(f"{q:.4g}") for q in np.quantile(scores, [1 / 3, 2 / 3])})
    kept = [sum(v <= c for v in scores) for c in cuts]
    if len(set(kept)) < 2 or min(kept) == 0 or max(kept) == len(scores):
        return None
    return "max-seam-score=" + ",".join(f"{c:g}" for c in cuts)


def _sweep(cfg: DemoConfig, real: Path, synthetic: Path, out: Path) -> list[Stage]:
    """The filter sweep (``train compare --sweep``): real-only, the unfiltered mix and one mix per threshold at
    equal steps, paired by seed; a report stage with its table, what each filter dropped and the Δ picture."""
    from streetsynth.cards.report import Stage
    from streetsynth.training.compare import (DELTA_FILE, comparison_table, format_comparison, format_sweep_drops,
                                              parse_sweep, sweep_filters)

    spec = auto_sweep(synthetic) if cfg.sweep == "auto" else cfg.sweep
    if spec is None:
        print("filter sweep skipped: the version's seam scores do not split its rows into thirds", flush=True)
        return []
    name, thresholds = parse_sweep(spec)
    steps = cfg.sweep_steps or cfg.train_steps
    _banner(7, f"filter sweep {spec}: which threshold of the synthetic rows trains best ({cfg.seeds} seeds, "
               f"{steps} steps each)")
    base = _train_config(cfg, real, synthetic, out / "sweep")
    rows = sweep_filters(base, spec, out / "sweep", seeds=cfg.seeds, steps=steps, jobs=cfg.jobs)
    drops = format_sweep_drops(rows)
    print(format_comparison(rows) + "\n" + drops, flush=True)
    text = (f"The synthetic rows filtered when they are read ({name.replace('_', '-')} at "
            f"{', '.join(f'{v:g}' for v in thresholds)}"
            + (", the thirds of this version's seam scores" if cfg.sweep == "auto" else "")
            + "), each filtered mix trained at the same steps as the unfiltered one and real-only, paired by seed: "
            "the threshold to use is measured, not guessed (`streetsynth train compare --sweep`). "
            + drops.replace("\n", "; ") + ". " + RENDERED_NOTE)
    images = [(out / "sweep" / DELTA_FILE, "Δ AP against real-only with 95 % intervals, per filter threshold")]
    return [Stage("Filter sweep", {"filter": name.replace("_", "-"), "thresholds": len(thresholds),
                                   "seeds per mix": cfg.seeds, "steps per run": steps},
                  tables=[comparison_table(rows)], text=text, images=[i for i in images if i[0].exists()])]
