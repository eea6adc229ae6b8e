"""The hierarchical softmax head against the full softmax, at catalogue sizes up to a million items.

    python benchmarks/hsm_bench.py                       # 12k, 100k and 1M items
    python benchmarks/hsm_bench.py --items 12101 --json out.json

For each catalogue size N (item table N x 384, 4 sqrt(N) clusters from k-means, capacity 1.5x the
balanced size), on the same item table and the same batch of 256 queries:
- training step (forward + backward of the mean negative log-likelihood, gradients into the item
  table, biases, cluster embeddings and the queries): queries/s (one query = one predicted item
  token) and the extra peak memory of the step (RSS, measured in a fresh process per head);
- top-10 latency for 1 and 64 queries: full softmax (matmul + topk), the hierarchical head's exact
  certified search, and its fast path over the best m clusters;
- recall@10 of the fast path against the exact hierarchical ranking.
The queries are those of a trained model: the head's cluster embeddings and biases are first
trained (200 steps) on queries near their target item's embedding (q = e_target + noise), so the
cluster distribution is as peaked as a trained model's; with untrained clusters every cluster
looks alike and no fast path can work. Ratios are measured side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import platform
import resource
import time

import torch

from hf_genrec.models.itemid import HierarchicalSoftmax, balanced_assignment
from hf_genrec.utils.kmeans import kmeans

DIM = 384


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def reset_peak_rss() -> None:
    """Linux: make VmHWM (the peak RSS) start again from the current RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


CLUSTERS_PER_SQRT_N = 4.0


def build(n: int, seed: int = 0) -> tuple[torch.Tensor, HierarchicalSoftmax]:
    gen = torch.Generator().manual_seed(seed)
    # Items in topical groups (as real catalogues are), unit-ish norm.
    topics = torch.randn(max(2, int(math.sqrt(n))), DIM, generator=gen)
    table = topics[torch.randint(len(topics), (n,), generator=gen)] + 0.7 * torch.randn(n, DIM, generator=gen)
    table = torch.cat([torch.zeros(1, DIM), table / math.sqrt(DIM) * 3])
    c = max(1, round(CLUSTERS_PER_SQRT_N * math.sqrt(n)))
    head = HierarchicalSoftmax(n, DIM, c, HierarchicalSoftmax.width_for(n, c))
    sample = table[1:][torch.randperm(n, generator=gen)[:50_000]]
    centroids = kmeans(sample, c, iters=10, generator=gen)
    assign = balanced_assignment(table[1:], centroids, head.cluster_items.shape[1])
    head.set_clusters(assign)
    with torch.no_grad():
        head.cluster_embeddings.weight.copy_(
            torch.zeros(c, DIM).index_add_(0, assign, table[1:]) / torch.bincount(assign, minlength=c).unsqueeze(1)
        )
    return table, head


