"""``streetsynth quality``: how real a synthetic version looks (FID, KID, CLIP score) and how diverse it is
(LPIPS), into its info.json."""

from __future__ import annotations

import argparse

from streetsynth.config import config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quality", help="FID/KID and CLIP score of a synthetic version against the real scenes",
                       description="Compare a synthetic version with the real scenes: FID and KID on Inception-v3 "
                       "features and the CLIP score of images against their prompts, on whole images and on the "
                       "invented region alone (vs the same columns of the real scenes), and LPIPS diversity "
                       "(mean pairwise LPIPS among samples of one source row and across rows, real scenes for "
                       "scale). The result goes into the version's meta/info.json as a 'quality' block; re-render "
                       "the card to show it.")
    p.add_argument("--real", required=True, help="real dataset repo folder (config 'stitched')")
    p.add_argument("--synthetic", required=True, help="synthetic version folder STORE/vX.Y.Z (or a store: newest)")
    p.add_argument("--split", default=None, help="split of the real scenes (default train)")
    p.add_argument("--inception", default=None,
                   help="Inception weights file (default: torch hub's checkpoints/weights-inception-2015-12-05-"
                   "6726825d.pth)")
    p.add_argument("--tiny-features", action="store_true",
                   help="tiny random feature extractor and LPIPS instead of Inception and the published LPIPS (tests the "
                   "flow; numbers mean nothing)")
    p.add_argument("--clip-model", default=None, help="transformers CLIP id or folder, e.g. "
                   "openai/clip-vit-large-patch14 (default: no CLIP score)")
    p.add_argument("--lpips", default=None, choices=("alex", "vgg", "none"),
                   help="LPIPS backbone for diversity; none skips it (default alex)")
    p.add_argument("--lpips-backbone", default=None, help="torchvision backbone weights file (default: torch hub's "
                   "checkpoints/alexnet-owt-7be5be79.pth or vgg16-397923af.pth)")
    p.add_argument("--lpips-linear", default=None, help="LPIPS v0.1 linear layers alex.pth / vgg.pth (default: the "
                   "copy torchmetrics ships; from github.com/richzhang/PerceptualSimilarity)")
    p.add_argument("--lpips-max-rows", type=int, default=None, help="source rows whose pairs give the across-row "
                   "LPIPS (default 64)")
    p.add_argument("--size", type=int, default=None, help="side images and regions are resized to (default 299)")
    p.add_argument("--max-images", type=int, default=None, help="at most this many images per set")
    p.add_argument("--batch-size", type=int, default=None, help="default 16")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda (default cpu)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streetsynth.generators.quality import QualityConfig, format_quality, measure_quality, record_quality
    from streetsynth.models.features import TinyFeatures
    from streetsynth.models.lpips import tiny_lpips
    from streetsynth.training.compare import resolve_synthetic

    folder = resolve_synthetic(args.synthetic)
    extra = {"size": (args.size, args.size)} if args.size is not None else {}
    if args.lpips is not None:
        extra["lpips"] = None if args.lpips == "none" else args.lpips
    if args.tiny_features:
        extra.update(feature=TinyFeatures(), lpips_model=None if args.lpips == "none" else tiny_lpips())
    block = measure_quality(config_from_args(QualityConfig, args, synthetic=str(folder), **extra))
    record_quality(folder, block)
    print(f"{folder}: {format_quality(block)}")
    print(f"wrote the quality block into {folder / 'meta' / 'info.json'}")
    return 0
