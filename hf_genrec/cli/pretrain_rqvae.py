"""Pre-train the RQ-VAE item tokenizer on an item-embedding .npy; keeps the lowest-collision checkpoint.

    hf-genrec pretrain-rqvae --embeddings outputs/beauty/item_emb.npy --output_dir outputs/beauty/rqvae

The shape flags are the recipes' (``--codebook_size``, ``--rqvae_hidden_dims``, ...), with
:class:`~hf_genrec.RQVAEConfig`'s defaults. Prints the code statistics of the kept checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch
from transformers import HfArgumentParser

from ..embeddings import load_item_embeddings
from ..recipes.arguments import RQVAEShapeArguments
from ..training.rqvae_pretraining import pretrain_rqvae


@dataclass
class PretrainRQVAEArguments(RQVAEShapeArguments):
    embeddings: str = field(default=None, metadata={"required": True, "help": "[N, d] float .npy, row i = dense item i + 1"})
    output_dir: str = field(default=None, metadata={"required": True, "help": "where the kept checkpoint is written"})
    batch_size: int = 1024
    learning_rate: float = 1e-3
    eval_every: int = field(default=10, metadata={"help": "epochs between collision checks (a check may keep the model)"})
    seed: int = 42
    use_cpu: bool = False


def main(argv: list[str] | None = None) -> dict:
    parser = HfArgumentParser(PretrainRQVAEArguments, prog="hf-genrec pretrain-rqvae", description=__doc__)
    (a,) = parser.parse_args_into_dataclasses(args=argv)
    emb = torch.from_numpy(load_item_embeddings(a.embeddings)).float()
    model, stats = pretrain_rqvae(
        emb,
        a.output_dir,
        a.rqvae_config(emb.shape[1]),
        num_train_epochs=a.rqvae_epochs,
        batch_size=a.batch_size,
        learning_rate=a.learning_rate,
        eval_every=a.eval_every,
        seed=a.seed,
        use_cpu=a.use_cpu or not torch.cuda.is_available(),
    )
    codes = model.get_codes(emb)
    stats["distinct_ids"] = int(torch.unique(codes, dim=0).shape[0])
    stats["num_items"] = int(emb.shape[0])
    print(json.dumps(stats, indent=2))
    return stats
