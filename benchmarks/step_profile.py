"""Where a CPU training step of ETEGRec goes: the joint step (recommender + RQ-VAE alignment losses +
AdamW) against the bare backbone's forward + backward on the same batches, random vs length-grouped
batches, fp32 vs bf16 autocast; plus the time of a Beauty epoch and of a full validation pass.

    python benchmarks/step_profile.py --out outputs/beauty-cpu         # after beauty.py --preset cpu --variants ""

Uses the split, SASRec embeddings and RQ-VAE that ``beauty.py`` left in ``--out`` (random ones of
the same shapes when only the split is there) and the preset's model shape (random init: speed does
not depend on the weights). Time it on a quiet
machine: every figure is a ratio or a rate from this one process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from beauty import PRESETS  # the script's folder is on sys.path

from hf_genrec.data import DataCollatorForRecommendation, load_genrec_dataset
from hf_genrec.embeddings import SASREC_RECIPES
from hf_genrec.models.backbone import small_llama_config
from hf_genrec.models.llamarec.configuration_llamarec import DEFAULT_BACKBONE
from hf_genrec.models.rqvae import RQVAEConfig, RQVAEModel
from hf_genrec.recipes.stages import build_recommender
from hf_genrec.training import ETEGRecJointModel


def batches(dataset, batch: int, count: int, grouped: bool, max_history: int = 50, seed: int = 0) -> list[dict]:
    """``count`` batches of ``batch`` training rows: random, or grouped by history length the way the
    Trainer's length sampler does (megabatches of 50 batches, sorted by length)."""
    rng = np.random.default_rng(seed)
    collate = DataCollatorForRecommendation(max_history)
    order = rng.permutation(len(dataset))[: batch * count * (50 if grouped else 1)]
    if grouped:
        lengths = np.minimum(np.asarray(dataset["length"]), max_history)[order]
        mega = [order[i : i + 50 * batch] for i in range(0, len(order), 50 * batch)]
        starts = range(0, len(order), 50 * batch)
        order = np.concatenate([m[np.argsort(-lengths[s : s + len(m)], kind="stable")] for s, m in zip(starts, mega)])
        picks = rng.choice(len(order) // batch, size=count, replace=False)
        chunks = [order[p * batch : (p + 1) * batch] for p in picks]
    else:
        chunks = [order[i * batch : (i + 1) * batch] for i in range(count)]
    return [collate([dataset[int(j)] for j in c]) for c in chunks]


def timed(fn, items) -> float:
    fn(items[0])  # warm-up
    t0 = time.perf_counter()
    for x in items[1:]:
        fn(x)
    return (time.perf_counter() - t0) / (len(items) - 1)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="outputs/beauty-cpu")
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--eval_users", type=int, default=512)
    p.add_argument("--hidden", type=int, default=None, help="override the preset's width")
    p.add_argument("--layers", type=int, default=None, help="override the preset's depth")
    p.add_argument("--max_history", type=int, default=50, help="history items kept per row")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    cfg = dict(PRESETS[a.preset])
    cfg.update({k: v for k, v in (("hidden", a.hidden), ("layers", a.layers)) if v})
    torch.manual_seed(0)
    dsd = load_genrec_dataset(f"{a.out}/data")
    if os.path.exists(f"{a.out}/item_emb.npy") and os.path.exists(f"{a.out}/rqvae/config.json"):
        emb = torch.from_numpy(np.load(f"{a.out}/item_emb.npy"))
        tok = RQVAEModel.from_pretrained(f"{a.out}/rqvae")
    else:  # speed does not depend on the weights: random 64-d embeddings and a fresh RQ-VAE of the cpu preset's shape
        emb = torch.randn(dsd.num_items, SASREC_RECIPES["reference"]["hidden_size"])
        tok = RQVAEModel(RQVAEConfig(semantic_dim=emb.shape[1]))
        tok.kmeans_init(emb)
    backbone = small_llama_config(cfg["hidden"], cfg["layers"], cfg["heads"], DEFAULT_BACKBONE["vocab_size"])
    rec = build_recommender(tok, emb, backbone_config=backbone)
    joint = ETEGRecJointModel(rec, tok, emb).train()
    params = [p for p in joint.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    report: dict = {
        "threads": torch.get_num_threads(),
        "batch": cfg["batch"],
        "model": f"{cfg['hidden']} x {cfg['layers']}",
        "max_history": a.max_history,
    }

    def joint_step(inputs, autocast=False):
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with ctx:
            out = joint(**inputs)
            loss = out.code_loss + 1e-4 * out.sia_loss + 3e-4 * out.psa_loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def backbone_step(inputs):
        codes = rec.code_inputs(inputs["history"], inputs["targets"])
        mask = codes["attention_mask"]
        embeds = torch.randn(*mask.shape, cfg["hidden"], requires_grad=True)
        hidden = rec.backbone(inputs_embeds=embeds, attention_mask=mask, position_ids=rec.position_ids_from_mask(mask),
                              use_cache=False).last_hidden_state
        hidden.sum().backward()

    for grouped in (False, True):
        bs = batches(dsd["train"], cfg["batch"], a.batches + 1, grouped, a.max_history)
        real = np.mean([int((b["history"] > 0).sum()) * 4 + 3 * len(b["targets"]) for b in bs[1:]])
        padded = np.mean([b["history"].numel() * 4 + 3 * len(b["targets"]) for b in bs[1:]])
        name = "grouped" if grouped else "random"
        t_joint = timed(joint_step, bs)
        t_bb = timed(backbone_step, bs)
        t_bf16 = timed(lambda x: joint_step(x, autocast=True), bs)
        report[name] = {
            "real_token_share": real / padded,
            "joint_step_s": t_joint,
            "joint_tokens_per_s": real / t_joint,
            "backbone_fwd_bwd_s": t_bb,
            "backbone_tokens_per_s": real / t_bb,
            "outside_backbone_share": 1 - t_bb / t_joint,
            "joint_step_bf16_autocast_s": t_bf16,
            "bf16_speedup": t_joint / t_bf16,
        }
        report[name]["epoch_minutes"] = len(dsd["train"]) / cfg["batch"] * t_joint / 60
    rec.eval()
    val = dsd["validation"].select(range(a.eval_users))
    collate = DataCollatorForRecommendation(a.max_history)
    rows = [collate([val[i] for i in range(s, min(s + 256, len(val)))]) for s in range(0, len(val), 256)]
    t0 = time.perf_counter()
    with torch.no_grad():
        for b in rows:
            rec.top_k_items(b["history"], 20, num_beams=cfg["beams"], chunk_size=64)
    per_user = (time.perf_counter() - t0) / len(val)
    report["validation_users_per_s"] = 1 / per_user
    report["full_validation_minutes"] = per_user * len(dsd["validation"]) / 60
    print(json.dumps(report, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
