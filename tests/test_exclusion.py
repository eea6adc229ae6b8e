"""The "seen items excluded" protocol: every family's search against brute force with the history
masked, the Trainer's evaluation (a target repeated from the history is a miss), the server."""

import math

import pytest
import torch

from hf_genrec import RecommenderTrainer, RecommenderTrainingArguments
from hf_genrec.models.recommender import excluded_items_mask, top_k_from_scores

from . import test_itemid
from .conftest import tiny_recommender
from .test_llamarec import ROWS, brute_force_scores


def masked_order(scores: torch.Tensor, exclude: torch.Tensor) -> list[list[int]]:
    """Brute force: every item by score, best first, without padding and the excluded ids."""
    out = []
    for row, ex in zip(scores.tolist(), exclude.tolist()):
        ranked = sorted(range(1, len(row)), key=lambda i: -row[i])
        out.append([i for i in ranked if i not in set(ex) and math.isfinite(row[i])])
    return out


def test_top_k_from_scores_masks_pads_and_never_returns_padding():
    scores = torch.tensor([[9.0, 0.1, 0.5, 0.3, 0.2], [9.0, 0.4, 0.3, 0.2, 0.1]])
    out = top_k_from_scores(scores, 5, torch.tensor([[0, 2, 4], [1, 1, 0]]))
    assert out.item_ids.tolist() == [[3, 1, -1, -1, -1], [2, 3, 4, -1, -1]]
    assert torch.isinf(out.scores[0, 2:]).all() and out.scores[1, :3].tolist() == pytest.approx([0.3, 0.2, 0.1])
    assert scores[0, 0] == 9.0  # the caller's scores are not modified
    with pytest.raises(ValueError, match="NaN"):
        top_k_from_scores(torch.tensor([[0.0, float("nan"), 1.0]]), 1)
    mask = excluded_items_mask(torch.tensor([[0, 3, 3]]), 4)
    assert mask.tolist() == [[False, False, False, True, False]]


@pytest.mark.parametrize("k, beams", [(10, 30), (5, 5)])
def test_beam_search_excludes_history_exactly(k, beams):
    """Exhaustive beams equal brute force with the history masked; with k beams it still returns k
    items outside the history even when the history holds the model's favourite items."""
    model = tiny_recommender(use_lora=False).eval()
    history = torch.tensor([[0, 0, 1, 2, 3], [0, 0, 0, 0, 5], [7, 8, 9, 10, 11]])
    scores = brute_force_scores(model, ROWS)
    # Exclude each user's 12 best items besides their history: the search must look past them.
    favourites = scores[:, 1:].argsort(1, descending=True)[:, :12] + 1
    exclude = torch.cat([history, favourites], 1)
    with torch.no_grad():
        out = model.top_k_items(history, k, num_beams=beams, exclude_items=exclude)
    want = masked_order(scores, exclude)
    for b in range(3):
        got = out.item_ids[b].tolist()
        assert len(got) == k and -1 not in got and not set(got) & set(exclude[b].tolist())
        if beams >= model.config.num_items:
            assert got == want[b][:k]
            assert out.scores[b].tolist() == pytest.approx([scores[b, i].item() for i in got], abs=1e-4)


def test_beam_search_without_exclusion_is_unchanged():
    model = tiny_recommender(use_lora=False).eval()
    history = torch.tensor([[0, 0, 1, 2, 3], [0, 0, 0, 0, 5], [7, 8, 9, 10, 11]])
    with torch.no_grad():
        plain = model.top_k_items(history, 10, num_beams=30)
        empty = model.top_k_items(history, 10, num_beams=30, exclude_items=torch.zeros(3, 2, dtype=torch.long))
    assert torch.equal(plain.item_ids, empty.item_ids)


def test_beam_search_pads_when_the_exclusion_leaves_fewer_than_k():
    model = tiny_recommender(num_items=8, use_lora=False).eval()
    exclude = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        out = model.top_k_items(torch.tensor([[1, 2]]), 4, num_beams=4, exclude_items=exclude)
    assert sorted(out.item_ids[0, :2].tolist()) == [7, 8] and out.item_ids[0, 2:].tolist() == [-1, -1]


@pytest.mark.parametrize("head", ["hierarchical", "full"])
def test_item_id_search_excludes_history_exactly(head):
    model = test_itemid.tiny(head=head)
    history = test_itemid.HISTORY
    with torch.no_grad():
        lp = model.all_log_probs(model.query(history))
        # Exclude the 15 best items of each user: the certified cluster search must expand further.
        exclude = torch.cat([history, lp[:, 1:].argsort(1, descending=True)[:, :15] + 1], 1)
        out = model.top_k_items(history, 10, exclude_items=exclude)
    want = masked_order(lp, exclude)
    assert out.item_ids.tolist() == [w[:10] for w in want]


def test_recommend_dense_excludes_the_whole_history_by_config_or_argument():
    model = tiny_recommender(use_lora=False).eval()
    long_history = list(range(1, 21))
    with torch.no_grad():
        plain = model.recommend_dense([long_history], top_k=10, num_beams=30)
        model.config.exclude_history = True
        default = model.recommend_dense([long_history], top_k=10, num_beams=30)
        off = model.recommend_dense([long_history], top_k=10, num_beams=30, exclude_history=False)
    assert set(plain.item_ids[0].tolist()) & set(long_history)  # a random model recommends seen items
    assert not set(default.item_ids[0].tolist()) & set(long_history)
    assert sorted(default.item_ids[0].tolist()) == list(range(21, 31))
    assert torch.equal(off.item_ids, plain.item_ids)


def test_trainer_evaluation_excludes_seen_items_and_counts_a_repeated_target_as_a_miss(tmp_path):
    model = tiny_recommender(use_lora=False).eval()
    rows = [{"history": [1, 2, 3], "target": 4}, {"history": [5, 6], "target": 6}, {"history": [7, 8, 9], "target": 12}]
    history = torch.tensor([[1, 2, 3], [0, 5, 6], [7, 8, 9]])
    # max_history=1: the model reads one item, but the exclusion covers the whole history.
    args = RecommenderTrainingArguments(
        output_dir=str(tmp_path), metric_ks=[1, 30], use_cpu=True, report_to="none", max_history=1, exclude_history=True
    )
    metrics = RecommenderTrainer(model=model, args=args).evaluate(rows)  # k = 30 beams: exhaustive
    with torch.no_grad():
        read = brute_force_scores(model, [{"history": r["history"][-1:], "target": r["target"]} for r in rows])
    order = masked_order(read, history)
    ranks = [order[0].index(4), None, order[2].index(12)]  # user 1's target 6 is in its history: a miss
    want = sum(1 / math.log2(r + 2) for r in ranks if r is not None) / 3
    assert metrics["eval_ndcg@30"] == pytest.approx(want, abs=1e-6)
    assert metrics["eval_recall@30"] == pytest.approx(2 / 3)
