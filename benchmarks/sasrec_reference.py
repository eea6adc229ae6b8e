"""SASRec with the strongest published Beauty recipe, on our split, with our code; one seed a call.

    python benchmarks/sasrec_reference.py --data ../shared/data/amazon-beauty --out outputs/sasrec-ref --seed 0
    python benchmarks/sasrec_reference.py --out outputs/sasrec-ref --collect benchmarks/results/sasrec-beauty-cpu.json
    python benchmarks/sasrec_reference.py --out outputs/sasrec-qnorm --seed 0 --export outputs/beauty-qn

Recipe (a well-regularised SASRec with full-softmax CE): 2 blocks, 64-d, 1 head, dropout 0.6,
Adam(W) lr 5e-4 with weight decay 1e-8, constant lr, no gradient clipping, batch 512 user
sequences, histories of the last 50 items, validation NDCG@10 every 5 epochs with seen items
excluded, the best validation is tested. Each model is tested under both protocols (seen items
excluded / all items ranked).

The split keeps whole histories (max 204 items on Beauty) so that "seen items excluded" removes
every item the user interacted with, while the model reads the last 50. A call resumes from the
checkpoints in ``<out>/seed_<s>``; ``--collect`` gathers every finished seed into one JSON with
per-seed metrics, their mean and std, seconds per epoch, command and machine. ``--export DIR`` writes
a finished seed's item table (``item_emb.npy``), its metrics (``sasrec_metrics.json``) and the split
(``data/``) into ``DIR``, the layout ``benchmarks/beauty.py --out DIR`` reuses instead of training
its own SASRec.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback, TrainerState

from hf_genrec.data import dataset_file_in, leave_one_out, load_genrec_dataset, load_interactions
from hf_genrec.embeddings import SASREC_RECIPES, collaborative_item_embeddings, train_sasrec
from hf_genrec.models.sasrec import SASRecConfig, SASRecModel
from hf_genrec.training import STAGE_FINAL_DIR
from hf_genrec.utils.checkpoints import last_complete_checkpoint

# The library's "reference" SASRec recipe, split into the training recipe and the block structure.
STRUCTURE_KEYS = ("block", "attend_padding", "initialization")
RECIPE = {k: v for k, v in SASREC_RECIPES["reference"].items() if k not in (*STRUCTURE_KEYS, "num_train_epochs")}
# --structure: "pre_norm" is our default SASRec block; "query_norm" is the block, padding attention and
# initialisation of the CE-SCE-LLMRec SASRec code, whose Beauty runs this recipe comes from.
STRUCTURES = {
    "pre_norm": dict(block="pre_norm", attend_padding=False, initialization="normal"),
    "query_norm": {k: SASREC_RECIPES["reference"][k] for k in STRUCTURE_KEYS},
}
HEADLINE = ("recall@5", "recall@10", "ndcg@5", "ndcg@10", "ndcg@20")


class EpochTimer(TrainerCallback):
    """Wall-clock seconds of each training epoch (evaluation excluded: it runs after epoch end)."""

    def __init__(self):
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self._start)


def split(data: str, out: str):
    path = os.path.join(out, "data")
    if not os.path.exists(os.path.join(path, "genrec_dataset.json")):
        leave_one_out(load_interactions(dataset_file_in(data)), max_history=None).save_to_disk(path)
    return load_genrec_dataset(path, max_history=None)


def run_seed(a) -> dict:
    work = os.path.join(a.out, f"seed_{a.seed}")
    done = os.path.join(work, "result.json")
    if os.path.exists(done):
        print(f"seed {a.seed} already finished: {done}")
        return json.load(open(done))
    torch.set_num_threads(a.threads)
    dsd = split(a.data, a.out)
    timer = EpochTimer()
    t0 = time.time()
    model, metrics = train_sasrec(
        dsd, os.path.join(work, "trainer"), num_train_epochs=a.epochs, seed=a.seed, use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True, metric_ks=(1, 5, 10, 20, 50), callbacks=[timer], dataloader_num_workers=0, **RECIPE,
        **STRUCTURES[a.structure],
    )
    log = model.training_log
    result = {
        "seed": a.seed,
        "epochs": a.epochs,
        "structure": a.structure,
        "minutes": (time.time() - t0) / 60,
        "seconds_per_epoch_this_call": timer.seconds,
        "median_seconds_per_epoch": statistics.median(timer.seconds) if timer.seconds else None,
        "torch_threads": a.threads,
        "best_validation_ndcg@10": metrics["val_ndcg@10"],
        "validation_curve": [(round(e["epoch"]), e["eval_ndcg@10"]) for e in log if "eval_ndcg@10" in e],
        "loss_curve": [(round(e["epoch"]), e["loss"]) for e in log if "loss" in e],
        "metrics": metrics,
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
    }
    with open(done, "w") as f:
        json.dump(result, f, indent=2)
    return result


def best_model_folder(trainer_dir: str) -> str:
    """The folder of the model a seed's run selected: its finished stage's ``stage_final/``, or (a run
    from before stages kept one) the best checkpoint its trainer state names."""
    final = os.path.join(trainer_dir, STAGE_FINAL_DIR)
    if os.path.isdir(final):
        return final
    last = last_complete_checkpoint(trainer_dir)
    best = TrainerState.load_from_json(os.path.join(last, "trainer_state.json")).best_model_checkpoint if last else None
    if not best or not os.path.isdir(best):
        raise SystemExit(f"{trainer_dir}: no finished stage and no best checkpoint to export")
    return best


def export(out: str, seed: int, target: str) -> dict:
    """Write seed ``seed``'s item table, metrics and split into ``target`` (see the module docstring)."""
    work = os.path.join(out, f"seed_{seed}")
    with open(os.path.join(work, "result.json")) as f:
        result = json.load(f)
    folder = best_model_folder(os.path.join(work, "trainer"))
    # Weights and config only: runs from before SASRec carried an item map have none to load.
    model = SASRecModel(SASRecConfig.from_pretrained(folder))
    model.load_state_dict(load_file(os.path.join(folder, "model.safetensors")))
    os.makedirs(target, exist_ok=True)
    np.save(os.path.join(target, "item_emb.npy"), collaborative_item_embeddings(model))
    with open(os.path.join(target, "sasrec_metrics.json"), "w") as f:
        json.dump({**result["metrics"], "exported_from": folder}, f, indent=2)
    if not os.path.exists(os.path.join(target, "data")):
        shutil.copytree(os.path.join(out, "data"), os.path.join(target, "data"))
    print(f"exported {folder} (seed {seed}) to {target}")
    return result["metrics"]


