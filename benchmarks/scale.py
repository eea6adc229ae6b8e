"""Cost against size: preparation, one training epoch per family and full evaluation on synthetic
MovieLens-format logs of 1M, 5M and 25M interactions (25M is MovieLens-25M's size).

python benchmarks/scale.py --work /tmp/scale --sizes 1M,5M,25M --out benchmarks/results/scale-cpu.json \
    [--old_code /path/to/an/older/checkout] [--old_max 1M] [--threads 2]

Every measurement runs in its own process (``python benchmarks/scale.py job ...``), which reports its
wall-clock seconds and its peak resident memory (``ru_maxrss``), so one job's memory never hides
another's. The log generator gives the shape of real logs: Zipf-headed item popularity, geometric
sequence lengths, repeated (user, item) pairs, ratings 0.5-5 and many ties in time. Training is
timed over ``--steps`` optimizer steps (after ``--warmup`` untimed ones) and extrapolated to one epoch
(steps an epoch x seconds a step); evaluation ranks every item for every test user (SASRec, exactly),
and for the generative families over ``--eval_users`` users, extrapolated per user. A job already in
``--out`` is not run again (delete its key to re-measure), so an interrupted sweep resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = {"100K": 100_000, "1M": 1_000_000, "5M": 5_000_000, "25M": 25_000_000}
#: MovieLens-25M: 162,541 users and 59,047 items for 25,000,095 ratings
USERS_PER_INTERACTION, ITEMS_PER_INTERACTION = 162_541 / 25_000_095, 59_047 / 25_000_095
ZIPF = 1.05  # item popularity exponent


def generate(n: int, path: str, seed: int = 0) -> None:
    """A MovieLens ``ratings.csv`` of about ``n`` rows (see the module docstring), written by polars."""
    import polars as pl

    rng = np.random.default_rng(seed)
    users, items = max(50, round(n * USERS_PER_INTERACTION)), max(50, round(n * ITEMS_PER_INTERACTION))
    lengths = rng.geometric(1 / (n / users), size=users)
    lengths = np.maximum(2, np.round(lengths * n / lengths.sum())).astype(np.int64)
    user = np.repeat(np.arange(1, users + 1, dtype=np.int64), lengths)
    m = len(user)
    item = (rng.zipf(ZIPF, size=m) - 1) % items + 1  # Zipf head, wrapped onto the catalogue
    # A random permutation of item ids, so popularity is not ordered by id.
    item = rng.permutation(items)[item - 1] + 1
    start = rng.integers(789_000_000, 1_500_000_000, size=users)
    span = rng.integers(60, 10_000_000, size=users)
    t = np.repeat(start, lengths) + (rng.random(m) * np.repeat(span, lengths)).astype(np.int64) // 60 * 60
    rating = rng.integers(1, 11, size=m) / 2
    pl.DataFrame({"userId": user, "movieId": item, "rating": rating, "timestamp": t}).sample(
        fraction=1.0, shuffle=True, seed=seed
    ).write_csv(path)


def bare_polars(path: str, min_count: int = 5) -> dict:
    """The same preparation steps as a bare polars script: the reference the library is compared with."""
    import polars as pl

    df = pl.read_csv(path, schema_overrides={"userId": pl.String, "movieId": pl.String})
    df = df.with_row_index("order").sort(["userId", "timestamp", "order"])
    df = df.unique(subset=["userId", "movieId"], keep="first", maintain_order=True)
    while True:
        u = df.group_by("userId").len().filter(pl.col("len") < min_count)["userId"]
        i = df.group_by("movieId").len().filter(pl.col("len") < min_count)["movieId"]
        if not len(u) and not len(i):
            break
        df = df.filter(~pl.col("userId").is_in(u.implode()) & ~pl.col("movieId").is_in(i.implode()))
    seqs = df.group_by("userId", maintain_order=True).agg("movieId", "timestamp")
    return {"users": seqs.height, "items": df["movieId"].n_unique(), "interactions": df.height}


def folder_mb(path: str) -> float:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 2**20


# ------------------------------------------------------------------------------------------ jobs
def job_prepare(a) -> dict:
    from hf_genrec.cli.prepare_data import prepare

    start = time.perf_counter()
    s = prepare(a.data, a.prepared)
    return {"users": s["users"], "items": s["items"], "interactions": s["interactions"], "folder_mb": folder_mb(a.prepared),
            "prepare_seconds": time.perf_counter() - start}


def job_prepare_old(a) -> dict:
    # An older checkout's `hf-genrec prepare` (Python objects, one stored row per prefix).
    sys.path.insert(0, a.old_code)
    from hf_genrec.cli.prepare_data import main  # noqa: F811 (the older package)

    start = time.perf_counter()
    main(["--input", a.data, "--output_dir", a.prepared + "-old"])
    return {"folder_mb": folder_mb(a.prepared + "-old"), "prepare_seconds": time.perf_counter() - start}


def job_bare_polars(a) -> dict:
    start = time.perf_counter()
    return bare_polars(a.data) | {"prepare_seconds": time.perf_counter() - start}


def _train_steps(trainer, steps: int, warmup: int) -> float:
    """Seconds per optimizer step over ``steps`` steps after ``warmup`` untimed ones."""
    from transformers import TrainerCallback

    marks = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step in (warmup, warmup + steps):
                marks[state.global_step] = time.perf_counter()

    trainer.add_callback(Clock())
    trainer.train()
    return (marks[warmup + steps] - marks[warmup]) / steps


def _sample_evaluation(trainer, dsd, users: int) -> dict:
    """Evaluate ``users`` random test users and scale the time to every test user."""
    sample = dsd["test"].shuffle(seed=0).select(range(min(users, len(dsd["test"]))))
    start = time.perf_counter()
    trainer.evaluate(sample)
    per_user = (time.perf_counter() - start) / len(sample)
    return {"eval_users_timed": len(sample), "eval_minutes_all_users": per_user * len(dsd["test"]) / 60}


def _args(a, cls, **kw):
    return cls(
        output_dir=os.path.join(a.prepared + "-runs", a.name), max_steps=a.warmup + a.steps, per_device_train_batch_size=a.batch,
        per_device_eval_batch_size=a.eval_batch, save_strategy="no", eval_strategy="no", report_to=[], use_cpu=True,
        disable_tqdm=True, logging_strategy="no", learning_rate=1e-3, **kw,
    )


def job_sasrec_train(a) -> dict:
    from transformers import Trainer, TrainingArguments

    from hf_genrec.data import load_genrec_dataset
    from hf_genrec.embeddings.collaborative import SASRecCollator, SequenceTrainingRows
    from hf_genrec.models.sasrec import SASRecConfig, SASRecModel

    dsd = load_genrec_dataset(a.prepared)
    model = SASRecModel(SASRecConfig(num_items=dsd.num_items, hidden_size=64, num_layers=2, num_heads=1, max_history=50))
    rows = SequenceTrainingRows(dsd.table, 50)
    trainer = Trainer(model=model, args=_args(a, TrainingArguments, remove_unused_columns=False, label_names=["labels"]),
                      train_dataset=rows, data_collator=SASRecCollator())
    per_step = _train_steps(trainer, a.steps, a.warmup)
    steps = -(-len(rows) // a.batch)
    return {"rows": len(rows), "seconds_per_step": per_step, "steps_per_epoch": steps, "epoch_minutes": steps * per_step / 60}


def job_sasrec_eval(a) -> dict:
    from hf_genrec.data import load_genrec_dataset
    from hf_genrec.models.sasrec import SASRecConfig, SASRecModel
    from hf_genrec.training import RecommenderTrainer, RecommenderTrainingArguments

    dsd = load_genrec_dataset(a.prepared)
    model = SASRecModel(SASRecConfig(num_items=dsd.num_items, hidden_size=64, num_layers=2, num_heads=1, max_history=50,
                                     exclude_history=True))
    # The evaluation every family shares (train_sasrec's too): each target's rank from top_k_items.
    trainer = RecommenderTrainer(model=model, args=_args(a, RecommenderTrainingArguments, exclude_history=True))
    start = time.perf_counter()
    m = trainer.evaluate(dsd["test"])
    return {"users": len(dsd["test"]), "items": dsd.num_items, "eval_minutes": (time.perf_counter() - start) / 60,
            "ndcg@10": m["eval_ndcg@10"]}


def _random_embeddings(n: int, dim: int = 64):
    import torch

    return torch.randn(n, dim, generator=torch.Generator().manual_seed(0))


def job_etegrec(a) -> dict:
    """RQ-VAE pre-training (a fixed number of epochs, timed) and ETEGRec's alternating training on
    the prefix rows (64 x 2 LLaMA), then generative evaluation on a user sample."""
    from hf_genrec.data import load_genrec_dataset
    from hf_genrec.models.backbone import small_llama_config
    from hf_genrec.models.llamarec.configuration_llamarec import DEFAULT_BACKBONE
    from hf_genrec.models.rqvae import RQVAEConfig
    from hf_genrec.recipes.stages import build_recommender, get_item_tokenizer
    from hf_genrec.training import ETEGRecTrainer, ETEGRecTrainingArguments

    dsd = load_genrec_dataset(a.prepared)
    emb = _random_embeddings(dsd.num_items)
    start = time.perf_counter()
    tok = get_item_tokenizer(emb, None, os.path.join(a.prepared + "-runs", a.name), RQVAEConfig(semantic_dim=64),
                             a.rqvae_epochs, use_cpu=True, disable_tqdm=True)
    rqvae_minutes = (time.perf_counter() - start) / 60
    backbone = small_llama_config(64, 2, 4, DEFAULT_BACKBONE["vocab_size"])
    model = build_recommender(tok, emb, backbone_config=backbone, max_history=50)
    # A cycle is one tokenizer epoch (the RQ-VAE trains on the rows' items) and one recommender epoch:
    # each phase is timed on its own (alternating training starts with the tokenizer phase).
    per_step = {}
    for phase, alternating in (("tokenizer", True), ("recommender", False)):
        args = _args(a, ETEGRecTrainingArguments, max_history=50, eval_num_beams=20, alternating=alternating)
        trainer = ETEGRecTrainer(model=model, item_tokenizer=tok, item_embeddings=emb, args=args, train_dataset=dsd["train"])
        per_step[phase] = _train_steps(trainer, a.steps, a.warmup)
    steps = -(-len(dsd["train"]) // a.batch)
    timed_eval = _sample_evaluation(trainer, dsd, a.eval_users)
    return {"rows": len(dsd["train"]), "rqvae_epochs": a.rqvae_epochs, "rqvae_minutes": rqvae_minutes,
            "seconds_per_step": per_step["recommender"], "tokenizer_seconds_per_step": per_step["tokenizer"],
            "steps_per_epoch": steps, "epoch_minutes": steps * per_step["recommender"] / 60,
            "tokenizer_epoch_minutes": steps * per_step["tokenizer"] / 60,
            **timed_eval}


def job_hllm(a) -> dict:
    """HLLM (light: frozen 64-d item embeddings, 64 x 2 user LLaMA, NCE) on whole-sequence windows."""
    from hf_genrec.data import load_genrec_dataset
    from hf_genrec.recipes.hllm import HLLMArguments, build_model
    from hf_genrec.training import RecommenderTrainer, RecommenderTrainingArguments

    dsd = load_genrec_dataset(a.prepared)
    path = os.path.join(a.prepared + "-runs", "item_emb.npy")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, _random_embeddings(dsd.num_items).numpy())
    model, _ = build_model(dsd, None, HLLMArguments(item_embeddings=path, mode="light"), 50)
    model.set_item_map(dsd.item_map)
    rows = dsd.whole_sequence_rows(50)
    trainer = RecommenderTrainer(model=model, args=_args(a, RecommenderTrainingArguments, max_history=50),
                                 train_dataset=rows)
    per_step = _train_steps(trainer, a.steps, a.warmup)
    steps = -(-len(rows) // a.batch)
    timed_eval = _sample_evaluation(trainer, dsd, a.eval_users)
    return {"rows": len(rows), "seconds_per_step": per_step, "steps_per_epoch": steps, "epoch_minutes": steps * per_step / 60,
            **timed_eval}


def job_itemid(a) -> dict:
    """Item-ID LLaMA (64 x 2, hierarchical softmax over sqrt(N) k-means clusters of random 64-d item
    vectors) on the prefix rows, then evaluation (exact top-k over the catalogue) on a user sample."""
    import math

    from hf_genrec.data import load_genrec_dataset
    from hf_genrec.models.backbone import small_llama_config
    from hf_genrec.models.itemid import ItemIDLlamaConfig, ItemIDLlamaForRecommendation
    from hf_genrec.models.itemid.configuration_itemid import DEFAULT_BACKBONE
    from hf_genrec.training import RecommenderTrainer, RecommenderTrainingArguments

    dsd = load_genrec_dataset(a.prepared)
    backbone = small_llama_config(64, 2, 4, DEFAULT_BACKBONE["vocab_size"])
    config = ItemIDLlamaConfig(backbone_config=backbone, num_items=dsd.num_items,
                               item_embedding_dim=64, num_clusters=round(math.sqrt(dsd.num_items)), max_history=50)
    model = ItemIDLlamaForRecommendation(config)
    model.set_item_embeddings(_random_embeddings(dsd.num_items))
    start = time.perf_counter()
    model.recluster(seed=0)
    recluster_minutes = (time.perf_counter() - start) / 60
    model.set_item_map(dsd.item_map)
    trainer = RecommenderTrainer(model=model, args=_args(a, RecommenderTrainingArguments, max_history=50),
                                 train_dataset=dsd["train"])
    per_step = _train_steps(trainer, a.steps, a.warmup)
    steps = -(-len(dsd["train"]) // a.batch)
    timed_eval = _sample_evaluation(trainer, dsd, a.eval_users)
    return {"rows": len(dsd["train"]), "recluster_minutes": recluster_minutes, "seconds_per_step": per_step,
            "steps_per_epoch": steps, "epoch_minutes": steps * per_step / 60, **timed_eval}


JOBS = {
    "prepare": job_prepare, "prepare_old": job_prepare_old, "bare_polars": job_bare_polars,
    "sasrec_train": job_sasrec_train, "sasrec_eval": job_sasrec_eval, "etegrec": job_etegrec, "hllm": job_hllm,
    "itemid": job_itemid,
}


def run_job(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("name", choices=sorted(JOBS))
    for flag in ("--data", "--prepared", "--work", "--old_code"):
        p.add_argument(flag)
    for flag, default in (("--steps", 20), ("--warmup", 3), ("--batch", 256), ("--eval_batch", 256), ("--eval_users", 1000),
                          ("--rqvae_epochs", 5), ("--threads", 2)):
        p.add_argument(flag, type=int, default=default)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    start = time.perf_counter()
    out = JOBS[a.name](a)
    out.update(seconds=time.perf_counter() - start, peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    print("RESULT " + json.dumps(out), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="folder for the generated logs, prepared folders and runs")
    p.add_argument("--sizes", default="1M,5M,25M")
    p.add_argument("--jobs", default="prepare,bare_polars,prepare_old,sasrec_train,sasrec_eval,etegrec,hllm,itemid")
    p.add_argument("--out", default=os.path.join(HERE, "results", "scale-cpu.json"))
    p.add_argument("--old_code", default=None, help="an older checkout to measure `prepare_old` with")
    p.add_argument("--old_max", default="1M", help="largest size the older code is run on (it needs ~3.5 KB an interaction)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    results = json.load(open(a.out)) if os.path.exists(a.out) else {}
    results.setdefault("runs", {})
    import platform

    import polars
    import torch

    results.setdefault("calls", []).append({
        "command": "python benchmarks/scale.py " + " ".join(sys.argv[1:]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
                   f"{platform.machine()}, CPU only",
        "versions": {"torch": torch.__version__, "polars": polars.__version__, "python": platform.python_version()},
        "threads": a.threads, "steps_timed": a.steps, "warmup_steps": 3, "batch": 256,
    })
    for size in a.sizes.split(","):
        n = SIZES[size]
        # Named as MovieLens names it, so the preparation reads it as that raw dump.
        data, prepared = os.path.join(a.work, size, "ratings.csv"), os.path.join(a.work, size, "prepared")
        if not os.path.exists(data):
            os.makedirs(os.path.dirname(data), exist_ok=True)
            generate(n, data)
        for job in a.jobs.split(","):
            key = f"{size}/{job}"
            if key in results["runs"]:
                continue
            if job == "prepare_old" and (not a.old_code or n > SIZES[a.old_max]):
                continue
            cmd = [sys.executable, os.path.abspath(__file__), "job", job, "--data", data, "--prepared", prepared,
                   "--work", a.work, "--threads", str(a.threads), "--steps", str(a.steps)]
            if job == "prepare_old":
                cmd += ["--old_code", a.old_code]
            env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not lines:
                print(f"{key}: failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            results["runs"][key] = json.loads(lines[-1][len("RESULT "):]) | {"interactions_generated": n}
            print(key, json.dumps(results["runs"][key]), flush=True)
            with open(a.out + ".tmp", "w") as f:
                json.dump(results, f, indent=1)
            os.replace(a.out + ".tmp", a.out)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "job":
        run_job(sys.argv[2:])
    else:
        main()
