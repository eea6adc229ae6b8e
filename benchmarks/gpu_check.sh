#!/usr/bin/env bash
# The GPU checks of one lent-device session (15 minutes of device time, machine start included), in
# two calls (speed: under 5 minutes, beauty: under 7; the beauty stages stop on wall-clock budgets). Prepare once, here (no device time):
#   bash benchmarks/gpu_wheels.sh ../shared/data/amazon-beauty outputs/beauty-cpu
# (wheels the GPU image lacks, a copy of the data, and outputs/beauty-gpu seeded with the CPU-made
# split, SASRec embeddings and pre-trained RQ-VAE, so the GPU spends its minutes on the variant).
# Then, through the device tool:
#   call 1 (carry .whl):                                   bash benchmarks/gpu_check.sh speed
#   call 2 (carry .whl, outputs/gpu-data, outputs/beauty-gpu): bash benchmarks/gpu_check.sh beauty
# Figures come back in $OUT (json + logs); commit them under benchmarks/results/ with the device name.
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 || exit 1
OUT=${OUT:-outputs/gpu-check}
mkdir -p "$OUT"
nvidia-smi -L | tee "$OUT/device.txt"
case "${1:-}" in
  speed)
    # 7B generate(): ours vs the design document's; then a 7B LoRA training step (bf16, 8-bit AdamW,
    # checkpointing) with the memory estimate printed beside the measured peak.
    timeout 150 python3 benchmarks/generate_bench.py --shape 7b --num_users 256 --design_users 4 --chunk_size 8 \
        --json "$OUT/generate_7b.json" 2>&1 | tee "$OUT/generate.log" | tail -40
    timeout 120 python3 benchmarks/train_bench.py --shape 7b --batch 32 --steps 20 --bf16 --optim adamw_bnb_8bit \
        --checkpointing --json "$OUT/train_7b.json" 2>&1 | tee "$OUT/train.log" | tail -40
    ;;
  beauty)
    timeout 400 python3 benchmarks/beauty.py --preset gpu --data outputs/gpu-data/amazon-beauty \
        --out outputs/beauty-gpu --variants etegrec 2>&1 | grep -v "it/s\]" | tee "$OUT/beauty.log" | tail -60
    cp outputs/beauty-gpu/beauty_metrics.json "$OUT/" 2>/dev/null
    cp outputs/beauty-gpu/etegrec/test_metrics.json "$OUT/etegrec_test_metrics.json" 2>/dev/null
    ;;
  *)
    echo "usage: bash benchmarks/gpu_check.sh speed|beauty" >&2
    exit 2
    ;;
esac
