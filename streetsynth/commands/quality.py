"""``streetsynth quality``: how real a synthetic version looks (FID, KID, CLIP score), into its info.json."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quality", help="FID/KID and CLIP score of a synthetic version against the real scenes",
                       description="Compare a synthetic version with the real scenes: FID and KID on Inception-v3 "
                       "features and the CLIP score of images against their prompts, on whole images and on the "
                       "invented region alone (vs the same columns of the real scenes). The result goes into the "
                       "version's meta/info.json as a 'quality' block; re-render the card to show it.")
    p.add_argument("--real", required=True, help="real dataset repo folder (config 'stitched')")
    p.add_argument("--synthetic", required=True, help="synthetic version folder STORE/vX.Y.Z (or a store: newest)")
    p.add_argument("--split", default="train", help="split of the real scenes")
    p.add_argument("--inception", default=None,
                   help="Inception weights file (default: torch hub's checkpoints/weights-inception-2015-12-05-"
                   "6726825d.pth)")
    p.add_argument("--tiny-features", action="store_true",
                   help="a tiny random feature extractor instead of Inception (tests the flow; numbers mean nothing)")
    p.add_argument("--clip-model", default=None, help="transformers CLIP id or folder, e.g. "
                   "openai/clip-vit-large-patch14 (default: no CLIP score)")
    p.add_argument("--size", type=int, default=299, help="side images and regions are resized to")
    p.add_argument("--max-images", type=int, default=None, help="at most this many images per set")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.generators.quality import QualityConfig, format_quality, measure_quality, record_quality
    from streetsynth.models.features import TinyFeatures
    from streetsynth.training.compare import resolve_synthetic

    folder = resolve_synthetic(args.synthetic)
    block = measure_quality(QualityConfig(
        real=args.real, synthetic=str(folder), split=args.split, inception=args.inception,
        clip_model=args.clip_model, size=(args.size, args.size), max_images=args.max_images,
        batch_size=args.batch_size, device=args.device, feature=TinyFeatures() if args.tiny_features else None))
    record_quality(folder, block)
    print(f"{folder}: {format_quality(block)}")
    print(f"wrote the quality block into {folder / 'meta' / 'info.json'}")
    return 0
