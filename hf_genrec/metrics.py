"""Leave-one-out ranking metrics (one relevant item per user), implemented once and shared by
every model family and the Trainer.

``ranked`` holds each user's recommended item ids best first, shape ``[B, K]`` (pad with -1
when fewer than K items were returned); ``targets`` holds the held-out item, shape ``[B]``.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence

import torch

from .utils.errors import InputError

# The one default list of cutoffs (Trainer evaluation, SASRec, benchmarks).
DEFAULT_KS = (1, 5, 10, 20)


def target_ranks(ranked: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target in its row, or ``ranked.shape[1]`` (a miss) when absent. ``[B]``."""
    if ranked.dim() != 2 or targets.dim() != 1 or ranked.shape[0] != targets.shape[0]:
        raise ValueError(f"expected ranked [B, K] and targets [B], got {tuple(ranked.shape)} and {tuple(targets.shape)}")
    hits = ranked == targets.to(ranked.device).unsqueeze(1)
    first = torch.where(hits.any(1), hits.float().argmax(1), torch.full_like(targets, ranked.shape[1]).to(ranked.device))
    return first.long()


def ranking_metrics_from_ranks(ranks: torch.Tensor, ks: Sequence[int] = DEFAULT_KS, extended: bool = False) -> dict[str, float]:
    """Mean ``recall@k`` and ``ndcg@k`` (k in ``ks``) from 0-based target ranks ``[B]``; with
    ``extended`` also ``hr@k`` (= recall@k with one relevant item) and ``mrr@k``.

    With one relevant item the ideal DCG is 1, so NDCG@k = 1 / log2(rank + 2) for a hit, and the
    reciprocal rank is 1 / (rank + 1).
    """
    if ranks.numel() == 0:
        raise InputError("no users to evaluate")
    if not ks or min(ks) < 1:
        raise InputError(f"cutoffs must be positive, got {list(ks)}")
    ranks = ranks.double()
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks < k
        out[f"recall@{k}"] = hit.double().mean().item()
        out[f"ndcg@{k}"] = torch.where(hit, 1.0 / torch.log2(ranks + 2.0), torch.zeros_like(ranks)).mean().item()
        if extended:
            out[f"hr@{k}"] = out[f"recall@{k}"]
            out[f"mrr@{k}"] = torch.where(hit, 1.0 / (ranks + 1.0), torch.zeros_like(ranks)).mean().item()
    return out


def ranking_metrics(ranked: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Recall@k and NDCG@k for top-K lists. ``max(ks)`` must not exceed K."""
    if max(ks) > ranked.shape[1]:
        raise InputError(f"asked for metrics @{max(ks)} but only {ranked.shape[1]} items were ranked")
    return ranking_metrics_from_ranks(target_ranks(ranked, targets), ks)


def ranks_from_scores(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target under full-catalogue scores ``[B, N+1]`` (column 0 = padding,
    never ranked). Ties count against the target (pessimistic), so a constant model scores 0.

    A target scored -inf (an item the ranking excluded, e.g. one already in the history) is a
    miss: rank ``N``. NaN scores raise ``ValueError`` (a NaN compares false with everything and
    would otherwise rank every target first).
    """
    if torch.isnan(scores[:, 1:]).any():
        bad = int(torch.isnan(scores[:, 1:]).any(1).nonzero()[0])
        raise ValueError(f"scores contain NaN (row {bad}); the model has diverged or was fed bad input")
    target_score = scores.gather(1, targets.unsqueeze(1))
    better = ((scores[:, 1:] >= target_score).sum(1) - 1).clamp_min(0)
    excluded = target_score.squeeze(1) == float("-inf")
    return torch.where(excluded, torch.full_like(better, scores.shape[1] - 1), better)


def ndcg_single(rank: int, k: int) -> float:
    """NDCG@k of one user whose target sits at 0-based ``rank`` (for tests and docs)."""
    return 1.0 / math.log2(rank + 2) if rank < k else 0.0


#: the ``evaluate`` module of these metrics: ``evaluate.load(RANKING_METRIC_PATH)``
RANKING_METRIC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "evaluate_metrics", "ranking")


def load_ranking_metric(**kwargs):
    """``evaluate.load`` of the ranking metrics (Recall@K, NDCG@K, HR@K, MRR@K from target ranks),
    kept in memory (no cache files, so processes of a launch never share one). ``kwargs`` go to
    ``evaluate.load``; without any, one loaded module is shared (loading takes most of a second)."""
    if not kwargs:
        return _default_ranking_metric()
    import evaluate

    return evaluate.load(RANKING_METRIC_PATH, **{"keep_in_memory": True, **kwargs})


@functools.cache
def _default_ranking_metric():
    import evaluate

    return evaluate.load(RANKING_METRIC_PATH, keep_in_memory=True)


def ranking_metrics_for_trainer(ks: Sequence[int] = DEFAULT_KS):
    """``compute_metrics`` for a ``Trainer`` whose predictions are 0-based target ranks ``[B]``
    (what :class:`~hf_genrec.training.RecommenderTrainer` and :func:`ranks_from_scores` produce),
    through the ``evaluate`` module (:func:`load_ranking_metric`)."""
    metric = load_ranking_metric()

    def compute(pred) -> dict[str, float]:
        ranks = torch.as_tensor(pred.predictions).reshape(-1)
        if ranks.numel() == 0:
            raise InputError("no users to evaluate")
        return metric.compute(ranks=ranks.tolist(), ks=list(ks))

    return compute