def queries(table: torch.Tensor, b: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    targets = torch.randint(1, table.shape[0], (b,), generator=gen)
    return table[targets] + 0.3 * table[1:].std() * torch.randn(b, DIM, generator=gen), targets


def train_clusters(table, head, steps: int = 200) -> None:
    gen = torch.Generator().manual_seed(1)
    params = [head.cluster_embeddings.weight, head.cluster_bias, head.item_bias]
    opt = torch.optim.Adam(params, lr=1e-2)
    for _ in range(steps):
        q, t = queries(table, 256, gen)
        loss = -head.log_prob(q, t, table).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def step_worker(n: int, head_kind: str, steps: int, clusters_per_sqrt_n: float, out) -> None:
    global CLUSTERS_PER_SQRT_N
    CLUSTERS_PER_SQRT_N = clusters_per_sqrt_n  # a spawned child starts from the module default
    table, head = build(n)
    weight = torch.nn.Parameter(table)
    gen = torch.Generator().manual_seed(2)
    q, t = queries(table, 256, gen)
    q.requires_grad_(True)

    def step():
        lp = head.log_prob(q, t, weight) if head_kind == "hierarchical" else head.full_softmax_log_probs(q, weight).gather(
            1, t.unsqueeze(1)
        ).squeeze(1)
        (-lp.mean()).backward()
        weight.grad = q.grad = None
        for p in head.parameters():
            p.grad = None

    # Peak over the first (warm-up) step too: afterwards the allocator reuses what it kept, so the
    # timed steps alone would show no growth.
    reset_peak_rss()
    base = rss_mb()
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    secs = (time.perf_counter() - start) / steps
    peak = peak_rss_mb()
    out.put({"queries_per_s": round(256 / secs, 1), "ms_per_step": round(1000 * secs, 2), "extra_peak_mb": round(peak - base, 1)})


def measure_step(n: int, head_kind: str, steps: int) -> dict:
    ctx = mp.get_context("spawn")  # fork after torch started its OpenMP pool deadlocks the child
    out = ctx.Queue()
    proc = ctx.Process(target=step_worker, args=(n, head_kind, steps, CLUSTERS_PER_SQRT_N, out))
    proc.start()
    result = out.get()
    proc.join()
    return result


def timed(fn, repeat: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return 1000 * (time.perf_counter() - start) / repeat


@torch.no_grad()
def measure_topk(n: int, fast_clusters: list[int]) -> dict:
    table, head = build(n)
    with torch.enable_grad():
        train_clusters(table, head)
    gen = torch.Generator().manual_seed(3)
    res = {"clusters": head.num_clusters, "largest_cluster": int(torch.bincount(head.item_cluster[1:]).max())}
    q_eval, _ = queries(table, 512, gen)
    exact_ids, _ = head.top_k(q_eval, 10, table)
    full_ids = (head.full_softmax_log_probs(q_eval, table)).topk(10, 1).indices
    res["recall_full_vs_hierarchical_exact"] = round(
        sum(len(set(a) & set(b)) for a, b in zip(full_ids.tolist(), exact_ids.tolist())) / (10 * len(q_eval)), 4
    )
    for m in fast_clusters:
        ids, _ = head.top_k(q_eval, 10, table, num_clusters=m)
        res[f"fast_m{m}_recall@10_vs_exact"] = round(
            sum(len(set(a) & set(b)) for a, b in zip(ids.tolist(), exact_ids.tolist())) / (10 * len(q_eval)), 4
        )
    for b in (1, 64):
        q, _ = queries(table, b, gen)
        repeat = 20 if n <= 200_000 else 5
        res[f"top10_ms_full_b{b}"] = round(timed(lambda q=q: head.full_softmax_log_probs(q, table).topk(10, 1), repeat), 2)
        res[f"top10_ms_exact_b{b}"] = round(timed(lambda q=q: head.top_k(q, 10, table), repeat), 2)
        for m in fast_clusters:
            res[f"top10_ms_fast_m{m}_b{b}"] = round(timed(lambda q=q, m=m: head.top_k(q, 10, table, num_clusters=m), repeat), 2)
    return res


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", default="12101,100000,1000000")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--fast_clusters", default="1,4,16")
    p.add_argument(
        "--clusters_per_sqrt_n",
        type=float,
        default=4.0,
        help="clusters = this x sqrt(N): the cluster softmax is a compute-bound matmul, the within-cluster one a "
        "memory-bound gather, so more, smaller clusters than sqrt(N) are faster",
    )
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    fast = [int(x) for x in a.fast_clusters.split(",")]
    global CLUSTERS_PER_SQRT_N
    CLUSTERS_PER_SQRT_N = a.clusters_per_sqrt_n
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {mp.cpu_count()} cores, torch {torch.__version__}",
        "dim": DIM,
        "batch": 256,
        "clusters": f"{a.clusters_per_sqrt_n} x sqrt(N), capacity 1.5 x balanced",
        "step": "forward + backward of the head (item table, biases, cluster embeddings, queries); the optimizer "
        "update of the N x 384 item table is the same O(N) for both heads and not included",
        "sizes": {},
    }
    for n in (int(x) for x in a.items.split(",")):
        t0 = time.time()
        row = {"hierarchical_step": measure_step(n, "hierarchical", a.steps), "full_step": measure_step(n, "full", a.steps)}
        row["train_speedup"] = round(row["hierarchical_step"]["queries_per_s"] / row["full_step"]["queries_per_s"], 1)
        row.update(measure_topk(n, fast))
        row["seconds"] = round(time.time() - t0, 1)
        results["sizes"][n] = row
        print(f"{n} items: {json.dumps(row)}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
