"""New items without retraining: every family on a catalogue with 5% of its items held out, the
held-out items added after training with ``add_items``, test users split by whether their next item
is one of them.

    python benchmarks/cold_start.py --data ../shared/data/amazon-beauty --out outputs/cold-start
    python benchmarks/cold_start.py --out outputs/cold-start --families popularity,itemid \\
        --json benchmarks/results/cold-start-cpu.json

Protocol: ``hf_genrec.data.cold_start_split`` holds out a random 5% of the items (``--seed``) from
every training and validation sequence (and from test histories); the test target stays each user's
last item. Every model trains on the warm items only, then gets the cold ones through ``add_items``
from content (MiniLM title embeddings, or the titles themselves for HLLM), and ranks the whole grown
catalogue, seen items excluded. Reported: Recall/NDCG@10 for test users whose target is cold, for
the others ("warm", after the add; also before it, to show what the new items cost the warm users),
and over all test users.

Families: popularity (training counts; a cold item has none), SASRec (the reference recipe; its
item table has no row for an unseen item, so it cannot rank one), HLLM light (frozen MiniLM item
model over titles, CE), item-ID LLaMA + hierarchical softmax (MiniLM table; new rows through the
init path, and through a ridge map fitted on the known items: the headline, fixed in advance), ETEGRec (semantic IDs from MiniLM
embeddings; new items coded by the RQ-VAE, collisions given a free suffix). Each family's result
is kept in ``<out>/<family>/cold_start.json`` and reused, so the run can span sessions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np
import torch
from sasrec_reference import RECIPE as SASREC_RECIPE
from transformers import AutoModel, AutoTokenizer

import hf_genrec  # noqa: F401  (registers the Auto classes)
from hf_genrec import RQVAEModel
from hf_genrec.data import (
    ColdStartSplit,
    ItemIdMap,
    align_item_texts,
    cold_start_split,
    dataset_file_in,
    find_item_text_file,
    load_genrec_dataset,
    load_interactions,
    read_item_texts,
)
from hf_genrec.embeddings import train_sasrec
from hf_genrec.embeddings.text import text_item_embeddings
from hf_genrec.metrics import ranking_metrics_from_ranks, ranks_from_scores
from hf_genrec.training import RecommenderTrainer, RecommenderTrainingArguments

KS = (5, 10, 20)
# Whole histories are kept in the split, so "seen items excluded" removes every item a user had
# (the models read only their own max_history).
SPLIT_HISTORY = 10_000
FAMILIES = ("popularity", "sasrec", "hllm", "itemid", "etegrec")
RECIPES = {  # what each family trains (the flags below), for the results file
    "popularity": "interaction counts of the training sequences (validation histories + targets)",
    "sasrec": "benchmarks/sasrec_reference.py recipe (2 x 64, dropout 0.6, lr 5e-4 constant, batch 512), "
              "--sasrec_epochs epochs, best validation every 5",
    "hllm": "light mode, frozen all-MiniLM-L6-v2 item model over titles, user LLaMA 64 x 2, full-catalogue CE, "
            "lr 1e-3, batch 128, --hllm_epochs epochs, early stopping patience 3; add_items(texts=..., tokenizer=...)",
    "itemid": "LLaMA 64 x 2, 384-d MiniLM item table, sqrt(N) clusters, whole-sequence training, stage 1 "
              "(--itemid_stage1_epochs, lr 2e-3) + re-cluster + stage 2 (--itemid_stage2_epochs, lr 4e-4), batch 128; "
              "add_items(item_embeddings=MiniLM, catalogue_embeddings=MiniLM of the known items) (fitted map; "
              "the init path beside it)",
    "etegrec": "semantic IDs from an RQ-VAE (200 epochs) over 384-d MiniLM title embeddings, LLaMA 64 x 2, 20-item "
               "histories, --etegrec_epochs alternating epochs (warm_epoch half of them), --etegrec_finetune_epochs "
               "fine-tuning, lr 2e-3, batch 256; add_items(item_embeddings=MiniLM, item_tokenizer=final/item_tokenizer)",
}


# --------------------------------------------------------------------------------- data
def prepare(data: str, out: str, cold_fraction: float, seed: int) -> tuple[ColdStartSplit, dict]:
    """The split (saved in ``<out>/data`` + ``cold.json``) and every item's text by original id."""
    path, meta = os.path.join(out, "data"), os.path.join(out, "cold.json")
    if os.path.exists(meta):
        with open(meta) as f:
            saved = json.load(f)
        split = ColdStartSplit(load_genrec_dataset(path), saved["cold_items"], saved["cold_test"])
        split.dataset.num_dropped_users = saved.get("dropped_users", 0)
    else:
        split = cold_start_split(load_interactions(dataset_file_in(data)), cold_fraction, seed, max_history=SPLIT_HISTORY)
        split.dataset.save_to_disk(path)
        with open(meta, "w") as f:
            json.dump({"cold_items": split.cold_items, "cold_test": split.cold_test, "seed": seed,
                       "cold_fraction": cold_fraction, "dropped_users": split.dataset.num_dropped_users}, f)
    texts = read_item_texts(find_item_text_file(data))
    return split, texts


