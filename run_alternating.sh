#!/usr/bin/env bash
# The whole ETEGRec recipe for one dataset, one `hf-genrec` step at a time:
#   split -> item embeddings (SASRec) -> RQ-VAE pre-training -> alternating training -> fine-tuning -> test.
# Usage: bash run_alternating.sh [DATA_DIR] [OUT_DIR] [BACKBONE] [extra `hf-genrec train etegrec` flags...]
#   DATA_DIR  interaction file or folder        (default ../shared/data/amazon-beauty)
#   OUT_DIR   where everything is written       (default outputs/<dataset name>)
#   BACKBONE  local LLaMA checkpoint, or "small" for a random-init LLaMA (default small)
# Environment knobs: SASREC_RECIPE (reference; or basic), SASREC_HIDDEN (64), SASREC_EPOCHS (the recipe's: 100 / 30),
#   RQVAE_EPOCHS (500), HIDDEN (256), LAYERS (4), HEADS (4), EPOCHS (20), BATCH (256), LR (1e-3).
set -euo pipefail

DATA_DIR=${1:-../shared/data/amazon-beauty}
OUT_DIR=${2:-outputs/$(basename "${DATA_DIR%/}")}
BACKBONE=${3:-small}
shift $(( $# < 3 ? $# : 3 ))

step() { echo; echo "=== $* ==="; }
fail() { echo "run_alternating.sh: step failed: $1" >&2; exit 1; }
hf_genrec() { python -m hf_genrec "$@"; }  # the `hf-genrec` command, also without the console script on PATH
mkdir -p "$OUT_DIR"

step "1/4 leave-one-out split of $DATA_DIR"
hf_genrec prepare --input "$DATA_DIR" --output_dir "$OUT_DIR/data" || fail "data split"

step "2/4 item embeddings (SASRec on the train split)"
if [ ! -f "$OUT_DIR/item_emb.npy" ]; then
  hf_genrec embeddings --data_dir "$OUT_DIR/data" --sources collab \
    --output "$OUT_DIR/item_emb.npy" --sasrec_recipe "${SASREC_RECIPE:-reference}" \
    --sasrec_hidden_size "${SASREC_HIDDEN:-64}" ${SASREC_EPOCHS:+--sasrec_epochs "$SASREC_EPOCHS"} || fail "item embeddings"
fi

step "3/4 RQ-VAE pre-training (keeps the lowest collision rate)"
if [ ! -f "$OUT_DIR/rqvae/config.json" ]; then
  hf_genrec pretrain-rqvae --embeddings "$OUT_DIR/item_emb.npy" \
    --output_dir "$OUT_DIR/rqvae" --rqvae_epochs "${RQVAE_EPOCHS:-500}" || fail "RQ-VAE pre-training"
fi

step "4/4 alternating training, fine-tuning, test"
BACKBONE_ARGS=(--hidden_size "${HIDDEN:-256}" --num_hidden_layers "${LAYERS:-4}" --num_attention_heads "${HEADS:-4}")
[ "$BACKBONE" != "small" ] && BACKBONE_ARGS=(--model_name_or_path "$BACKBONE")
hf_genrec train etegrec --dataset_dir "$OUT_DIR/data" --item_embeddings "$OUT_DIR/item_emb.npy" \
  --rqvae_path "$OUT_DIR/rqvae" "${BACKBONE_ARGS[@]}" --output_dir "$OUT_DIR/etegrec" \
  --num_train_epochs "${EPOCHS:-20}" --per_device_train_batch_size "${BATCH:-256}" \
  --learning_rate "${LR:-1e-3}" "$@" || fail "ETEGRec training"

echo; echo "metrics: $OUT_DIR/etegrec/test_metrics.json"
