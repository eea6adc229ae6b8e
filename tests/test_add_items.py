"""New items after training (``add_items``) for every family: exact against a model that had the
items from the start or against brute force, round trips, the server, and clear errors that leave
the model unchanged."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel

import hf_genrec  # noqa: F401  (registers the Auto classes)
from hf_genrec import ItemIdMap, RQVAEConfig, RQVAEModel
from hf_genrec.models.hllm import HLLMConfig, HLLMForRecommendation, train_word_level_tokenizer
from hf_genrec.models.itemid.modeling_itemid import ridge_map
from hf_genrec.models.llamarec.item_codes import codes_for_new_items
from hf_genrec.models.recommender import RecommenderMixin
from hf_genrec.utils import UnknownItemError

from .conftest import tiny_recommender
from .test_hllm import tiny as tiny_llama
from .test_itemid import tiny as tiny_itemid
from .test_llamarec import ROWS, brute_force_scores
from .test_serving import Server


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_unchanged(model, before: dict, num_items: int, item_map: ItemIdMap) -> None:
    after = model.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert model.config.num_items == num_items and model.item_map == item_map


# ----------------------------------------------------------------------------- item map
def test_item_map_extension_appends_keeps_known_ids_and_round_trips(tmp_path):
    base = ItemIdMap(["b", "a", "c"])
    grown = base.extended(["zz", "aa"])
    assert [grown.to_dense(i) for i in ["a", "b", "c", "zz", "aa"]] == [1, 2, 3, 4, 5]
    assert base.num_items == 3  # unchanged
    grown.save(tmp_path)
    assert ItemIdMap.load(tmp_path) == grown and ItemIdMap.load(tmp_path).to_dense("aa") == 5
    with pytest.raises(ValueError, match="'a' already exist"):
        base.extended(["a"])
    with pytest.raises(ValueError, match="appears twice"):
        base.extended(["x", "x"])
    with pytest.raises(TypeError, match="type of the existing ones"):
        base.extended([7])
    assert ItemIdMap([1, 2]).extended([np.int64(9)]).to_dense(9) == 3  # numpy scalars, e.g. from pandas


def test_a_family_without_add_items_says_so():
    class Fixed(RecommenderMixin, torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = SimpleNamespace(num_items=3)

    with pytest.raises(NotImplementedError, match="Fixed cannot add items"):
        Fixed().add_items([4])


# ------------------------------------------------------------------------------ ETEGRec
def test_new_item_codes_take_the_first_free_suffix_of_their_prefix():
    existing = torch.tensor([[0, 1, 0], [0, 1, 2], [1, 1, 0]])
    new = codes_for_new_items(existing, torch.tensor([[0, 1], [2, 2], [0, 1]]), suffix_size=4)
    assert new.tolist() == [[0, 1, 1], [2, 2, 0], [0, 1, 3]]  # prefix (0, 1) had suffixes 0 and 2
    with pytest.raises(ValueError, match="already holds 4 items"):
        codes_for_new_items(existing, torch.tensor([[0, 1], [0, 1], [0, 1]]), suffix_size=4)
    with pytest.raises(ValueError, match="another item already has"):
        codes_for_new_items(existing, torch.tensor([[1, 1, 0]]), suffix_size=4)


def tiny_tokenizer(model, seed=0) -> RQVAEModel:
    torch.manual_seed(seed)
    c = model.config
    rq = RQVAEModel(RQVAEConfig(semantic_dim=c.semantic_dim, codebook_dim=c.codebook_dim, num_levels=c.num_levels,
                                codebook_size=c.codebook_size, suffix_size=c.suffix_size, hidden_dims=[12]))
    return rq.eval()


def test_etegrec_items_from_embeddings_are_ranked_exactly_saved_and_served(tmp_path):
    model = tiny_recommender(num_items=30).eval()
    model.set_item_map(ItemIdMap([f"sku-{i:02d}" for i in range(30)]))
    rq = tiny_tokenizer(model)
    emb = torch.randn(3, model.config.semantic_dim)
    prefixes = rq.get_prefix_codes(emb)
    dense = model.add_items(["new-a", "new-b", "new-c"], item_embeddings=emb, item_tokenizer=rq)
    assert dense == [31, 32, 33] and model.config.num_items == 33
    codes = model.item_codes[31:]
    assert torch.equal(codes[:, :-1], prefixes)  # the quantiser's codes, then a free suffix
    assert torch.unique(model.item_codes[1:], dim=0).shape[0] == 33
    assert torch.equal(model.item_codes[1:31], tiny_recommender(num_items=30).item_codes[1:])  # known items keep theirs
    # Exhaustive beams over the grown trie equal brute force over all 33 items, new ones included.
    rows = ROWS + [{"history": [31, 2], "target": 1}]
    history = torch.tensor([[0, 0, 1, 2, 3], [0, 0, 0, 0, 5], [7, 8, 9, 10, 11], [0, 0, 0, 31, 2]])
    expected = brute_force_scores(model, rows)
    got = model.top_k_items(history, 33, num_beams=33)
    torch.testing.assert_close(got.scores, expected.sort(1, descending=True).values[:, :33], atol=1e-4, rtol=1e-4)
    assert (got.item_ids > 30).any()
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert loaded.config.num_items == 33 and loaded.item_map.to_dense("new-b") == 32
    assert torch.equal(loaded.item_codes, model.item_codes)
    want = model.recommend([["new-a", "sku-03"]], top_k=5, num_beams=33)
    assert loaded.recommend([["new-a", "sku-03"]], top_k=5, num_beams=33).items == want.items
    loaded.config.default_num_beams = 33
    with Server(loaded) as srv:
        answer = srv.post({"history": ["new-a", "sku-03"], "k": 5})
    assert answer.status_code == 200 and answer.json()["items"] == want.items[0]


def test_etegrec_add_items_errors_name_the_problem_and_change_nothing():
    model = tiny_recommender(num_items=30).eval()
    rq = tiny_tokenizer(model)
    before, item_map = state(model), model.item_map
    emb = torch.randn(2, model.config.semantic_dim)
    cases = [
        (dict(ids=[3, 40], item_embeddings=emb, item_tokenizer=rq), ValueError, "3 already exist"),
        (dict(ids=[40, 41], item_embeddings=torch.randn(2, 5), item_tokenizer=rq), ValueError, "wrong embedding dimension"),
        (dict(ids=[40, 41], item_embeddings=torch.randn(3, 16), item_tokenizer=rq), ValueError, "one row per new item"),
        (dict(ids=[40, 41], item_embeddings=emb), ValueError, "needs the RQ-VAE"),
        (dict(ids=[40, 41], texts=["a", "b"]), TypeError, "cannot take texts"),
        (dict(ids=[40, 41], codes=model.item_codes[1:3]), ValueError, "another item already has"),
    ]
    for kw, error, message in cases:
        with pytest.raises(error, match=message):
            model.add_items(kw.pop("ids"), **kw)
        assert_unchanged(model, before, 30, item_map)
    wrong = RQVAEModel(RQVAEConfig(semantic_dim=16, codebook_dim=8, num_levels=2, codebook_size=4))
    with pytest.raises(ValueError, match="do not match the recommender"):
        model.add_items([40], item_embeddings=emb[:1], item_tokenizer=wrong)
    assert_unchanged(model, before, 30, item_map)


# --------------------------------------------------------------------------------- HLLM
N_HLLM = 8
TEXTS = [f"title: brand{i % 3} thing{i}" for i in range(N_HLLM + 2)]


def hllm(num_items, texts, tokenizer, mode="light"):
    torch.manual_seed(0)
    config = HLLMConfig(num_items=num_items, item_backbone_config=tiny_llama(vocab=len(tokenizer)),
                        user_backbone_config=tiny_llama(hidden=16), mode=mode, max_text_length=16,
                        loss="ce" if mode == "light" else "nce")
    model = HLLMForRecommendation(config).eval()
    model.set_item_texts(texts, tokenizer)
    return model


@pytest.mark.parametrize("mode", ["light", "end_to_end"])
def test_hllm_items_from_text_score_as_if_they_had_been_in_the_catalogue(tmp_path, mode):
    tokenizer = train_word_level_tokenizer(TEXTS, HLLMConfig().item_prompt)
    model = hllm(N_HLLM, TEXTS[:N_HLLM], tokenizer, mode)
    full = hllm(N_HLLM + 2, TEXTS, tokenizer, mode)  # same seed: the same weights, the items from the start
    history = torch.tensor([[0, 1, 2], [3, 4, 5]])
    model.top_k_items(history, 3)  # the cache of the known items exists before the add
    assert model.add_items([9, 10], texts=TEXTS[N_HLLM:], tokenizer=tokenizer) == [9, 10]

    def no_recompute(*args, **kwargs):
        raise AssertionError("add_items embeds only the new items; the cache of the known ones stays current")

    model.refresh_item_cache = no_recompute
    torch.testing.assert_close(model.item_embedding_cache, full.compute_item_embeddings())
    torch.testing.assert_close(model.all_item_scores(history), full.all_item_scores(history))
    assert not model.item_cache_outdated()
    del model.refresh_item_cache
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    grown_history = torch.tensor([[0, 9, 2], [3, 10, 5]])
    torch.testing.assert_close(loaded.all_item_scores(grown_history), full.all_item_scores(grown_history))
    assert loaded.recommend([[10, 1]], top_k=10).items == full.recommend([[10, 1]], top_k=10).items


def test_hllm_add_items_errors_and_the_embedding_only_variant():
    tokenizer = train_word_level_tokenizer(TEXTS, HLLMConfig().item_prompt)
    model = hllm(N_HLLM, TEXTS[:N_HLLM], tokenizer)
    model.ensure_item_cache()
    before, item_map = state(model), model.item_map
    for kw, message in [
        (dict(item_embeddings=torch.randn(1, 32)), "embeds items with its item LLM"),
        (dict(texts=["x"]), "texts and the item LLM's tokenizer"),
        (dict(texts=["x", "y"], tokenizer=tokenizer), "list of 1 strings"),
    ]:
        with pytest.raises(ValueError, match=message):
            model.add_items([20], **kw)
        assert_unchanged(model, before, N_HLLM, item_map)

    def broken(*args, **kwargs):  # e.g. out of memory in the item LLM
        raise RuntimeError("item LLM failed")

    model.encode_token_rows = broken
    with pytest.raises(RuntimeError, match="item LLM failed"):
        model.add_items([20], texts=["title: new"], tokenizer=tokenizer)
    del model.encode_token_rows
    assert_unchanged(model, before, N_HLLM, item_map)
    assert not model.item_cache_outdated() and model.top_k_items(torch.tensor([[1, 2]]), 3).item_ids.shape == (1, 3)
    torch.manual_seed(0)
    config = HLLMConfig(num_items=5, item_backbone_config=None, item_embedding_dim=6,
                        user_backbone_config=tiny_llama(hidden=16), mode="light", loss="ce")
    plain = HLLMForRecommendation(config).eval()
    plain.set_item_embeddings(torch.randn(5, 6))
    with pytest.raises(ValueError, match=r"must be \[1, 6\]"):
        plain.add_items([6], item_embeddings=torch.randn(1, 4))
    new = torch.randn(1, 6)
    plain.add_items([6], item_embeddings=new)
    assert torch.equal(plain.item_embedding_cache[6], new[0])
    scores = plain.all_item_scores(torch.tensor([[1, 6]]))
    q = torch.nn.functional.normalize(plain.user_embedding(torch.tensor([[1, 6]])), dim=-1)
    expected = q @ torch.nn.functional.normalize(plain.project(new), dim=-1).t()
    torch.testing.assert_close(scores[:, 6], expected[:, 0])


# ------------------------------------------------------------------------------ item-ID
def test_itemid_items_through_the_init_path_join_the_nearest_cluster_and_stay_exact(tmp_path):
    model = tiny_itemid()
    n, d = model.config.num_items, model.config.item_embedding_dim
    means = torch.stack([model.item_embeddings.weight[1:][model.head.item_cluster[1:] == c].mean(0)
                         for c in range(model.config.num_clusters)])
    new = torch.randn(4, d)
    median_bias = model.head.item_bias[1:].median()
    assert model.add_items([n + 1, n + 2, n + 3, n + 4], item_embeddings=new) == [n + 1, n + 2, n + 3, n + 4]
    rows = model.item_embeddings.weight[n + 1:]
    torch.testing.assert_close(rows, new * model.config.item_embedding_scale)
    assert torch.equal(model.head.item_bias[n + 1:], median_bias.expand(4))
    nearest = torch.cdist(rows, means).argmin(1)
    assert torch.equal(model.head.item_cluster[n + 1:], nearest)  # the tiny head has room everywhere
    history = torch.tensor([[0, 0, 3, n + 2], [1, 2, 3, 4]])
    with torch.no_grad():
        lp = model.all_log_probs(model.query(history))
    torch.testing.assert_close(lp[:, 1:].logsumexp(1), torch.zeros(2), atol=1e-5, rtol=0)  # still a distribution
    got = model.top_k_items(history, n + 4)
    expected = lp[:, 1:].sort(1, descending=True)
    torch.testing.assert_close(got.scores, expected.values, atol=1e-5, rtol=0)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert torch.equal(loaded.top_k_items(history, 10).item_ids, model.top_k_items(history, 10).item_ids)


def test_itemid_full_clusters_widen_and_a_fitted_map_recovers_a_linear_table(tmp_path):
    model = tiny_itemid(cluster_capacity=7)  # 40 items in 6 x 7 slots: 2 free
    n, d = model.config.num_items, model.config.item_embedding_dim
    model.add_items(list(range(n + 1, n + 6)), item_embeddings=torch.randn(5, d))
    assert model.head.cluster_items.shape[1] == model.config.cluster_capacity > 7
    assert sorted(model.head.cluster_items[model.head.cluster_items > 0].tolist()) == list(range(1, n + 6))
    assert model._new_layers[0] is model.item_embeddings
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    history = torch.tensor([[0, 3, n + 5], [1, 2, 3]])
    assert torch.equal(loaded.top_k_items(history, n + 5).item_ids, model.top_k_items(history, n + 5).item_ids)
    # A table that is a linear image of the catalogue embeddings: the ridge fit maps new items onto it.
    gen = torch.Generator().manual_seed(1)
    x, a, b = torch.randn(200, 5, generator=gen), torch.randn(5, 3, generator=gen), torch.randn(3, generator=gen)
    new_x = torch.randn(4, 5, generator=gen)
    torch.testing.assert_close(ridge_map(x, x @ a + b, new_x, ridge=1e-9), new_x @ a + b, atol=1e-4, rtol=1e-4)


def test_itemid_add_items_errors_and_families_that_cannot_add():
    model = tiny_itemid()
    before, item_map = state(model), model.item_map
    d = model.config.item_embedding_dim
    for kw, error, message in [
        (dict(item_embeddings=torch.randn(1, d + 1)), ValueError, "must be"),
        (dict(item_embeddings=torch.full((1, d), float("nan"))), ValueError, "NaN"),
        (dict(texts=["x"]), TypeError, "cannot take texts"),
        (dict(item_embeddings=torch.randn(1, d), catalogue_embeddings=torch.randn(3, d)), ValueError,
         "catalogue_embeddings must be"),
    ]:
        with pytest.raises(error, match=message):
            model.add_items([100], **kw)
        assert_unchanged(model, before, 40, item_map)
    with pytest.raises(UnknownItemError):
        model.top_k_items(torch.tensor([[41]]), 3)


def test_server_answers_unknown_then_known_after_add(tmp_path):
    model = tiny_recommender(num_items=30).eval()
    model.set_item_map(ItemIdMap([f"sku-{i:02d}" for i in range(30)]))
    with Server(model) as srv:
        assert srv.post({"history": ["fresh"]}).status_code == 422
        model.add_items(["fresh"], codes=torch.tensor([[3, 3, 3]]))  # between requests, on the live model
        live = srv.post({"history": ["fresh", "sku-01"], "k": 31}).json()
    assert live["items"] == model.recommend([["fresh", "sku-01"]], top_k=31).items[0] and None not in live["items"]
    model.save_pretrained(tmp_path)
    with Server(AutoModel.from_pretrained(tmp_path).eval()) as srv:
        r = srv.post({"history": ["fresh"], "k": 3})
    assert r.status_code == 200 and len(r.json()["items"]) == 3


def test_hllm_id_embeddings_train_score_by_brute_force_and_new_items_get_none(tmp_path):
    tokenizer = train_word_level_tokenizer(TEXTS, HLLMConfig().item_prompt)
    torch.manual_seed(0)
    config = HLLMConfig(num_items=N_HLLM, item_backbone_config=tiny_llama(vocab=len(tokenizer)),
                        user_backbone_config=tiny_llama(hidden=16), mode="light", max_text_length=16, loss="ce",
                        item_id_embeddings=True)
    model = HLLMForRecommendation(config)
    model.set_item_texts(TEXTS[:N_HLLM], tokenizer)
    model.train()
    model(torch.tensor([[0, 1, 2], [3, 4, 5]]), torch.tensor([3, 6])).loss.backward()
    assert model.item_id_embedding.weight.grad[1:].abs().sum() > 0
    model.eval()
    model.add_items([9], texts=[TEXTS[N_HLLM]], tokenizer=tokenizer)
    assert not model.item_id_embedding.weight[9].any() and model._new_layers[-1] is model.item_id_embedding
    history = torch.tensor([[0, 9, 2], [3, 4, 5]])
    with torch.no_grad():  # every item's text vector plus its id embedding, written out
        vectors = model.item_projection(model.item_embedding_cache) + model.item_id_embedding.weight
    expected = torch.full((2, N_HLLM + 2), float("-inf"))
    for u, row in enumerate(history.tolist()):
        real = [i for i in row if i > 0]
        q = model.user_states(vectors[real].unsqueeze(0), torch.ones(1, len(real), dtype=torch.bool))[0, -1]
        expected[u, 1:] = F.cosine_similarity(q.unsqueeze(0), vectors[1:], dim=-1)
    torch.testing.assert_close(model.all_item_scores(history), expected, atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(loaded.all_item_scores(history), expected, atol=1e-5, rtol=1e-5)
