#!/usr/bin/env bash
# GPU figures for training (issue 22 item 7), in at most 8 minutes on one GPU:
#   1. Mask R-CNN v2 training images/s at 512x1024, bf16, batch 4, beside the data path's images/s
#      (benchmarks/train.py: both measured in the same run, on the same rows);
#   2. the positive control on the sample at full speed: real-only, its 2x-steps control, oracle and
#      noise at real fraction 1/32 (one train segment), 5 seeds (the same command benchmarks/RESULTS.md records on 2 CPU cores).
# Run from the repository root. Without network: install from the carried wheels first,
#   pip install --no-index --find-links .whl diffusers datasets segment-anything pycocotools google-crc32c
#   pip install --no-deps -e .
# (.whl is git-ignored; fill it on a machine with network with
#   pip download -d .whl diffusers datasets segment-anything pycocotools google-crc32c)
set -euo pipefail
PY=${PY:-python}
OUT=${OUT:-${TMPDIR:-/tmp}/streetsynth-gpu}
export HF_HUB_OFFLINE=1
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

echo "== 1. Mask R-CNN v2 at 512x1024, bf16, batch 4: data path vs training step (images/s) =="
timeout 240 "$PY" benchmarks/train.py --arch v2 --height 512 --width 1024 --min-size 512 --max-size 1024 \
    --batch-size 4 --mixed-precision bf16 --rows 64 --steps 10

echo "== 2. the control on the sample at full speed =="
start=$(date +%s)
timeout 60 streetsynth make-sample --out "$OUT/sample" --segments 44 --validation-segments 12 --frames 2 --size 192x288 --panoptic-every 1
timeout 60 streetsynth build --source "$OUT/sample" --out "$OUT/real" --size 160x384
timeout 240 streetsynth train compare --real "$OUT/real" --arch tiny --control oracle,noise --real-fraction 0.03125 \
    --steps 200 --seeds 5 --no-progress --out "$OUT/control"
echo "control wall time: $(( $(date +%s) - start )) s"
