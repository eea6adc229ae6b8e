import math

import pytest
import torch

from hf_genrec.metrics import ndcg_single, ranking_metrics, ranks_from_scores, target_ranks


def test_metrics_against_hand_computed_values():
    ranked = torch.tensor([[5, 3, 9, 1, 2, 7, 8, 4, 6, 10], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]])
    targets = torch.tensor([5, 7, 1])  # ranks 0, 6, miss
    m = ranking_metrics(ranked, targets, ks=(1, 5, 10))
    assert m["recall@1"] == pytest.approx(1 / 3)
    assert m["recall@5"] == pytest.approx(1 / 3)
    assert m["recall@10"] == pytest.approx(2 / 3)
    assert m["ndcg@1"] == pytest.approx(1 / 3)
    assert m["ndcg@5"] == pytest.approx(1 / 3)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(8)) / 3)
    # Recall and NDCG never decrease with k; NDCG <= recall.
    assert m["recall@1"] <= m["recall@5"] <= m["recall@10"] and m["ndcg@10"] <= m["recall@10"]


def test_target_ranks_and_padding():
    ranked = torch.tensor([[4, -1, -1], [-1, -1, -1]])
    assert target_ranks(ranked, torch.tensor([4, 2])).tolist() == [0, 3]
    with pytest.raises(ValueError, match="only 3 items"):
        ranking_metrics(ranked, torch.tensor([4, 2]), ks=(5,))


def test_ranks_from_scores_pessimistic_ties_and_padding_column():
    scores = torch.tensor([[9.0, 0.5, 0.2, 0.9], [9.0, 1.0, 1.0, 1.0]])  # column 0 = padding, ignored
    assert ranks_from_scores(scores, torch.tensor([1, 2])).tolist() == [1, 2]
    assert ndcg_single(0, 10) == 1.0 and ndcg_single(10, 10) == 0.0
