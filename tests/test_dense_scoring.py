"""ETEGRec's dense and hybrid ranking (the PSA head's cosine, alone or beside the code likelihood)
against brute force, their round trip, and new items under them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel

import hf_genrec  # noqa: F401  (registers the Auto classes)

from .conftest import tiny_recommender
from .test_add_items import tiny_tokenizer
from .test_llamarec import ROWS, brute_force_scores

HISTORY = torch.tensor([[0, 0, 1, 2, 3], [0, 0, 0, 0, 5], [7, 8, 9, 10, 11]])


def model_with_vectors(seed=0):
    model = tiny_recommender(num_items=30, seed=seed).eval()
    model.set_item_dense_vectors(torch.randn(30, model.config.semantic_dim))
    return model


def brute_force_cosines(model, history):
    out = torch.full((len(history), model.config.num_items + 1), float("-inf"))
    with torch.no_grad():
        for u in range(len(history)):
            q = model(history[u : u + 1]).dec_latents[0]
            for i in range(1, model.config.num_items + 1):
                out[u, i] = F.cosine_similarity(q, model.item_dense_vectors[i], dim=0)
    return out


def test_dense_mode_ranks_every_item_by_the_psa_cosine():
    model = model_with_vectors()
    model.config.score_mode = "dense"
    expected = brute_force_cosines(model, HISTORY)
    got = model.top_k_items(HISTORY, 30)
    torch.testing.assert_close(got.scores, expected[:, 1:].sort(1, descending=True).values, atol=1e-5, rtol=1e-5)
    excluded = model.top_k_items(HISTORY, 5, exclude_items=HISTORY)
    assert not (excluded.item_ids.unsqueeze(-1) == HISTORY.unsqueeze(1)).any()


@pytest.mark.parametrize("weight", [0.0, 3.0])
def test_hybrid_mode_with_exhaustive_beams_equals_brute_force_likelihood_plus_weighted_cosine(weight):
    model = model_with_vectors()
    model.config.score_mode, model.config.dense_score_weight = "hybrid", weight
    expected = brute_force_scores(model, ROWS) + weight * brute_force_cosines(model, HISTORY)
    got = model.top_k_items(HISTORY, 10, num_beams=30)
    torch.testing.assert_close(got.scores, expected[:, 1:].sort(1, descending=True).values[:, :10], atol=1e-4, rtol=1e-4)
    top = expected[:, 1:].argsort(1, descending=True)[:, :3] + 1
    assert torch.equal(got.item_ids[:, :3], top)
    torch.testing.assert_close(model.codes_for_items(got.item_ids), got.codes)


def test_dense_vectors_round_trip_and_grow_with_new_items(tmp_path):
    model = model_with_vectors()
    model.config.score_mode = "hybrid"
    rq = tiny_tokenizer(model)
    emb = torch.randn(2, model.config.semantic_dim)
    with pytest.raises(ValueError, match="give dense_vectors"):
        model.add_items([31, 32], codes=torch.tensor([[3, 3, 3], [3, 3, 2]]))
    assert model.config.num_items == 30 and model.item_dense_vectors.shape[0] == 31
    model.add_items([31, 32], item_embeddings=emb, item_tokenizer=rq)
    with torch.no_grad():
        torch.testing.assert_close(model.item_dense_vectors[31:], rq(emb).reconstruction)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert loaded.config.score_mode == "hybrid" and torch.equal(loaded.item_dense_vectors, model.item_dense_vectors)
    assert torch.equal(loaded.top_k_items(HISTORY, 5).item_ids, model.top_k_items(HISTORY, 5).item_ids)
    plain = tiny_recommender(num_items=30).eval()
    assert plain.item_dense_vectors.shape == (0, plain.config.semantic_dim)  # nothing stored unless set
    plain.config.score_mode = "dense"
    with pytest.raises(ValueError, match="set_item_dense_vectors"):
        plain.top_k_items(HISTORY, 3)
    with pytest.raises(ValueError, match="score_mode must be"):
        type(plain.config)(score_mode="mixed")
