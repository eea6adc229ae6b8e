"""A two-level softmax over items: first a cluster, then an item inside it.

``log p(item | q) = log p(cluster(item) | q) + log p(item | cluster, q)``, both exact softmaxes, so
the item probabilities sum to 1 over the whole catalogue. Training one target costs
O(#clusters + largest cluster) instead of O(#items). Item scores inside a cluster are dot products
with the (tied) item embeddings plus a per-item bias; cluster scores use their own embeddings.

Layout (buffers, saved with the model): ``item_cluster`` ``[N + 1]`` (row 0 = padding, -1),
``item_slot`` ``[N + 1]`` (position inside its cluster), ``cluster_items`` ``[C, S]`` (item id per
slot, 0 = empty slot; ``S`` = largest cluster).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...utils.errors import InputError
from ...utils.kmeans import kmeans, nearest_centroid


def balanced_assignment(x: torch.Tensor, centroids: torch.Tensor, capacity: int) -> torch.Tensor:
    """Nearest-centroid assignment with at most ``capacity`` points per cluster: points are placed
    in order of how clearly they belong (smallest distance first); a point whose nearest cluster is
    full goes to its nearest cluster with room. Bounds the largest cluster, hence the head's cost."""
    n, k = x.shape[0], centroids.shape[0]
    if capacity * k < n:
        raise InputError(f"{k} clusters of at most {capacity} items cannot hold {n} items")
    assign = nearest_centroid(x, centroids)
    counts = torch.bincount(assign, minlength=k)
    if counts.max() <= capacity:
        return assign
    # Only the points of over-full clusters move; the closest `capacity` of each stay.
    dist = (x - centroids[assign]).pow(2).sum(1)
    order = torch.argsort(dist)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(n)
    final = assign.clone()
    kept = torch.zeros(k, dtype=torch.long)
    movers = []
    for i in order.tolist():
        c = int(assign[i])
        if kept[c] < capacity:
            kept[c] += 1
        else:
            movers.append(i)
    for start in range(0, len(movers), 4096):
        idx = torch.tensor(movers[start : start + 4096])
        prefs = torch.cdist(x[idx].float(), centroids.float()).argsort(1)
        for row, i in enumerate(idx.tolist()):
            for c in prefs[row].tolist():
                if kept[c] < capacity:
                    kept[c] += 1
                    final[i] = c
                    break
    return final


