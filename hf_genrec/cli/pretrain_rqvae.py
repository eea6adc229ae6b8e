"""Pre-train the RQ-VAE item tokenizer on an item-embedding .npy; keeps the lowest-collision checkpoint.

hf-genrec-pretrain-rqvae --embeddings outputs/beauty/item_emb.npy --output_dir outputs/beauty/rqvae
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from ..models.rqvae import RQVAEConfig
from ..training.rqvae_pretraining import pretrain_rqvae
from .errors import run_cli


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--embeddings", required=True)
    p.add_argument("--output_dir", required=True)
    p.add_argument("--hidden_dims", type=int, nargs="+", default=[512, 256])
    p.add_argument("--codebook_dim", type=int, default=128)
    p.add_argument("--num_levels", type=int, default=3)
    p.add_argument("--codebook_size", type=int, default=256)
    p.add_argument("--suffix_size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=500)
    p.add_argument("--batch_size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval_every", type=int, default=10)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--use_cpu", action="store_true")
    a = p.parse_args(argv)
    emb = torch.from_numpy(np.load(a.embeddings)).float()
    config = RQVAEConfig(
        semantic_dim=emb.shape[1],
        hidden_dims=a.hidden_dims,
        codebook_dim=a.codebook_dim,
        num_levels=a.num_levels,
        codebook_size=a.codebook_size,
        suffix_size=a.suffix_size,
    )
    model, stats = pretrain_rqvae(
        emb,
        a.output_dir,
        config,
        num_train_epochs=a.epochs,
        batch_size=a.batch_size,
        learning_rate=a.lr,
        eval_every=a.eval_every,
        seed=a.seed,
        use_cpu=a.use_cpu,
    )
    codes = model.get_codes(emb)
    stats["distinct_ids"] = int(torch.unique(codes, dim=0).shape[0])
    stats["num_items"] = int(emb.shape[0])
    print(json.dumps(stats, indent=2))


def cli(argv: list[str] | None = None) -> None:
    """Console entry point: user mistakes end in one line and exit status 2 (see :mod:`.errors`)."""
    run_cli(main, "hf-genrec-pretrain-rqvae", argv)


if __name__ == "__main__":
    cli()
