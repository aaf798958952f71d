"""LPIPS diversity: our embedding form against torchmetrics' pair-by-pair LPIPS, side by side in one run.

Real-size AlexNet and VGG16 backbones with random weights (nothing downloaded) and the LPIPS v0.1
linear layers torchmetrics ships. For N street-like images it prints the largest difference between
the two implementations over all pairs, and the time of all N(N-1)/2 pairs each way: torchmetrics
runs the backbone twice per pair, ``streetsynth.models.lpips`` once per image.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lpips_diversity.py --num 8 --size 128x256
    .venv/bin/python benchmarks/lpips_diversity.py --device cuda --num 64 --size 256x512
"""

from __future__ import annotations

import argparse
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    from factories_generate import street_image
    from torchmetrics.functional.image.lpips import _LPIPS

    from streetsynth.models.lpips import LPIPS, linear_file, pairwise, read_linear

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--num", type=int, default=8)
    ap.add_argument("--size", default="128x256")
    ap.add_argument("--nets", nargs="+", default=["alex", "vgg"])
    a = ap.parse_args()
    h, w = (int(v) for v in a.size.split("x"))
    rng = np.random.default_rng(0)
    images = torch.from_numpy(np.stack([street_image(rng, h, w) for _ in range(a.num)])).permute(0, 3, 1, 2)
    images = images.to(a.device)
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    pairs = list(combinations(range(a.num), 2))
    for net in a.nets:
        torch.manual_seed(0)
        ref = _LPIPS(pretrained=True, net=net, pnet_rand=True).eval().to(a.device)
        backbone = torch.nn.Sequential(*[m for k in range(1, 6) for m in getattr(ref.net, f"slice{k}")])
        ours = LPIPS(net, backbone, read_linear(linear_file(net)), net).to(a.device)
        sync()
        t = time.perf_counter()
        with torch.no_grad():
            x = images.float() / 127.5 - 1
            theirs = torch.stack([ref(x[i:i + 1], x[j:j + 1]).flatten()[0] for i, j in pairs])
        sync()
        t_ref = time.perf_counter() - t
        t = time.perf_counter()
        mine = pairwise(ours.embed(images))
        sync()
        t_ours = time.perf_counter() - t
        diff = float((mine - theirs).abs().max())
        print(f"{net}: {a.num} images {h}x{w}, {len(pairs)} pairs, mean LPIPS {float(mine.mean()):.4f}, "
              f"max |ours - torchmetrics| {diff:.2e}; torchmetrics pair by pair {t_ref:.2f} s, "
              f"embeddings {t_ours:.2f} s ({t_ref / t_ours:.1f}x)", flush=True)


if __name__ == "__main__":
    main()
