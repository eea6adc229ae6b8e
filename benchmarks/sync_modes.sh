#!/usr/bin/env bash
# ETEGRec's codebook_sync modes (and recode_margin) against static codes on the embedded default (generated data), each
# with 8 recommender epochs (alternating: 16 epochs; static: 8) + 4 fine-tuning epochs, full
# determinism, two runs at a time with one thread each (a 2-core machine). Test metrics land in
# OUT/<variant>/test_metrics.json; runs already done are skipped.
#   bash benchmarks/sync_modes.sh [OUT]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/sync}
mkdir -p "$OUT"
run() {  # name, extra args
  [ -f "$OUT/$1/test_metrics.json" ] || OMP_NUM_THREADS=1 python examples/run_etegrec.py --output_dir "$OUT/$1" \
     --full_determinism true --disable_tqdm true "${@:2}" > "$OUT/$1.log" 2>&1
}
run tokenizer_to_recommender --codebook_sync tokenizer_to_recommender & run none --codebook_sync none & wait
run both --codebook_sync both & run static --alternating false --num_train_epochs 8 --rec_sia_weight 0 --rec_psa_weight 0 & wait
# Re-coding hysteresis (recode_margin, not in the official code) on the default sync mode.
run margin_0.05 --recode_margin 0.05 & run margin_0.2 --recode_margin 0.2 & wait
# Which half hurts: alternation with no SIA/PSA at all (only re-coding by the VQ-trained RQ-VAE), and
# static codes with the recommender's SIA/PSA on for its last 3 of 8 epochs (as alternation has them).
run none_no_alignment --rec_sia_weight 0 --rec_psa_weight 0 --tok_sia_weight 0 --tok_psa_weight 0 &
run static_alignment --alternating false --num_train_epochs 8 --warm_epoch 5 & wait
for v in none both tokenizer_to_recommender static margin_0.05 margin_0.2 none_no_alignment static_alignment; do
  python -c "import json,sys; m=json.load(open(sys.argv[1])); print(f'{sys.argv[2]:<26} N@10 {m[\"ndcg@10\"]:.4f}  R@10 {m[\"recall@10\"]:.4f}')" \
    "$OUT/$v/test_metrics.json" "$v"
done
