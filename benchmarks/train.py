"""Training throughput, measured side by side in one run.

1. Our data path (Arrow rows -> augmented tensors through DetectionSources + MixSampler) in
   images/s, beside the detector's training rate in images/s: above 1x the data keeps up.
2. Our Mask R-CNN step (streetsynth.training.maskrcnn.training_step under accelerate, with the
   non-finite check and the per-step derived seed) beside torchvision's plain training step
   (forward, sum of losses, backward, SGD step) on the same tensors and the same initial weights.

3. Evaluation memory at two validation sizes (``--eval-images 20,200``): peak host memory
   (tracemalloc) and, on a GPU, peak CUDA memory of the streamed ``evaluate_model``, beside what
   keeping one float32 mask per image would add.

    python benchmarks/train.py                      # tiny detector, 64 rows of 128x256, CPU
    python benchmarks/train.py --arch v2 --height 512 --width 1024 --min-size 512 --max-size 1024
    python benchmarks/train.py --steps 0 --eval-images 20,200 --eval-model ground-truth   # CPU memory only
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from factories_train import make_real_repo  # noqa: E402

from streetsynth.models.detector import build_maskrcnn  # noqa: E402
from streetsynth.instances import Instances  # noqa: E402
from streetsynth.repo import load_split  # noqa: E402
from streetsynth.schema import CLASS_NAMES  # noqa: E402
from streetsynth.training.data import DetectionSources, MixSampler, collate  # noqa: E402
from streetsynth.training.evaluate import evaluate_model  # noqa: E402
from streetsynth.training.maskrcnn import training_step  # noqa: E402


def data_rate(rows, n: int, augment: str, batch_size: int) -> tuple[float, list]:
    """Images/s of rows -> augmented tensors; returns the rate and the first batch."""
    sources = DetectionSources({"real": rows}, augment)
    sampler = MixSampler(sources.sizes(), {"real": 1.0}, n, seed=0)
    loader = torch.utils.data.DataLoader(sources, batch_size=batch_size, sampler=sampler, collate_fn=collate)
    first = None
    t = time.perf_counter()
    for batch in loader:
        first = first or batch
    return n / (time.perf_counter() - t), first


def step_times(model, images, targets, steps: int, mixed_precision: str = "no") -> tuple[float, float]:
    """Seconds per step: ours (training_step under accelerate) and plain torchvision, interleaved,
    both under the same autocast (``bf16``/``fp16``) where asked."""
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed_precision)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision)
    ours = copy.deepcopy(model).train()
    plain = copy.deepcopy(model).train().to(accelerator.device)
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9)
    opt_plain = torch.optim.SGD(plain.parameters(), lr=0.01, momentum=0.9)
    ours, opt_ours = accelerator.prepare(ours, opt_ours)
    images = [i.to(accelerator.device) for i in images]
    targets = [{k: v.to(accelerator.device) for k, v in t.items()} for t in targets]

    def run_ours(step):
        torch.manual_seed(step)
        training_step(ours, images, targets, opt_ours, accelerator, step)

    def run_plain(step):
        torch.manual_seed(step)
        with torch.autocast(accelerator.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = sum(plain(images, targets).values())
        opt_plain.zero_grad()
        loss.backward()
        opt_plain.step()

    def sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    run_ours(0)
    run_plain(0)
    t_ours = t_plain = 0.0
    for step in range(1, steps + 1):
        sync()
        t = time.perf_counter()
        run_ours(step)
        sync()
        t_ours += time.perf_counter() - t
        t = time.perf_counter()
        run_plain(step)
        sync()
        t_plain += time.perf_counter() - t
    return t_ours / steps, t_plain / steps


class GroundTruthModel(torch.nn.Module):
    """Answers each image, in order, with its row's objects as soft masks (a detector always right)."""

    def __init__(self, rows):
        super().__init__()
        self.rows, self.next = rows, 0

    def forward(self, images):
        outs = []
        for img in images:
            inst = Instances.from_row(self.rows[self.next])
            self.next += 1
            outs.append({"boxes": torch.from_numpy(inst.boxes), "labels": torch.from_numpy(inst.classes + 1),
                         "scores": torch.ones(len(inst)),
                         "masks": torch.from_numpy(inst.masks.astype("float32"))[:, None].to(img.device)})
        return outs