def merge_rows(report: dict, table_path: str) -> None:
    """Add one row per protocol to a results table (``benchmarks/results/beauty-cpu.json``)."""
    with open(table_path) as f:
        table = json.load(f)
    seeds = report["seeds"]
    for protocol, row in report["rows"].items():
        variant = ", query-norm block" if report["structure"]["block"] == "query_norm" else ""
        table["rows"][f"SASRec reference recipe{variant} ({protocol})"] = {
            "protocol": protocol,
            "model": report["model"],
            "selection": report["selection"],
            "seeds": sorted(row["per_seed"]),
            "test_per_seed": row["per_seed"],
            "test_mean": row["mean"],
            "test_std": row["std"],
            "epochs": seeds[0]["epochs"],
            "minutes_per_seed": [round(s["minutes"], 1) for s in seeds],
            "median_seconds_per_epoch": [round(s["median_seconds_per_epoch"], 1) for s in seeds],
            "command": seeds[0]["command"],
            "machine": seeds[0]["machine"],
        }
    with open(table_path, "w") as f:
        json.dump(table, f, indent=2)


def collect(out: str, path: str, merge_into: str | None = None) -> dict:
    seeds = []
    for d in sorted(os.listdir(out)):
        f = os.path.join(out, d, "result.json")
        if d.startswith("seed_") and os.path.exists(f):
            seeds.append(json.load(open(f)))
    if not seeds:
        raise SystemExit(f"no finished seed under {out}")
    rows = {}
    for protocol in ("exclude_seen", "all_items"):
        per_seed = {s["seed"]: {m: s["metrics"][f"test_{protocol}_{m}"] for m in HEADLINE} for s in seeds}
        values = {m: [v[m] for v in per_seed.values()] for m in HEADLINE}
        rows[protocol] = {
            "protocol": protocol,
            "per_seed": per_seed,
            "mean": {m: statistics.mean(v) for m, v in values.items()},
            "std": {m: statistics.stdev(v) if len(v) > 1 else 0.0 for m, v in values.items()},
        }
    structures = {s.get("structure", "pre_norm") for s in seeds}
    if len(structures) > 1:
        raise SystemExit(f"{out} mixes SASRec structures {sorted(structures)}; collect one structure per folder")
    structure = structures.pop()
    report = {
        "model": "SASRec (CE, 2 x 64-d, 1 head, dropout 0.6, constant lr 5e-4, batch 512"
        + (", query-norm block, padding attended, Xavier init)" if structure == "query_norm" else ")"),
        "structure": STRUCTURES[structure],
        "data": "Amazon Beauty 2014 5-core, leave-one-out, full ranking",
        "recipe": RECIPE,
        "selection": "best validation NDCG@10 (seen items excluded), every 5 epochs",
        "rows": rows,
        "seeds": seeds,
    }
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    if merge_into:
        merge_rows(report, merge_into)
    for protocol, row in rows.items():
        print(protocol, " ".join(f"{m} {row['mean'][m]:.4f}±{row['std'][m]:.4f}" for m in HEADLINE), f"({len(seeds)} seeds)")
    return report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/amazon-beauty")
    p.add_argument("--out", default="outputs/sasrec-ref")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--structure", choices=sorted(STRUCTURES), default="pre_norm",
                   help="pre_norm (ours) or query_norm: the CE-SCE-LLMRec SASRec's block, padding attention, Xavier init")
    p.add_argument("--collect", default=None, help="write the finished seeds' summary to this JSON and stop")
    p.add_argument("--merge_into", default=None, help="with --collect: also add the rows to this results table")
    p.add_argument("--export", default=None, metavar="DIR", help="write --seed's item table, metrics and split to DIR and stop")
    a = p.parse_args(argv)
    if a.export:
        return export(a.out, a.seed, a.export)
    if a.collect:
        return collect(a.out, a.collect, a.merge_into)
    return run_seed(a)


if __name__ == "__main__":
    main()
