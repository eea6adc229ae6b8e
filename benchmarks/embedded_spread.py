"""How much the embedded default's test figures move with the seed and the torch thread count.

    python benchmarks/embedded_spread.py --seeds 42 43 44 45 46 --threads 1 2 --out outputs/spread \\
        --json benchmarks/results/embedded-default-spread-cpu.json

Each run is ``hf-genrec train etegrec --config embedded --seed S`` in its own process with
``OMP_NUM_THREADS=T`` (torch's intra-op threads), so it is exactly the README's command apart from
the seed and the thread count. A finished run (its ``test_metrics.json``) is reused, so the script
resumes after a kill. ``--parallel N`` runs N one-thread runs at a time (runs with more threads run
alone, so their minutes are not inflated by each other). Prints and writes per-run figures and the
mean ± sample std of NDCG@10 / Recall@10 under both protocols, per thread count and over all runs,
and each run's validation NDCG@10 after every evaluated epoch of both training stages (alternating,
then fine-tuning on the frozen codes), read from the stages' last checkpoints. The ``earlier`` entry
of an existing ``--json`` file (the default measured under earlier presets) is kept.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

METRICS = ("all_items/recall@10", "all_items/ndcg@10", "exclude_seen/recall@10", "exclude_seen/ndcg@10")


def run_one(out: str, seed: int, threads: int) -> dict:
    work = os.path.join(out, f"threads{threads}-seed{seed}")
    done = os.path.join(work, "test_metrics.json")
    minutes = None
    if not os.path.exists(done):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        cmd = [sys.executable, "-m", "hf_genrec", "train", "etegrec", "--config", "embedded", "--seed", str(seed),
               "--output_dir", work, "--disable_tqdm", "true"]
        os.makedirs(work, exist_ok=True)
        start = time.time()
        with open(os.path.join(work, "run.log"), "w") as log:
            subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
        minutes = (time.time() - start) / 60
        with open(os.path.join(work, "minutes.json"), "w") as f:
            json.dump({"minutes": minutes}, f)
    elif os.path.exists(os.path.join(work, "minutes.json")):
        with open(os.path.join(work, "minutes.json")) as f:
            minutes = json.load(f)["minutes"]
    with open(done) as f:
        metrics = json.load(f)
    curves = {"alternating": stage_curve(work), "finetune": stage_curve(os.path.join(work, "finetune"))}
    return {"seed": seed, "threads": threads, "minutes": minutes, **{m: metrics[m] for m in METRICS},
            "validation_ndcg@10": curves}


def stage_curve(stage_dir: str) -> list[list[float]]:
    """``[[epoch, validation ndcg@10], ...]`` of the stage in ``stage_dir`` (its latest checkpoint's log)."""
    checkpoints = glob.glob(os.path.join(stage_dir, "checkpoint-*", "trainer_state.json"))
    if not checkpoints:
        return []
    latest = max(checkpoints, key=lambda path: int(path.split("checkpoint-")[-1].split(os.sep)[0]))
    with open(latest) as f:
        history = json.load(f)["log_history"]
    return [[h["epoch"], h["eval_ndcg@10"]] for h in history if "eval_ndcg@10" in h]


def summary(runs: list[dict]) -> dict:
    out = {"runs": len(runs)}
    for m in METRICS:
        values = [r[m] for r in runs]
        out[m] = {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                  "min": min(values), "max": max(values)}
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44, 45, 46])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--parallel", type=int, default=1, help="one-thread runs at a time")
    p.add_argument("--out", default="outputs/spread")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    runs = []
    for threads in a.threads:
        workers = a.parallel if threads == 1 else 1
        with ThreadPoolExecutor(workers) as pool:
            runs += list(pool.map(run_one, [a.out] * len(a.seeds), a.seeds, [threads] * len(a.seeds)))
    import torch
    import transformers

    from hf_genrec.recipes.config import resolve_config

    _, preset = resolve_config("etegrec", "embedded")
    report = {
        "what": "the embedded default (generated data, 1,000 users, 300 items; hf-genrec train etegrec --config embedded), "
                "test split, leave-one-out, full ranking, both protocols",
        "protocol": "leave-one-out, full ranking over 300 items, 1,000 test users; all_items: every item ranked; "
                    "exclude_seen: each user's history left out",
        "commands": ["python benchmarks/embedded_spread.py " + " ".join(sys.argv[1:] if argv is None else argv)],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "software": f"torch {torch.__version__}, transformers {transformers.__version__}",
        "conditions": f"one-thread runs {a.parallel} at a time (one core each); runs with more threads one at a time",
        "preset": preset,
        "runs": runs,
        "by_threads": {str(t): summary([r for r in runs if r["threads"] == t]) for t in a.threads},
        "all": summary(runs),
    }
    for key, s in [*report["by_threads"].items(), ("all", report["all"])]:
        label = f"{key} thread(s)" if key != "all" else "all runs"
        print(f"{label:>12}: " + "  ".join(f"{m} {s[m]['mean']:.3f} ± {s[m]['std']:.3f}" for m in METRICS))
    if a.json:
        if os.path.exists(a.json):  # earlier measurements of the default (other presets) stay in the file
            with open(a.json) as f:
                earlier = json.load(f).get("earlier")
            if earlier:
                report["earlier"] = earlier
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
