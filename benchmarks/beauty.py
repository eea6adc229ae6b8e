"""ETEGRec on LLaMA on Amazon Beauty (leave-one-out, full ranking; seen items excluded and all items),
with the static-codes baseline, the other codebook-sync modes and SASRec, beside the published rows.

    python benchmarks/beauty.py --preset cpu                      # this 2-core machine
    python benchmarks/beauty.py --preset cpu --variants etegrec,static_codes
    python benchmarks/beauty.py --preset gpu --variants etegrec   # a lent GPU (bf16)

Steps: leave-one-out split (whole histories kept, so "seen items excluded" removes every item a
user had) -> SASRec item embeddings from the library's "reference" recipe (query-norm blocks,
dropout 0.6, 100 epochs), also the SASRec row -> RQ-VAE pre-training -> for each variant, the
ETEGRec recipe (training to early stopping with checkpoints selected with seen items excluded,
fine-tuning on frozen codes, test under both protocols). Every variant starts from the same
SASRec embeddings and the same pre-trained RQ-VAE, with the same recommender-epoch budget.

Variants:
  etegrec        alternating training with the default codebook_sync
  static_codes   the same recommender on the pre-trained RQ-VAE's codes, no SIA/PSA (TIGER-style)
  sync_none / sync_both / sync_tokenizer_to_recommender   etegrec with that codebook_sync
  margin_<m>     etegrec with recode_margin m (re-coding hysteresis; e.g. margin_0.05)
  dualscid       etegrec on [SASRec ; MiniLM title] embeddings (text-aware semantic IDs; own RQ-VAE)
Every stage's result in --out (split, SASRec, RQ-VAE, each variant's test metrics) is reused as it
is, whatever script version wrote it (use a fresh --out after a change of split or recipe), by a
later call, and a variant's trainer checkpoints resume, so the run can span several sessions.
Writes <out>/beauty_metrics.json (two calls on one --out, a variant each, keep each other's
results) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from hf_genrec.data import dataset_file_in, leave_one_out, load_genrec_dataset, load_interactions
from hf_genrec.embeddings import collaborative_item_embeddings, sasrec_recipe, train_sasrec
from hf_genrec.models.rqvae import RQVAEConfig
from hf_genrec.recipes.etegrec import main as run_etegrec
from hf_genrec.training import pretrain_rqvae

PUBLISHED = {  # Recall@5, Recall@10, NDCG@5, NDCG@10 (amazon-beauty/README.md)
    "SASRec (TIGER paper)": (0.0387, 0.0605, 0.0249, 0.0318),
    "TIGER": (0.0454, 0.0648, 0.0321, 0.0384),
    "ActionPiece (N@10 only)": (None, None, None, 0.0424),
}
NO_ALIGNMENT = ["--rec_sia_weight", "0", "--rec_psa_weight", "0", "--tok_sia_weight", "0", "--tok_psa_weight", "0"]
COLUMNS = ("recall@5", "recall@10", "ndcg@5", "ndcg@10")

# "cpu" is sized from benchmarks/step_profile.py on this 2-core machine (quiet, length-grouped
# batches of 256): a 64 x 2 LLaMA on 20-item histories trains an epoch in 2.3 minutes (a 128 x 2 one
# on 50-item histories: 9.3), a full validation pass takes 0.9 minutes, and tokenizer epochs before
# warm_epoch skip the LLM, so 24 alternating epochs + 6 fine-tuning epochs fit about 75 minutes per
# variant. "gpu" is the lent-device plan (bf16, 256 x 4, 50-item histories, wall-clock budgets that fit
# one device call).
PRESETS = {
    "cpu": dict(
        sasrec_epochs=100, rqvae_epochs=200, hidden=64, layers=2, heads=4, max_history=20, epochs=24,
        finetune_epochs=6, batch=256, lr=2e-3, warmup=500, warm_epoch=10, patience=3, eval_users=4000, beams=20,
        train_minutes=None, finetune_minutes=None,
    ),
    "gpu": dict(
        sasrec_epochs=100, rqvae_epochs=300, hidden=256, layers=4, heads=4, max_history=50, epochs=40,
        finetune_epochs=10, batch=256, lr=2e-3, warmup=500, warm_epoch=10, patience=3, eval_users=4000, beams=20,
        # One device call is under 9 minutes: the stages stop on wall-clock budgets (at a step end,
        # then the epoch's evaluation); the test split is always ranked in full.
        train_minutes=4.0, finetune_minutes=1.5,
    ),
}


def variant_args(name: str, epochs: int) -> tuple[list[str], int]:
    """Extra recipe arguments of a variant and its total epochs (static codes: the recommender epochs
    of the alternating budget, so every variant gets the same number of recommender epochs)."""
    if name == "etegrec" or name == "dualscid":
        return [], epochs
    if name == "static_codes":
        return ["--alternating", "false", *NO_ALIGNMENT], epochs // 2
    if name.startswith("sync_"):
        return ["--codebook_sync", name.removeprefix("sync_")], epochs
    if name.startswith("margin_"):  # e.g. margin_0.05: etegrec with that recode_margin
        return ["--recode_margin", str(float(name.removeprefix("margin_")))], epochs
    raise ValueError(f"unknown variant {name!r}")


def table(rows: dict[str, tuple]) -> str:
    lines = [f"{'model':<34}" + "".join(f"{c:>11}" for c in COLUMNS)]
    for name, vals in rows.items():
        lines.append(f"{name:<34}" + "".join(f"{v:>11.4f}" if v is not None else f"{'-':>11}" for v in vals))
    return "\n".join(lines)


def prepare_split(data: str, out: str, max_users: int | None):
    split_dir = os.path.join(out, "data")
    if os.path.exists(os.path.join(split_dir, "genrec_dataset.json")):
        return load_genrec_dataset(split_dir, max_history=None), split_dir
    seqs = load_interactions(dataset_file_in(data)).sequences
    if max_users:
        seqs = dict(list(seqs.items())[:max_users])
    dsd = leave_one_out(seqs, max_history=None)  # whole histories: models read their own window of the last items
    dsd.save_to_disk(split_dir)
    return dsd, split_dir


def sasrec_stage(dsd, out: str, cfg: dict, use_cpu: bool) -> tuple[np.ndarray, dict]:
    emb_path, sas_path = os.path.join(out, "item_emb.npy"), os.path.join(out, "sasrec_metrics.json")
    if os.path.exists(emb_path) and os.path.exists(sas_path):
        print(f"reusing SASRec embeddings and metrics from {out}")
        return np.load(emb_path), json.load(open(sas_path))
    t0 = time.time()
    recipe = sasrec_recipe("reference", num_train_epochs=cfg["sasrec_epochs"])
    sasrec, metrics = train_sasrec(
        dsd, os.path.join(out, "sasrec"), use_cpu=use_cpu, disable_tqdm=True, metric_ks=(5, 10, 20, 50, 200), **recipe
    )
    metrics["minutes"] = (time.time() - t0) / 60
    emb = collaborative_item_embeddings(sasrec)
    np.save(emb_path, emb)
    with open(sas_path, "w") as f:
        json.dump(metrics, f, indent=2)
    return emb, metrics


def rqvae_stage(emb: np.ndarray, rq_dir: str, epochs: int, use_cpu: bool) -> dict:
    stats_path = os.path.join(rq_dir, "code_stats.json")
    if os.path.exists(stats_path):
        print(f"reusing the RQ-VAE in {rq_dir}")
        return json.load(open(stats_path))
    _, stats = pretrain_rqvae(torch.from_numpy(emb), rq_dir, RQVAEConfig(semantic_dim=emb.shape[1]),
                              num_train_epochs=epochs, use_cpu=use_cpu)
    return stats


def dualscid_embeddings(emb: np.ndarray, dsd, data: str, out: str) -> str:
    """[SASRec ; MiniLM title] per item, each half L2-normalised so neither dominates the RQ-VAE."""
    path = os.path.join(out, "item_emb_dualscid.npy")
    if not os.path.exists(path):
        from hf_genrec.data import align_item_texts, find_item_text_file, read_item_texts
        from hf_genrec.embeddings.text import text_item_embeddings

        texts = dict(zip(dsd.item_map.original_ids, align_item_texts(read_item_texts(find_item_text_file(data)), dsd.item_map)))
        text = text_item_embeddings(texts, dsd.item_map)
        unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)  # noqa: E731
        np.save(path, np.concatenate([unit(emb), unit(text)], axis=1).astype(np.float32))
    return path


def save_results(path: str, results: dict, written_here: set[str]) -> None:
    """Write ``results`` to ``path`` without losing what another call wrote there meanwhile.

    Two calls on one ``--out`` (one variant per core) both hold the file they read at start; a plain
    write would drop the other call's finished variants. Entries this call produced (``written_here``)
    win; every other variant / minutes entry on disk is kept. The write is atomic (temp file + rename).
    """
    if os.path.exists(path):
        with open(path) as f:
            on_disk = json.load(f)
        for key in ("variants", "minutes"):
            theirs = {k: v for k, v in on_disk.get(key, {}).items() if k not in written_here}
            results[key] = {**results[key], **theirs}
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=2)
    os.replace(tmp, path)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/amazon-beauty")
    p.add_argument("--out", default=None, help="default: outputs/beauty-<preset>")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--variants", default="etegrec,static_codes")
    p.add_argument("--epochs", type=int, default=None, help="override the preset's alternating epoch budget")
    p.add_argument("--train_minutes", type=float, default=None, help="override the preset's wall-clock budget")
    p.add_argument("--max_users", type=int, default=None, help="subsample users (smoke tests only)")
    p.add_argument("--extra", default="", help="more run_etegrec.py arguments, space separated")
    a = p.parse_args(argv)
    cfg = dict(PRESETS[a.preset])
    if a.epochs:
        cfg["epochs"] = a.epochs
    if a.train_minutes:
        cfg["train_minutes"] = a.train_minutes
    out = a.out or f"outputs/beauty-{a.preset}"
    os.makedirs(out, exist_ok=True)
    start = time.time()
    use_cpu = not torch.cuda.is_available()
    device = torch.cuda.get_device_name() if not use_cpu else f"cpu ({os.cpu_count()} cores)"

    dsd, split_dir = prepare_split(a.data, out, a.max_users)
    emb, sas_metrics = sasrec_stage(dsd, out, cfg, use_cpu)
    rq_stats = rqvae_stage(emb, os.path.join(out, "rqvae"), cfg["rqvae_epochs"], use_cpu)
    results_path = os.path.join(out, "beauty_metrics.json")
    results = json.load(open(results_path)) if os.path.exists(results_path) else {"variants": {}, "minutes": {}}
    written_here: set[str] = set()
    results.update(device=device, preset=a.preset, config=cfg, rqvae=rq_stats,
                   sasrec={k.removeprefix("test_"): v for k, v in sas_metrics.items() if k.startswith("test_")})
    for name in [v for v in a.variants.split(",") if v]:
        extra, epochs = variant_args(name, cfg["epochs"])
        emb_path, rq_dir = os.path.join(out, "item_emb.npy"), os.path.join(out, "rqvae")
        if name == "dualscid":
            emb_path = dualscid_embeddings(emb, dsd, a.data, out)
            rq_dir = os.path.join(out, "rqvae_dualscid")
            results.setdefault("rqvae_dualscid", rqvae_stage(np.load(emb_path), rq_dir, cfg["rqvae_epochs"], use_cpu))
        work = os.path.join(out, name)
        done = os.path.join(work, "test_metrics.json")
        if os.path.exists(done):
            print(f"reusing the {name} result in {done}")
            results["variants"][name] = json.load(open(done))
            continue
        checkpoints = sorted((d for d in os.listdir(work) if d.startswith("checkpoint-")), key=lambda d: int(d.split("-")[1])) \
            if os.path.isdir(work) else []
        args = [
            "--dataset_dir", split_dir, "--item_embeddings", emb_path, "--rqvae_path", rq_dir, "--output_dir", work,
            "--hidden_size", str(cfg["hidden"]), "--num_hidden_layers", str(cfg["layers"]),
            "--num_attention_heads", str(cfg["heads"]), "--num_train_epochs", str(epochs),
            "--finetune_epochs", str(cfg["finetune_epochs"]), "--per_device_train_batch_size", str(cfg["batch"]),
            "--per_device_eval_batch_size", "256", "--learning_rate", str(cfg["lr"]), "--warmup_steps", str(cfg["warmup"]),
            "--warm_epoch", str(cfg["warm_epoch"]), "--weight_decay", "0.05", "--max_history", str(cfg["max_history"]),
            "--early_stopping_patience", str(cfg["patience"]), "--eval_num_beams", str(cfg["beams"]),
            "--disable_tqdm", "true", "--logging_steps", "100", "--save_total_limit", "1",
            # Beauty histories: median 4 items; random batches are ~18% real tokens.
            "--group_by_length", "true",
            "--exclude_history", "true",  # checkpoint selection and the headline protocol: seen items excluded
            *(["--eval_users", str(cfg["eval_users"])] if cfg["eval_users"] else []),
            *(["--max_train_minutes", str(cfg["train_minutes"])] if cfg["train_minutes"] else []),
            *(["--finetune_max_minutes", str(cfg["finetune_minutes"])] if cfg["finetune_minutes"] else []),
            *(["--resume_from_checkpoint", os.path.join(work, checkpoints[-1])] if checkpoints else []),
            *extra, *a.extra.split(),
        ]
        if not use_cpu:
            args += ["--bf16", "true"]
        t0 = time.time()
        results["variants"][name] = run_etegrec(args)
        results["minutes"][name] = (time.time() - t0) / 60
        written_here.add(name)
        save_results(results_path, results, written_here)
    results["minutes"]["this_call"] = (time.time() - start) / 60
    save_results(results_path, results, written_here | {"this_call"})
    name = os.path.basename(os.path.normpath(a.data))
    # The published rows ranked all items; ours are printed under both protocols (SASRec's metrics
    # carry "all_items_" / "exclude_seen_" prefixes, the recipe's "all_items/" / "exclude_seen/").
    for protocol, label, published in (("all_items", "all items ranked", PUBLISHED), ("exclude_seen", "seen items excluded", {})):
        rows = dict(published)
        rows["SASRec (ours, CE)"] = tuple(results["sasrec"].get(f"{protocol}_{c}") for c in COLUMNS)
        for variant, m in results["variants"].items():
            rows[f"ETEGRec-LLaMA {variant}"] = tuple(m.get(f"{protocol}/{c}") for c in COLUMNS)
        print(f"\n{name}, leave-one-out, full ranking, {label} ({device}, preset {a.preset})")
        print(table(rows))
    return results


if __name__ == "__main__":
    main()
