"""Generative, dense and hybrid ranking of a trained ETEGRec model, the weight chosen on validation.

    python benchmarks/etegrec_hybrid.py --checkpoint outputs/beauty-v2/etegrec/final \\
        --item_embeddings outputs/beauty-v2/item_emb.npy --data outputs/beauty-v2/data --max_history 20

ETEGRec's PSA head (``dec_adapter``) is trained to point at the RQ-VAE reconstruction of the next
item's semantic embedding. This scores items three ways, seen items excluded (``--all_items``:
ranked too): "generative" (constrained beam search over the codes, the model's own ranking),
"dense" (cosine between the PSA head's output and every item's reconstruction, a full ranking) and
"hybrid" (the beam's candidates re-ranked by code log-likelihood + w x cosine, LIGER-style). The
weight w is chosen by validation NDCG@10 on ``--val_users`` users; the test split is ranked in full
with every mode. Prints a table and writes ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

import hf_genrec  # noqa: F401  (registers the Auto classes)
from hf_genrec import RQVAEModel
from hf_genrec.data import load_genrec_dataset
from hf_genrec.metrics import ranking_metrics_from_ranks, ranks_from_scores, target_ranks
from hf_genrec.models.recommender import excluded_items_mask
from hf_genrec.utils import left_pad

KS = (5, 10, 20)


@torch.no_grad()
def ranks_by_mode(model, rows, weights, beams: int, exclude: bool, batch: int = 256) -> dict[str, torch.Tensor]:
    """0-based target ranks ``[U]`` under each mode (a target the beam did not return is a miss)."""
    out = {"generative": [], "dense": [], **{f"hybrid_{w:g}": [] for w in weights}}
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        full = left_pad([list(h) for h in chunk["history"]], 0)
        targets = torch.tensor(chunk["target"])
        history = full[:, -model.config.max_history :]
        inputs = model.code_inputs(history)
        gen = model.generate(inputs["input_ids"], inputs["attention_mask"], num_beams=beams, num_return_sequences=beams,
                             exclude_items=full if exclude else None)
        dense = model.dense_scores(history)
        mask = excluded_items_mask(full, model.config.num_items) if exclude else None
        if mask is not None:
            dense = dense.masked_fill(mask, float("-inf"))
        out["generative"].append(target_ranks(gen.item_ids, targets))
        out["dense"].append(ranks_from_scores(dense, targets))
        cosine = dense.gather(1, gen.item_ids.clamp_min(0))
        for w in weights:
            score = torch.where(gen.item_ids > 0, gen.scores + w * cosine, float("-inf"))
            order = score.argsort(1, descending=True)
            out[f"hybrid_{w:g}"].append(target_ranks(gen.item_ids.gather(1, order), targets))
    return {m: torch.cat(r) for m, r in out.items()}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="an ETEGRec final/ folder (with item_tokenizer/)")
    p.add_argument("--item_embeddings", required=True, help="the [N, d] .npy the model's codes came from")
    p.add_argument("--data", required=True, help="the prepared split (save_to_disk folder)")
    p.add_argument("--weights", default="1,2,5,10,20")
    p.add_argument("--beams", type=int, default=20)
    p.add_argument("--val_users", type=int, default=4000)
    p.add_argument("--all_items", action="store_true", help="rank the history's items too")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    torch.set_grad_enabled(False)
    t0 = time.time()
    model = hf_genrec.LlamaRecForCodeGeneration.from_pretrained(a.checkpoint).eval()
    tokenizer = RQVAEModel.from_pretrained(os.path.join(a.checkpoint, "item_tokenizer")).eval()
    emb = torch.from_numpy(np.load(a.item_embeddings)).float()
    model.set_item_dense_vectors(tokenizer(emb).reconstruction)  # the PSA target of every item
    dsd = load_genrec_dataset(a.data)
    weights = [float(w) for w in a.weights.split(",")]
    val = dsd["validation"]
    if a.val_users and a.val_users < len(val):
        val = val.shuffle(seed=a.seed).select(range(a.val_users))
    exclude = not a.all_items
    val_ranks = ranks_by_mode(model, val, weights, a.beams, exclude)
    validation = {m: ranking_metrics_from_ranks(r, KS) for m, r in val_ranks.items()}
    best = max((m for m in validation if m.startswith("hybrid_")), key=lambda m: validation[m]["ndcg@10"])
    test = {m: ranking_metrics_from_ranks(r, KS) for m, r in ranks_by_mode(model, dsd["test"], weights, a.beams, exclude).items()}
    report = {
        "checkpoint": a.checkpoint,
        "protocol": "all_items" if a.all_items else "exclude_seen",
        "beams": a.beams,
        "validation_users": len(val),
        "validation": validation,
        "test": test,
        "hybrid_weight_chosen_on_validation": float(best.removeprefix("hybrid_")),
        "test_of_chosen_hybrid": test[best],
        "minutes": (time.time() - t0) / 60,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
    }
    print(f"{'mode':<14}{'val N@10':>10}{'test R@10':>11}{'test N@10':>11}")
    for m in test:
        print(f"{m:<14}{validation[m]['ndcg@10']:>10.4f}{test[m]['recall@10']:>11.4f}{test[m]['ndcg@10']:>11.4f}"
              + ("   <- chosen on validation" if m == best else ""))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