class HierarchicalSoftmax(nn.Module):
    """The two-level output layer. ``item_weight`` (the item embedding table ``[N + 1, D]``, row 0 =
    padding) is passed in at call time so it can be tied to the model's input item embeddings."""

    def __init__(self, num_items: int, dim: int, num_clusters: int, max_cluster_size: int):
        super().__init__()
        if not 1 <= num_clusters <= max(num_items, 1):
            raise InputError(f"num_clusters must be in 1..{num_items}, got {num_clusters}")
        self.num_items, self.num_clusters = num_items, num_clusters
        self.cluster_embeddings = nn.Embedding(num_clusters, dim)
        self.cluster_bias = nn.Parameter(torch.zeros(num_clusters))
        self.item_bias = nn.Parameter(torch.zeros(num_items + 1))
        self.register_buffer("item_cluster", torch.full((num_items + 1,), -1, dtype=torch.long))
        self.register_buffer("item_slot", torch.full((num_items + 1,), -1, dtype=torch.long))
        self.register_buffer("cluster_items", torch.zeros(num_clusters, max_cluster_size, dtype=torch.long))

    # ------------------------------------------------------------------------- clustering
    @torch.no_grad()
    def set_clusters(self, assignment: torch.Tensor) -> None:
        """Install a clustering: ``assignment`` ``[N]`` (cluster of item i + 1). Every cluster must be
        non-empty and no larger than the ``cluster_items`` width."""
        assignment = torch.as_tensor(assignment, dtype=torch.long).cpu()
        if assignment.shape != (self.num_items,):
            raise InputError(f"assignment must be [{self.num_items}], got {tuple(assignment.shape)}")
        if assignment.min() < 0 or assignment.max() >= self.num_clusters:
            raise InputError(f"cluster ids must be in 0..{self.num_clusters - 1}")
        sizes = torch.bincount(assignment, minlength=self.num_clusters)
        width = self.cluster_items.shape[1]
        if sizes.min() == 0:
            raise InputError(f"{int((sizes == 0).sum())} cluster(s) are empty; use fewer clusters")
        if sizes.max() > width:
            raise InputError(f"a cluster holds {int(sizes.max())} items but the head has room for {width}")
        order = torch.argsort(assignment, stable=True)
        starts = torch.cumsum(sizes, 0) - sizes
        slots = torch.empty_like(assignment)
        slots[order] = torch.arange(self.num_items) - starts[assignment[order]]
        table = torch.zeros(self.num_clusters, width, dtype=torch.long)
        table[assignment, slots] = torch.arange(1, self.num_items + 1)
        device = self.item_cluster.device
        self.item_cluster.copy_(torch.cat([torch.tensor([-1]), assignment]).to(device))
        self.item_slot.copy_(torch.cat([torch.tensor([-1]), slots]).to(device))
        self.cluster_items.copy_(table.to(device))

    @torch.no_grad()
    def cluster_from_embeddings(self, item_embeddings: torch.Tensor, iters: int = 25, seed: int = 0) -> None:
        """k-means over ``item_embeddings`` ``[N, D]`` with capacity-bounded assignment (the width of
        ``cluster_items``); also sets the cluster embeddings to the centroids."""
        gen = torch.Generator().manual_seed(seed)
        x = item_embeddings.detach().float().cpu()
        centroids = kmeans(x, self.num_clusters, iters=iters, generator=gen)
        assign = balanced_assignment(x, centroids, self.cluster_items.shape[1])
        self.set_clusters(assign)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        centroids = sums / torch.bincount(assign, minlength=self.num_clusters).clamp_min(1).unsqueeze(1).float()
        self.cluster_embeddings.weight.copy_(centroids.to(self.cluster_embeddings.weight))

    @torch.no_grad()
    def append_items(self, rows: torch.Tensor, bias: torch.Tensor, item_weight: torch.Tensor) -> None:
        """Place new items ``N+1 .. N+K`` (their table rows ``[K, D]`` and biases ``[K]``) in the cluster
        whose mean item row (over ``item_weight`` ``[N + 1, D]``, the current table) is nearest, among
        clusters with a free slot; when every cluster is full, each gets one more slot. The known
        items keep their cluster and slot. The caller grows the item table itself."""
        c = self.num_clusters
        known = self.item_cluster[1:].cpu()
        weight = item_weight[1:].detach().float().cpu()
        sums = torch.zeros(c, weight.shape[1]).index_add_(0, known, weight)
        centroids = sums / torch.bincount(known, minlength=c).clamp_min(1).unsqueeze(1).float()
        table = self.cluster_items.cpu().clone()
        sizes = (table > 0).sum(1)
        prefs = torch.cdist(rows.detach().float().cpu(), centroids).argsort(1)
        clusters, slots = [], []
        for i, order in enumerate(prefs.tolist(), start=self.num_items + 1):
            if bool((sizes >= table.shape[1]).all()):
                table = F.pad(table, (0, 1))
            cluster = next(k for k in order if sizes[k] < table.shape[1])
            clusters.append(cluster)
            slots.append(int(sizes[cluster]))
            table[cluster, sizes[cluster]] = i
            sizes[cluster] += 1
        device = self.item_cluster.device
        self.item_cluster = torch.cat([self.item_cluster, torch.tensor(clusters, device=device)])
        self.item_slot = torch.cat([self.item_slot, torch.tensor(slots, device=device)])
        self.cluster_items = table.to(device)
        self.item_bias = nn.Parameter(
            torch.cat([self.item_bias.detach(), bias.to(self.item_bias)]), requires_grad=self.item_bias.requires_grad
        )
        self.num_items += len(rows)

    @staticmethod
    def width_for(num_items: int, num_clusters: int, slack: float = 1.5) -> int:
        """Room per cluster: the balanced size times ``slack``."""
        return max(1, math.ceil(slack * num_items / num_clusters))

    # ----------------------------------------------------------------------------- scores
    def cluster_log_probs(self, query: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` -> ``[B, C]`` log p(cluster | query)."""
        return torch.log_softmax((query @ self.cluster_embeddings.weight.t() + self.cluster_bias).float(), -1)

    def within_log_probs(self, query: torch.Tensor, clusters: torch.Tensor, item_weight: torch.Tensor) -> torch.Tensor:
        """log p(item | cluster, query) for every slot of ``clusters`` ``[B, M]`` -> ``[B, M, S]``
        (empty slots -inf)."""
        items = self.cluster_items[clusters]  # [B, M, S]
        if items.shape[1] * items.shape[2] * 4 >= self.num_items:
            # Most of the catalogue: one [B, N + 1] matmul beats gathering [B, M, S, D] item vectors.
            flat = query @ item_weight.t()
            logits = flat.gather(1, items.flatten(1)).view(items.shape)
        else:
            # F.embedding, not fancy indexing: its backward accumulates rows with a sort instead of a
            # serial index_put, several times faster on CPU for the [B, M, S] rows a batch touches.
            logits = torch.einsum("bd,bmsd->bms", query, F.embedding(items, item_weight))
        logits = logits + self.item_bias[items]
        return torch.log_softmax(logits.float().masked_fill(items == 0, float("-inf")), -1)

    def log_prob(self, query: torch.Tensor, targets: torch.Tensor, item_weight: torch.Tensor) -> torch.Tensor:
        """Exact log p(target | query) ``[B]``, at O(C + S) per row."""
        cluster = self.item_cluster[targets]
        within = self.within_log_probs(query, cluster.unsqueeze(1), item_weight)[:, 0]  # [B, S]
        return self.cluster_log_probs(query).gather(1, cluster.unsqueeze(1)).squeeze(1) + within.gather(
            1, self.item_slot[targets].unsqueeze(1)
        ).squeeze(1)

    def all_log_probs(self, query: torch.Tensor, item_weight: torch.Tensor) -> torch.Tensor:
        """Exact log p(item | query) of every item, ``[B, N + 1]`` (column 0 = padding, -inf)."""
        bsz = query.shape[0]
        clusters = torch.arange(self.num_clusters, device=query.device).expand(bsz, -1)
        joint = self.cluster_log_probs(query).unsqueeze(-1) + self.within_log_probs(query, clusters, item_weight)
        out = torch.full((bsz, self.num_items + 1), float("-inf"), device=query.device)
        items = self.cluster_items.flatten()
        keep = items > 0
        out[:, items[keep]] = joint.flatten(1)[:, keep]
        return out

    def top_k(
        self,
        query: torch.Tensor,
        k: int,
        item_weight: torch.Tensor,
        num_clusters: int | None = None,
        excluded: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Best ``k`` items ``([B, k] ids, [B, k] log-probs)``, never one that ``excluded`` ``[B, N + 1]``
        (bool) marks for that row.

        ``num_clusters=None``: exact. Clusters are expanded best first; since log p(item) <=
        log p(its cluster), a row is certified once its k-th score beats the best unexpanded
        cluster, and only uncertified rows expand more (doubling). ``num_clusters=m``: the fast
        path, only the best ``m`` clusters (its recall against the exact ranking is measured by
        ``benchmarks/hsm_bench.py``). Excluded items score -inf inside their cluster, which only
        lowers scores, so the cluster bound still certifies the exact top-k of what remains.
        """
        cluster_lp = self.cluster_log_probs(query)
        order = cluster_lp.argsort(1, descending=True)
        m = num_clusters or max(1, math.ceil(k / max(1, self.cluster_items.shape[1] // 2)))
        ids = torch.full((query.shape[0], k), -1, dtype=torch.long, device=query.device)
        scores = torch.full((query.shape[0], k), float("-inf"), device=query.device)
        todo = torch.arange(query.shape[0], device=query.device)
        while todo.numel():
            m = min(m, self.num_clusters)
            chosen = order[todo, :m]
            joint = cluster_lp[todo].gather(1, chosen).unsqueeze(-1) + self.within_log_probs(query[todo], chosen, item_weight)
            if excluded is not None:
                slots = self.cluster_items[chosen]  # [b, m, S] item ids (0 = empty slot)
                joint = joint.masked_fill(excluded[todo].gather(1, slots.flatten(1)).view_as(slots), float("-inf"))
            flat = joint.flatten(1)
            top = flat.topk(min(k, flat.shape[1]), 1)
            items = self.cluster_items[chosen].flatten(1).gather(1, top.indices)
            width = top.values.shape[1]
            ids[todo, :width] = torch.where(torch.isfinite(top.values), items, torch.full_like(items, -1))
            scores[todo, :width] = top.values
            if num_clusters is not None or m == self.num_clusters:
                break
            bound = cluster_lp[todo].gather(1, order[todo, m : m + 1]).squeeze(1)
            todo = todo[scores[todo, k - 1] < bound]
            m *= 2
        return ids, scores

    def full_softmax_log_probs(self, query: torch.Tensor, item_weight: torch.Tensor) -> torch.Tensor:
        """The flat alternative on the same parameters: ``[B, N + 1]`` log-softmax over every item."""
        logits = (query @ item_weight[1:].t() + self.item_bias[1:]).float()
        return F.pad(torch.log_softmax(logits, -1), (1, 0), value=float("-inf"))
