"""``streetsynth quality``: how real a synthetic version looks (FID, KID, CLIP score), into its info.json."""

from __future__ import annotations

import argparse

from streetsynth.config import config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quality", help="FID/KID and CLIP score of a synthetic version against the real scenes",
                       description="Compare a synthetic version with the real scenes: FID and KID on Inception-v3 "
                       "features and the CLIP score of images against their prompts, on whole images and on the "
                       "invented region alone (vs the same columns of the real scenes). The result goes into the "
                       "version's meta/info.json as a 'quality' block; re-render the card to show it.")
    p.add_argument("--real", required=True, help="real dataset repo folder (config 'stitched')")
    p.add_argument("--synthetic", required=True, help="synthetic version folder STORE/vX.Y.Z (or a store: newest)")
    p.add_argument("--split", default=None, help="split of the real scenes (default train)")
    p.add_argument("--inception", default=None,
                   help="Inception weights file (default: torch hub's checkpoints/weights-inception-2015-12-05-"
                   "6726825d.pth)")
    p.add_argument("--tiny-features", action="store_true",
                   help="a tiny random feature extractor instead of Inception (tests the flow; numbers mean nothing)")
    p.add_argument("--clip-model", default=None, help="transformers CLIP id or folder, e.g. "
                   "openai/clip-vit-large-patch14 (default: no CLIP score)")
    p.add_argument("--size", type=int, default=None, help="side images and regions are resized to (default 299)")
    p.add_argument("--max-images", type=int, default=None, help="at most this many images per set")
    p.add_argument("--batch-size", type=int, default=None, help="default 16")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda (default cpu)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.generators.quality import QualityConfig, format_quality, measure_quality, record_quality
    from streetsynth.models.features import TinyFeatures
    from streetsynth.training.compare import resolve_synthetic

    folder = resolve_synthetic(args.synthetic)
    extra = {"size": (args.size, args.size)} if args.size is not None else {}
    block = measure_quality(config_from_args(QualityConfig, args, synthetic=str(folder),
                                             feature=TinyFeatures() if args.tiny_features else None, **extra))
    record_quality(folder, block)
    print(f"{folder}: {format_quality(block)}")
    print(f"wrote the quality block into {folder / 'meta' / 'info.json'}")
    return 0
