"""occlude's backends and variants side by side: seconds per sample of SD and SDXL inpainting, plain and refined.

Real-size architectures with random weights (the SD-2-inpainting and SDXL-inpainting pipelines of
``benchmarks/families.py``; nothing downloaded), each at its own working size (512 and 1024) unless
``--size`` says otherwise. The refined variant runs the model twice per sample (the object, then the
occluder), so its cost should be about twice the plain one's.

    .venv/bin/python benchmarks/occlude_variants.py --device cuda --steps 30 --num 4
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/occlude_variants.py --tiny --num 2   # smoke run on a CPU
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    from factories_generate import make_real_repo

    from streetsynth.generators.occlude import OccludeConfig, run_occlude
    from streetsynth.models.inpaint import build_tiny, injected

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--num", type=int, default=4)
    ap.add_argument("--size", type=int, default=None, help="working size of both models (default: their own)")
    ap.add_argument("--tiny", action="store_true", help="tiny random pipelines at 64 px, 2 steps: a smoke run")
    a = ap.parse_args()
    dtype = torch.float16 if a.device.startswith("cuda") else torch.float32
    tmp = Path(tempfile.mkdtemp())
    real = make_real_repo(tmp / "real", rows=2 * a.num, height=256, width=512)
    steps, size = (2, 64) if a.tiny else (a.steps, a.size)
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    for family in ("sd-inpaint", "sdxl-inpaint"):
        if a.tiny:
            model = build_tiny(family)
        else:
            import families

            model = injected(families.BUILDERS[family]().to(a.device, dtype), f"random/{family}", "random-weights")
        model.pipeline.set_progress_bar_config(disable=True)
        for refine in ("off", "on"):
            def run(num, tag):
                return run_occlude(OccludeConfig(real=str(real), out=str(tmp / f"{family}-{refine}-{tag}"),
                                                 classes=("pedestrian", "vehicle"), min_size=4, num=num, size=size,
                                                 steps=steps, refine=refine, device=a.device, pipeline=model))

            run(1, "warm")
            sync()
            t = time.perf_counter()
            res = run(a.num, "timed")
            sync()
            n = res.counts["accepted"]
            print(f"occlude {family:13s} {'refined' if refine == 'on' else 'plain':8s} "
                  f"{(time.perf_counter() - t) / n:7.3f} s/sample ({n} samples)", flush=True)
        del model


if __name__ == "__main__":
    main()
