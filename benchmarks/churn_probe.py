"""How many items does plain RQ-VAE training re-code, per "tokenizer epoch"?

ETEGRec's tokenizer epochs train the RQ-VAE for one pass over the recommender's batches, then
re-assign every item's codes. This probe isolates the tokenizer: from a pre-trained RQ-VAE (e.g. the
one ``beauty.py`` keeps), it runs ``--steps`` AdamW steps on the VQ loss (reconstruction +
commitment, no SIA/PSA) over random batches' unique items, then reports the share of items whose
3-code prefix moved, per level, for several learning rates and re-coding margins
(``recode_margin``); then again from the same RQ-VAE trained
on at ``--converge_lr`` (to tell a not-yet-converged tokenizer apart from Adam's steady-state walk).

    python benchmarks/churn_probe.py --out outputs/beauty-cpu --json benchmarks/results/churn-beauty-cpu.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os

import numpy as np
import torch

from hf_genrec.models.rqvae import RQVAEModel


def train(model: RQVAEModel, emb: torch.Tensor, lr: float, steps: int, batch: int, weight_decay: float) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    for _ in range(steps):
        loss = model(emb[torch.randint(0, emb.shape[0], (batch,)).unique()]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return float(model(emb).loss)


def churn(before: torch.Tensor, after: torch.Tensor) -> dict[str, float]:
    moved = before != after
    return {"prefix": float(moved.any(1).float().mean())} | {
        f"level_{level}": float(moved[:, level].float().mean()) for level in range(moved.shape[1])
    }


def probe(model: RQVAEModel, emb: torch.Tensor, a) -> dict[str, dict]:
    codes = model.get_prefix_codes(emb)
    out = {}
    for lr in a.lrs:
        trained = copy.deepcopy(model)
        loss = train(trained, emb, lr, a.steps, a.batch, a.weight_decay)
        for m in a.margins:
            key = f"lr {lr:g}, margin {m:g}"
            out[key] = {"loss_after": loss} | churn(codes, trained.get_prefix_codes(emb, previous=codes, margin=m))
            print(f"  {key}: loss {loss:.4f}, prefix moved for {100 * out[key]['prefix']:.1f}% of items", flush=True)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="outputs/beauty-cpu", help="a beauty.py output folder (item_emb.npy, rqvae/)")
    p.add_argument("--steps", type=int, default=514, help="steps of one tokenizer epoch (Beauty: 131,413 rows / 256)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--weight_decay", type=float, default=0.05)
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 1e-5])
    p.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.05, 0.2],
                   help="re-coding hysteresis (recode_margin): keep a previous code within (1 + m) x the nearest distance")
    p.add_argument("--converge_epochs", type=int, default=6, help="extra tokenizer epochs at --converge_lr first")
    p.add_argument("--converge_lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    torch.manual_seed(a.seed)
    emb = torch.from_numpy(np.load(os.path.join(a.out, "item_emb.npy"))).float()
    model = RQVAEModel.from_pretrained(os.path.join(a.out, "rqvae")).eval()
    with torch.no_grad():
        report = {"items": emb.shape[0], "steps": a.steps, "batch": a.batch, "kept_loss": float(model(emb).loss)}
    print(f"kept RQ-VAE (loss {report['kept_loss']:.4f}):")
    report["from_kept"] = probe(model, emb, a)
    losses = [train(model, emb, a.converge_lr, a.steps, a.batch, a.weight_decay) for _ in range(a.converge_epochs)]
    report["converge_losses"] = losses
    print(f"after {a.converge_epochs} more epochs at lr {a.converge_lr:g} (losses {', '.join(f'{x:.4f}' for x in losses)}):")
    report["from_converged"] = probe(model, emb, a)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
