"""``streetsynth seam-calibrate``: every seam-gate method's ROC on the same images, and its threshold."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

_EXTS = {".png", ".jpg", ".jpeg", ".webp"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("seam-calibrate", help="ROC of every seam-gate method and its threshold for a false-accept rate",
                       description="Score images with seams and clean ones, print the ROC table and the "
                       "threshold whose false-accept rate (seams let through) is at most --target-far, and "
                       "write roc.png. Images: --images DIR with subfolders seam/ and clean/ (the seam edge "
                       "at --edge-fraction of the width); or --dataset REPO: seams are planted into its images.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder with seam/ and clean/ subfolders")
    src.add_argument("--dataset", help="a streetsynth repo; clean = its images, seam = them with planted steps")
    p.add_argument("--config", default="stitched", help="config of --dataset")
    p.add_argument("--split", default="train", help="split of --dataset")
    p.add_argument("--strength", type=float, default=16.0, help="gray-level step planted for --dataset")
    p.add_argument("--edge-fraction", type=float, default=0.7, help="mask edge position as a share of the width")
    p.add_argument("--target-far", type=float, default=0.05, help="highest acceptable false-accept rate")
    p.add_argument("--out", required=True, help="folder for roc.png")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=run)


def _folder_images(folder: Path) -> list[np.ndarray]:
    import numpy as np
    from PIL import Image

    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: missing (--images needs seam/ and clean/ subfolders)")
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.iterdir()) if p.suffix.lower() in _EXTS]


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from streetsynth.generators.seam import calibrate, plant_step

    if args.images:
        seam_imgs, clean_imgs = _folder_images(Path(args.images) / "seam"), _folder_images(Path(args.images) / "clean")
    else:
        from streetsynth.codec import to_rgb
        from streetsynth.repo import load_split

        clean_imgs = [to_rgb(r["image"], r["id"]) for r in load_split(args.dataset, args.config, args.split)]
        signs = np.random.default_rng(0).choice([-1.0, 1.0], len(clean_imgs))
        seam_imgs = [plant_step(i, int(round(i.shape[1] * args.edge_fraction)), s * args.strength)
                     for i, s in zip(clean_imgs, signs)]
    results = calibrate(seam_imgs, clean_imgs, args.edge_fraction, args.target_far)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for method, r in results.items():
        table = r["roc"]
        print(f"method {method}")
        print(f"{'threshold':>10} {'false-accept':>13} {'false-reject':>13}")
        for t, far, frr in table[::max(1, len(table) // 25)]:
            print(f"{t:10.3f} {far:13.3f} {frr:13.3f}")
        t, far, frr = r["pick"]
        print(f"{method}: threshold for false-accept <= {args.target_far}: {t:.3f} (false-accept {far:.3f}, "
              f"false-reject {frr:.3f}; {len(r['seam'])} seam / {len(r['clean'])} clean images)")
        arr = np.array(table)
        ax.plot(arr[:, 1], 1 - arr[:, 2], marker=".", label=f"{method} (threshold {t:.2f})")
        ax.scatter([far], [1 - frr], zorder=3)
    ax.set_xlabel("false-accept rate (seams passed)")
    ax.set_ylabel("clean images passed")
    ax.set_title("seam gate ROC")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=100)
    plt.close(fig)
    print(f"ROC plot: {out / 'roc.png'}")
    return 0
