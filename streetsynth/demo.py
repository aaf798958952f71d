"""The end-to-end demo on a sample the package makes itself: ``streetsynth demo --out DIR``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .builders.waymo_v1 import segment_files
from .inspect import format_summary, summarize_segment
from .sample import make_sample


@dataclass
class DemoConfig:
    out: Path  # everything the demo writes goes under here
    segments: int = 3  # sample segments (the last is the validation split)
    frames: int = 4  # frames per segment
    view_size: tuple[int, int] = (160, 240)  # per-camera HxW of the rendered sample
    seed: int = 0  # the demo's run seed
    counts: dict[str, int] = field(default_factory=dict)  # filled in as stages run


def run_demo(cfg: DemoConfig) -> DemoConfig:
    """Make a sample and read it back; later stages build, generate, label, train and report."""
    out = Path(cfg.out)
    print(f"[1] making a Waymo-format sample: {cfg.segments} segments x {cfg.frames} frames "
          f"at {cfg.view_size[0]}x{cfg.view_size[1]} per camera")
    make_sample(out / "sample", cfg.segments, cfg.frames, cfg.seed, cfg.view_size)
    files = [f for fs in segment_files(out / "sample").values() for f in fs]
    frames = 0
    for f in files:
        s = summarize_segment(f)
        frames += s.frames
        print(format_summary(s))
    cfg.counts["sample frames"] = frames
    return cfg
