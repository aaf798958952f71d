"""``streetsynth seam-calibrate``: the seam gate's held-out rates per kind of fill, or its ROC on given images."""

from __future__ import annotations

import argparse
from pathlib import Path


_EXTS = {".png", ".jpg", ".jpeg", ".webp"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("seam-calibrate", help="the seam gate's held-out rates per kind of fill, or its ROC",
                       description="--dataset REPO: composite every kind of good and bad fill into its images "
                       "(edge at --edge-fraction of the width), fit the gate with each kind held out in turn and "
                       "print that kind's rate, and the scales and threshold fitted on all good kinds. "
                       "--images DIR (subfolders seam/ and clean/): print the gate's ROC table and the threshold "
                       "whose false-accept rate is at most --target-far. Both write roc.png to --out.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder with seam/ and clean/ subfolders")
    src.add_argument("--dataset", help="a streetsynth repo whose images are the scenes of the composites")
    p.add_argument("--config", default="stitched", help="config of --dataset")
    p.add_argument("--split", default="train", help="split of --dataset")
    p.add_argument("--edge-fraction", type=float, default=2 / 3, help="mask edge position as a share of the width")
    p.add_argument("--target-far", type=float, default=0.02, help="--images: highest acceptable false-accept rate")
    p.add_argument("--target-frr", type=float, default=0.03, help="--dataset: false-reject rate the threshold is fitted at")
    p.add_argument("--out", required=True, help="folder for roc.png")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def _folder_images(folder: Path) -> list[np.ndarray]:
    import numpy as np

    from PIL import Image

    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: missing (--images needs seam/ and clean/ subfolders)")
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.iterdir()) if p.suffix.lower() in _EXTS]


def _plot(seam: np.ndarray, clean: np.ndarray, threshold: float, path: Path) -> None:
    import numpy as np
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from streetsynth.generators.seam_calibration import roc_table

    arr = np.array(roc_table(seam, clean))
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(arr[:, 1], 1 - arr[:, 2], marker=".", label=f"seam gate (threshold {threshold:.2f})")
    ax.set_xlabel("false-accept rate (seams passed)")
    ax.set_ylabel("clean images passed")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"ROC plot: {path}")


def _images(args: argparse.Namespace) -> None:
    import numpy as np
    from streetsynth.generators.seam import SeamGate
    from streetsynth.generators.seam_calibration import roc_table, threshold_for_far
    from streetsynth.generators.seam_family import edge_mask

    gate = SeamGate()
    seam_imgs, clean_imgs = _folder_images(Path(args.images) / "seam"), _folder_images(Path(args.images) / "clean")
    seam, clean = (np.array([gate.score(i, edge_mask(i.shape, round(i.shape[1] * args.edge_fraction))) for i in imgs])
                   for imgs in (seam_imgs, clean_imgs))
    table = roc_table(seam, clean)
    print(f"{'threshold':>10} {'false-accept':>13} {'false-reject':>13}")
    for t, far, frr in table[::max(1, len(table) // 25)]:
        print(f"{t:10.3f} {far:13.3f} {frr:13.3f}")
    t, far, frr = threshold_for_far(seam, clean, args.target_far)
    print(f"threshold for false-accept <= {args.target_far}: {t:.3f} (false-accept {far:.3f}, false-reject {frr:.3f}; "
          f"{len(seam)} seam / {len(clean)} clean images; the default threshold is {gate.threshold})")
    _plot(seam, clean, t, Path(args.out) / "roc.png")


def _dataset(args: argparse.Namespace) -> None:
    import numpy as np
    from streetsynth.codec import to_rgb
    from streetsynth.generators.seam_calibration import calibrate_scenes
    from streetsynth.generators.seam_family import GOOD_KINDS, SEAM_KINDS
    from streetsynth.repo import load_split

    rows = load_split(args.dataset, args.config, args.split)
    scenes = [to_rgb(r["image"], r["id"]) for r in rows]
    sizes = {s.shape for s in scenes}
    if len(scenes) < 3 or len(sizes) != 1:
        raise ValueError(f"{args.dataset}: --dataset needs at least 3 images of one size (found {len(scenes)}, sizes {sizes})")
    edge = round(scenes[0].shape[1] * args.edge_fraction)
    r = calibrate_scenes(scenes, edge, target_fr=args.target_frr)
    print(f"{len(scenes)} scenes, edge at x={edge}; held-out rate per kind (each kind left out of the fit):")
    for kind, rate in r["held_out"].items():
        what = "false accept" if kind in SEAM_KINDS else "false reject" if kind in GOOD_KINDS else "overall"
        print(f"  {kind:<14} {what:<13} {rate:.3f}")
    print(f"fitted on every good kind: threshold {r['threshold']:.3f}, cue scales "
          + ", ".join(f"{s:.3f}" for s in r["scales"]))
    seam = np.concatenate([r["scores"][k] for k in SEAM_KINDS])
    clean = np.concatenate([r["scores"][k] for k in GOOD_KINDS])
    _plot(seam, clean, r["threshold"], Path(args.out) / "roc.png")


def run(args: argparse.Namespace) -> int:
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (_images if args.images else _dataset)(args)
    return 0
