"""Build item semantic embeddings (the RQ-VAE input) for a prepared dataset.

    hf-genrec embeddings --data_dir outputs/beauty/data --sources collab --output outputs/beauty/item_emb.npy

``--sources`` takes ``collab`` (SASRec item table; also prints the SASRec baseline metrics),
``text`` (sentence-transformers over item_text.json) and/or ``.npy`` paths; several are concatenated.
"""

from __future__ import annotations

import argparse
import json
import os

from ..data import load_genrec_dataset
from ..data.item_text import ITEM_TEXT_FILE
from ..embeddings import SASREC_RECIPES, build_item_embeddings, sasrec_recipe
from ..utils.atomic import save_npy


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="hf-genrec embeddings", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data_dir", required=True)
    p.add_argument("--sources", nargs="+", default=["collab"])
    p.add_argument("--output", required=True, help="where to write the [N, d] .npy")
    p.add_argument("--text_model", default=None, help="local sentence-transformers path (default: all-MiniLM-L6-v2)")
    p.add_argument(
        "--sasrec_recipe", choices=sorted(SASREC_RECIPES), default="reference",
        help="the SASRec settings the flags below override (reference: the strongest published Beauty recipe)",
    )
    p.add_argument("--sasrec_hidden_size", type=int, default=64)
    p.add_argument("--sasrec_epochs", type=int, default=None, help="default: the recipe's")
    p.add_argument("--sasrec_batch_size", type=int, default=None, help="default: the recipe's")
    p.add_argument("--sasrec_lr", type=float, default=None, help="default: the recipe's")
    p.add_argument("--sasrec_dropout", type=float, default=None, help="default: the recipe's")
    p.add_argument("--sasrec_patience", type=int, default=None, help="default: the recipe's (reference: none)")
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args(argv)
    dsd = load_genrec_dataset(a.data_dir)
    text_path = os.path.join(a.data_dir, ITEM_TEXT_FILE)
    item_text = None
    if os.path.exists(text_path):
        with open(text_path) as f:
            item_text = json.load(f)  # keyed by original item id, as every family matches it
    out_dir = os.path.dirname(os.path.abspath(a.output))
    emb, report = build_item_embeddings(
        dsd,
        a.sources,
        out_dir,
        item_text=item_text,
        text_model=a.text_model,
        sasrec_kwargs=sasrec_recipe(
            a.sasrec_recipe,
            hidden_size=a.sasrec_hidden_size,
            num_train_epochs=a.sasrec_epochs,
            batch_size=a.sasrec_batch_size,
            learning_rate=a.sasrec_lr,
            dropout=a.sasrec_dropout,
            patience=a.sasrec_patience,
            seed=a.seed,
        ),
    )
    save_npy(a.output, emb)
    report["shape"] = list(emb.shape)
    with open(os.path.splitext(a.output)[0] + ".report.json", "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))
