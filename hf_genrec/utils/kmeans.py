"""Plain Lloyd k-means in torch (RQ-VAE codebook initialisation, item clusters of a hierarchical softmax)."""

from __future__ import annotations

import torch


@torch.no_grad()
def kmeans(x: torch.Tensor, k: int, iters: int = 50, generator: torch.Generator | None = None) -> torch.Tensor:
    """Cluster ``x`` ``[N, D]`` into ``k`` centroids ``[k, D]``.

    Starts from ``k`` distinct random points (with replacement when ``N < k``); a centroid
    that loses all its points is re-seeded from a random point so no code starts dead.
    """
    n = x.shape[0]
    if n == 0:
        raise ValueError("k-means needs at least one point")
    x = x.float()
    idx = torch.randperm(n, generator=generator)[:k] if n >= k else torch.randint(n, (k,), generator=generator)
    centroids = x[idx].clone()
    for _ in range(iters):
        assign = nearest_centroid(x, centroids)
        counts = torch.bincount(assign, minlength=k).float()
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        empty = counts == 0
        centroids = torch.where(empty.unsqueeze(1), centroids, sums / counts.clamp_min(1).unsqueeze(1))
        if empty.any():
            centroids[empty] = x[torch.randint(n, (int(empty.sum()),), generator=generator)]
    return centroids


@torch.no_grad()
def nearest_centroid(x: torch.Tensor, centroids: torch.Tensor, chunk: int = 32768) -> torch.Tensor:
    """Index of the nearest centroid for each row of ``x`` ``[N, D]`` -> ``[N]``, in chunks so that
    a million points never materialise an ``N x k`` distance matrix at once."""
    return torch.cat([torch.cdist(x[i : i + chunk].float(), centroids.float()).argmin(1) for i in range(0, x.shape[0], chunk)])
