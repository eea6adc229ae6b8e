#!/usr/bin/env bash
# Prepare what a lent GPU machine (python 3.12, no network) lacks, in git-ignored folders that a
# device call carries: .whl/ (bitsandbytes, datasets, evaluate and their missing needs) and
# outputs/gpu-data/amazon-beauty (../shared does not travel). Run once, here, from the repo root.
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
du -sh .whl outputs/gpu-data
