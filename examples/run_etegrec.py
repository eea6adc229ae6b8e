"""ETEGRec on LLaMA, end to end: item embeddings -> RQ-VAE -> alternating training -> fine-tuning -> test.

With no arguments it runs the embedded default on CPU in under ten minutes: a generated dataset
(1,000 users, 300 items), a small random-init LLaMA, SASRec item embeddings and a small RQ-VAE.

Real job (GPU), e.g.:
    python examples/run_etegrec.py --model_name_or_path /path/to/Llama-2-7b-hf \\
        --dataset_dir ../shared/data/amazon-beauty --item_embeddings item_emb.npy --rqvae_path rqvae/ \\
        --bf16 --optim adamw_bnb_8bit --per_device_train_batch_size 32 --output_dir outputs/beauty-7b
Many GPUs: ``accelerate launch examples/run_etegrec.py ...`` (no code change).
``python examples/run_etegrec.py --help`` lists every flag. The recipe itself is library code:
:mod:`hf_genrec.recipes.etegrec`, also run by ``hf-genrec train etegrec``.
"""

import sys

from hf_genrec.cli.main import cli

if __name__ == "__main__":
    cli(["train", "etegrec", *sys.argv[1:]])
