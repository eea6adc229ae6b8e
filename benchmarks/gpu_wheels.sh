#!/usr/bin/env bash
# Prepare what a lent GPU machine (python 3.12, no network) lacks, in git-ignored folders that a
# device call carries: .whl/ (bitsandbytes, datasets, evaluate and their missing needs),
# outputs/gpu-data/amazon-beauty (../shared does not travel) and, where earlier CPU runs left them,
# outputs/beauty-gpu's SASRec/RQ-VAE stages. Run once, here, from the repo root:
#   bash benchmarks/gpu_wheels.sh [DATA_DIR] [STAGES_DIR]
# See benchmarks/GPU.md for the calls that use them.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl outputs/gpu-data
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
    -d .whl "bitsandbytes==0.50.2" "datasets==5.2.0" "evaluate==0.4.6" "dill==0.4.1" "multiprocess==0.70.19"
data=${1:-../shared/data/amazon-beauty}
cp -r "$data" outputs/gpu-data/
# Stage outputs already computed here by `benchmarks/beauty.py --preset cpu` (the split, SASRec
# embeddings + metrics, the pre-trained RQ-VAE) spare GPU minutes: the gpu preset reuses them.
src=${2:-outputs/beauty-cpu}
if [ -f "$src/item_emb.npy" ] && [ -f "$src/rqvae/code_stats.json" ]; then
    mkdir -p outputs/beauty-gpu/rqvae
    cp -r "$src/data" outputs/beauty-gpu/
    cp "$src/item_emb.npy" "$src/sasrec_metrics.json" outputs/beauty-gpu/
    cp "$src"/rqvae/{config.json,model.safetensors,code_stats.json} outputs/beauty-gpu/rqvae/
    echo "seeded outputs/beauty-gpu from $src"
fi
du -sh .whl outputs/gpu-data outputs/beauty-gpu 2>/dev/null
