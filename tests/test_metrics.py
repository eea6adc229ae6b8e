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


def test_the_evaluate_module_gives_hand_computed_values_and_composes():
    import evaluate

    from hf_genrec.metrics import RANKING_METRIC_PATH, load_ranking_metric

    ranking = load_ranking_metric()
    out = ranking.compute(ranks=[0, 3, 25], ks=[1, 10])
    assert out == pytest.approx({
        "recall@1": 1 / 3, "ndcg@1": 1 / 3, "hr@1": 1 / 3, "mrr@1": 1 / 3,
        "recall@10": 2 / 3, "ndcg@10": (1 + 1 / math.log2(5)) / 3, "hr@10": 2 / 3, "mrr@10": (1 + 1 / 4) / 3,
    })
    # add_batch accumulates across calls, as with any evaluate metric; a fresh load by path is the same module
    fresh = evaluate.load(RANKING_METRIC_PATH, keep_in_memory=True)
    fresh.add_batch(ranks=[0, 3])
    fresh.add_batch(ranks=[25])
    assert fresh.compute(ks=[1, 10]) == pytest.approx(out)
    combined = evaluate.combine([load_ranking_metric()]).compute(ranks=[1, 30], ks=[2])
    assert combined == pytest.approx({"recall@2": 0.5, "ndcg@2": 0.5 / math.log2(3), "hr@2": 0.5, "mrr@2": 0.25})
    with pytest.raises(ValueError, match="cutoffs must be positive"):
        ranking.compute(ranks=[0], ks=[0])


def test_the_trainers_compute_metrics_go_through_the_evaluate_module():
    from transformers import EvalPrediction

    from hf_genrec.metrics import ranking_metrics_for_trainer

    ranks = torch.tensor([0, 2, 9, 40])
    out = ranking_metrics_for_trainer([5])(EvalPrediction(predictions=ranks.numpy(), label_ids=None))
    assert out == pytest.approx({"recall@5": 0.5, "ndcg@5": (1 + 1 / math.log2(4)) / 4, "hr@5": 0.5, "mrr@5": (1 + 1 / 3) / 4})