def eval_memory(rows, model, batch_size: int) -> tuple[float, float | None, dict]:
    """Peak host MiB (tracemalloc) and peak CUDA MiB (None on the CPU) of evaluate_model on ``rows``."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    tracemalloc.start()
    try:
        metrics = evaluate_model(model, rows, batch_size=batch_size, device=device, progress=False)
        host = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    cuda = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    return host, cuda, metrics


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=64, help="rows in the made-up repo (default 64)")
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--arch", default="tiny", help="detector architecture (default tiny)")
    ap.add_argument("--min-size", type=int, default=128)
    ap.add_argument("--max-size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="timed training steps of each kind (default 5)")
    ap.add_argument("--augment", default="hflip_scale")
    ap.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"), default="no",
                    help="autocast for both training steps (bf16 on a GPU for the issue-14 figures)")
    ap.add_argument("--eval-images", default="", help="validation sizes to measure evaluation memory at, e.g. 20,200")
    ap.add_argument("--eval-model", choices=("detector", "ground-truth"), default="detector",
                    help="what predicts during the memory measurement: the (random) detector, or the ground "
                    "truth as soft masks (every image then yields all its masks)")
    args = ap.parse_args()
    sizes = [int(v) for v in args.eval_images.split(",") if v.strip()]

    torch.manual_seed(0)
    model = build_maskrcnn(arch=args.arch, num_classes=len(CLASS_NAMES) + 1, weights=None, weights_backbone=None,
                           min_size=args.min_size, max_size=args.max_size)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"images {args.height}x{args.width}, arch {args.arch}, batch {args.batch_size}, augment {args.augment}, "
          f"mixed precision {args.mixed_precision}, device {device}, threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_real_repo(Path(tmp) / "real", n_train=args.rows, n_val=max(sizes, default=1),
                              height=args.height, width=args.width)
        rows = load_split(repo, "stitched", "train")
        data_ips, (images, targets) = data_rate(rows, args.rows, args.augment, args.batch_size)
        val = load_split(repo, "stitched", "validation")
        one_mask = args.height * args.width * 4 / 2**20
        for n in sizes:
            sub = val.select(range(n))
            net = GroundTruthModel(sub) if args.eval_model == "ground-truth" else model.to(device)
            host, cuda, metrics = eval_memory(sub, net, args.batch_size)
            print(f"evaluation of {n:4d} images ({args.eval_model}): peak host {host:8.2f} MiB"
                  + (f", peak CUDA {cuda:8.1f} MiB" if cuda is not None else "")
                  + f"; mask AP {metrics['mask']['AP'] if metrics['mask'] else None}; keeping one float32 mask "
                  f"per image would hold {n * one_mask:.1f} MiB")
    if args.steps < 1:
        print(f"data path (rows -> augmented tensors): {data_ips:8.1f} images/s")
        return 0
    ours, plain = step_times(model.cpu(), images, targets, args.steps, args.mixed_precision)
    model_ips = args.batch_size / ours
    print(f"data path (rows -> augmented tensors): {data_ips:8.1f} images/s")
    print(f"model training rate (ours)           : {model_ips:8.1f} images/s")
    print(f"  data / model                       : {data_ips / model_ips:8.1f}x  (>1: the data keeps up)")
    print(f"training step, ours (accelerate)     : {1000 * ours:8.1f} ms")
    print(f"training step, plain torchvision     : {1000 * plain:8.1f} ms")
    print(f"  ours / plain                       : {ours / plain:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