def text_embeddings(split: ColdStartSplit, texts: dict, out: str) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM embeddings ``[N_warm, 384]`` (dense order) and ``[N_cold, 384]`` (``cold_items`` order)."""
    warm_path, cold_path = os.path.join(out, "minilm_warm.npy"), os.path.join(out, "minilm_cold.npy")
    if not os.path.exists(cold_path):
        np.save(warm_path, text_item_embeddings(texts, split.dataset.item_map))
        np.save(cold_path, text_item_embeddings(texts, ItemIdMap.from_ordered(split.cold_items)))
    return np.load(warm_path), np.load(cold_path)


# --------------------------------------------------------------------------- evaluation
def evaluate(model, split: ColdStartSplit) -> dict[str, dict[str, float]]:
    """Recall/NDCG@k, seen items excluded, for the warm and (when the model knows them) cold users."""
    with tempfile.TemporaryDirectory() as tmp:
        args = RecommenderTrainingArguments(
            output_dir=tmp, per_device_eval_batch_size=256, max_history=model.config.max_history, report_to=[],
            use_cpu=True, disable_tqdm=True, metric_ks=list(KS), exclude_history=True,
        )
        trainer = RecommenderTrainer(model=model, args=args)
        out = {"warm": trainer.evaluate(split.dataset["test"], metric_key_prefix="t")}
        if all(i in model.item_map for i in split.cold_items):
            cold = split.cold_test_dataset(model.item_map, max_history=SPLIT_HISTORY)
            out["cold"] = trainer.evaluate(cold, metric_key_prefix="t")
    return {part: {k.removeprefix("t_"): v for k, v in m.items() if "@" in k} for part, m in out.items()}


def with_overall(result: dict, split: ColdStartSplit) -> dict:
    """Add the all-users figure (the user-weighted mean of warm and cold)."""
    n_warm, n_cold = len(split.dataset["test"]), len(split.cold_test)
    warm, cold = result["warm"], result["cold"]
    result["all"] = {k: (warm[k] * n_warm + cold[k] * n_cold) / (n_warm + n_cold) for k in warm}
    result["users"] = {"warm": n_warm, "cold": n_cold}
    return result


def popularity(split: ColdStartSplit) -> dict:
    """Training counts (every warm interaction before the test item); cold items count 0 and rank
    after every warm item (ties count against the target)."""
    dsd = split.dataset
    n, k = dsd.num_items, len(split.cold_items)
    counts = torch.zeros(n + k + 1)
    for history, target in zip(dsd["validation"]["history"], dsd["validation"]["target"]):
        counts.index_add_(0, torch.tensor([*history, target]), torch.ones(len(history) + 1))
    grown = dsd.item_map.extended(split.cold_items)
    result = {}
    for part, rows in (("warm", dsd["test"]), ("cold", split.cold_test_dataset(grown, max_history=SPLIT_HISTORY))):
        ranks = []
        for start in range(0, len(rows), 1024):
            chunk = rows[start : start + 1024]
            scores = counts.expand(len(chunk["target"]), -1).clone()
            scores[:, 0] = float("-inf")
            for i, h in enumerate(chunk["history"]):
                scores[i, torch.tensor(h)] = float("-inf")  # seen items excluded
            ranks.append(ranks_from_scores(scores, torch.tensor(chunk["target"])))
        result[part] = ranking_metrics_from_ranks(torch.cat(ranks), KS)
    return result


# ------------------------------------------------------------------------------ families
def run_sasrec(split: ColdStartSplit, work: str, a) -> dict:
    recipe = dict(SASREC_RECIPE, patience=None)
    _, metrics = train_sasrec(split.dataset, os.path.join(work, "trainer"), num_train_epochs=a.sasrec_epochs, seed=a.seed,
                              use_cpu=True, disable_tqdm=True, metric_ks=KS, **recipe)
    warm = {k.removeprefix("test_exclude_seen_"): v for k, v in metrics.items() if k.startswith("test_exclude_seen_")}
    zero = {k: 0.0 for k in warm}  # no table row for an item it never saw: never recommended
    return {"warm": warm, "warm_before_add": warm, "cold": zero, "epochs": a.sasrec_epochs,
            "note": "SASRec has no embedding for an item unseen in training, so it cannot rank a cold item (0 by construction)"}


def recipe_args(split_dir: str, work: str, a, *extra: str) -> list[str]:
    return ["--dataset_dir", split_dir, "--output_dir", work, "--disable_tqdm", "true", "--seed", str(a.seed),
            "--exclude_history", "true", "--metric_ks", *map(str, KS), "--save_total_limit", "1", *extra]


def run_hllm(split: ColdStartSplit, texts: dict, split_dir: str, work: str, a) -> dict:
    from hf_genrec.recipes.hllm import main as hllm_main

    final = os.path.join(work, "final")
    if not os.path.exists(os.path.join(final, "config.json")):
        hllm_main(recipe_args(split_dir, work, a, "--item_text", find_item_text_file(a.data), "--item_model", "minilm",
                              "--mode", "light", "--loss", "ce", "--hidden_size", "64", "--learning_rate", "1e-3",
                              "--per_device_train_batch_size", "128", "--num_train_epochs", str(a.hllm_epochs),
                              "--early_stopping_patience", "3", "--item_cache_dir", os.path.join(a.out, "hllm_item_cache")))
    model = AutoModel.from_pretrained(final).eval()
    before = evaluate(model, split)["warm"]
    cold_texts = align_item_texts(texts, ItemIdMap.from_ordered(split.cold_items))
    t0 = time.perf_counter()
    model.add_items(split.cold_items, texts=cold_texts, tokenizer=AutoTokenizer.from_pretrained(final))
    seconds = time.perf_counter() - t0  # the add alone, before the evaluation
    return evaluate(model, split) | {"warm_before_add": before, "add_items_seconds": seconds}


def run_itemid(split: ColdStartSplit, warm_emb: np.ndarray, cold_emb: np.ndarray, split_dir: str, work: str, a) -> dict:
    from hf_genrec.recipes.itemid import main as itemid_main

    final = os.path.join(work, "final")
    emb_path = os.path.join(a.out, "minilm_warm.npy")
    if not os.path.exists(os.path.join(final, "config.json")):
        itemid_main(recipe_args(split_dir, work, a, "--item_embeddings", emb_path, "--train_on_all_positions", "true",
                                "--stage1_epochs", str(a.itemid_stage1_epochs), "--stage2_epochs", str(a.itemid_stage2_epochs),
                                "--stage1_learning_rate", "2e-3", "--stage2_learning_rate", "4e-4",
                                "--per_device_train_batch_size", "128"))
    result = {}
    for variant, extra in (("init_path", {}), ("fitted_map", {"catalogue_embeddings": torch.from_numpy(warm_emb)})):
        model = AutoModel.from_pretrained(final).eval()
        if variant == "init_path":
            result["warm_before_add"] = evaluate(model, split)["warm"]
        t0 = time.perf_counter()
        model.add_items(split.cold_items, item_embeddings=torch.from_numpy(cold_emb), **extra)
        seconds = time.perf_counter() - t0  # the add alone, before the evaluation
        result[variant] = with_overall(evaluate(model, split), split) | {"add_items_seconds": seconds}
    # The headline is the fitted map, chosen before any result (it uses what the model learnt about
    # the known items); the init path is reported beside it. No test figure picks between them.
    return {**result["fitted_map"], "variant": "fitted_map", "variants": result, "warm_before_add": result["warm_before_add"]}


def run_etegrec(split: ColdStartSplit, cold_emb: np.ndarray, split_dir: str, work: str, a) -> dict:
    from hf_genrec.recipes.etegrec import main as etegrec_main

    final = os.path.join(work, "final")
    if not os.path.exists(os.path.join(final, "config.json")):
        etegrec_main(recipe_args(
            split_dir, work, a, "--item_embeddings", os.path.join(a.out, "minilm_warm.npy"), "--rqvae_epochs", "200",
            "--hidden_size", "64", "--num_hidden_layers", "2", "--num_attention_heads", "4", "--max_history", "20",
            "--num_train_epochs", str(a.etegrec_epochs), "--warm_epoch", str(a.etegrec_epochs // 2),
            "--finetune_epochs", str(a.etegrec_finetune_epochs), "--per_device_train_batch_size", "256",
            "--per_device_eval_batch_size", "256", "--learning_rate", "2e-3", "--warmup_steps", "500",
            "--weight_decay", "0.05", "--early_stopping_patience", "3", "--eval_num_beams", "20", "--eval_users", "4000",
            "--group_by_length", "true", "--logging_steps", "100",
        ))
    model = AutoModel.from_pretrained(final).eval()
    before = evaluate(model, split)["warm"]
    tokenizer = RQVAEModel.from_pretrained(os.path.join(final, "item_tokenizer")).eval()
    t0 = time.perf_counter()
    model.add_items(split.cold_items, item_embeddings=torch.from_numpy(cold_emb), item_tokenizer=tokenizer)
    seconds = time.perf_counter() - t0
    codes = model.item_codes[-len(split.cold_items):]
    return evaluate(model, split) | {
        "warm_before_add": before, "add_items_seconds": seconds,
        "cold_items_with_a_shared_prefix": int((codes[:, -1] > 0).sum()),
    }


# ---------------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/amazon-beauty")
    p.add_argument("--out", default="outputs/cold-start")
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--cold_fraction", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sasrec_epochs", type=int, default=40)
    p.add_argument("--hllm_epochs", type=int, default=8)
    p.add_argument("--itemid_stage1_epochs", type=float, default=4)
    p.add_argument("--itemid_stage2_epochs", type=float, default=2)
    p.add_argument("--etegrec_epochs", type=int, default=16)
    p.add_argument("--etegrec_finetune_epochs", type=int, default=2)
    p.add_argument("--json", default=None, help="merge the results into this file")
    a = p.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    split, texts = prepare(a.data, a.out, a.cold_fraction, a.seed)
    split_dir = os.path.join(a.out, "data")
    summary = {"warm_items": split.dataset.num_items, "cold_items": len(split.cold_items),
               "test_users": {"warm": len(split.dataset["test"]), "cold": len(split.cold_test)},
               "dropped_users": split.dataset.num_dropped_users}
    print(json.dumps(summary))
    results = {}
    for family in [f for f in a.families.split(",") if f]:
        work = os.path.join(a.out, family)
        done = os.path.join(work, "cold_start.json")
        if os.path.exists(done):
            results[family] = json.load(open(done))
            continue
        os.makedirs(work, exist_ok=True)
        t0 = time.time()
        if family == "popularity":
            result = popularity(split)
        elif family == "sasrec":
            result = run_sasrec(split, work, a)
        elif family == "hllm":
            result = run_hllm(split, texts, split_dir, work, a)
        elif family == "itemid":
            warm_emb, cold_emb = text_embeddings(split, texts, a.out)
            result = run_itemid(split, warm_emb, cold_emb, split_dir, work, a)
        elif family == "etegrec":
            _, cold_emb = text_embeddings(split, texts, a.out)
            result = run_etegrec(split, cold_emb, split_dir, work, a)
        else:
            raise SystemExit(f"cold_start.py: error: unknown family {family!r} (one of {', '.join(FAMILIES)})")
        result = with_overall(result, split) | {"minutes": (time.time() - t0) / 60}
        with open(done, "w") as f:
            json.dump(result, f, indent=2)
        results[family] = result
    print(f"\n{os.path.basename(os.path.normpath(a.data))}: {summary['cold_items']} of "
          f"{summary['cold_items'] + summary['warm_items']} items held out; seen items excluded")
    print(f"{'family':<12}{'cold R@10':>11}{'cold N@10':>11}{'warm R@10':>11}{'warm N@10':>11}{'all N@10':>10}")
    for family, r in results.items():
        print(f"{family:<12}{r['cold']['recall@10']:>11.4f}{r['cold']['ndcg@10']:>11.4f}"
              f"{r['warm']['recall@10']:>11.4f}{r['warm']['ndcg@10']:>11.4f}{r['all']['ndcg@10']:>10.4f}")
    if a.json:
        report = json.load(open(a.json)) if os.path.exists(a.json) else {}
        report.update(split=summary, protocol="exclude_seen", data=a.data, seed=a.seed,
                      machine=f"{platform.node() or 'cpu'}: {os.cpu_count()} cores, torch {torch.__version__}")
        report.setdefault("families", {}).update(results)
        report["recipes"] = RECIPES
        report["arguments_of_this_call"] = vars(a)
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return results


if __name__ == "__main__":
    main()
