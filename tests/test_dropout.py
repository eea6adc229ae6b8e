"""Backbone regularisation (embedding / hidden / attention dropout): each acts in training only,
leaves evaluation identical to the undropped model, and travels with the checkpoint."""

import pytest
import torch

from hf_genrec import HLLMForRecommendation, LlamaRecForCodeGeneration

from . import test_hllm, test_itemid
from .conftest import tiny_recommender
from .test_llamarec import batch

FIELDS = ("embedding_dropout", "hidden_dropout", "attention_dropout")


def logits(model):
    return model(**batch(model)).logits


@pytest.mark.parametrize("field", FIELDS)
def test_each_dropout_acts_in_training_only(field):
    plain = tiny_recommender(use_lora=False)
    dropped = tiny_recommender(use_lora=False, **{field: 0.5})
    dropped.load_state_dict(plain.state_dict())
    plain.train()
    dropped.train()
    torch.manual_seed(1)
    a = logits(dropped)
    torch.manual_seed(2)
    b = logits(dropped)
    assert not torch.allclose(a, b, atol=1e-4)  # random masks differ between calls
    torch.manual_seed(1)
    assert torch.allclose(logits(plain), logits(plain), atol=1e-6)  # no dropout: deterministic in training
    plain.eval()
    dropped.eval()
    assert torch.equal(logits(plain), logits(dropped))


def test_dropout_settings_round_trip_and_are_reapplied_on_load(tmp_path):
    model = tiny_recommender(use_lora=False, embedding_dropout=0.1, hidden_dropout=0.2, attention_dropout=0.3)
    model.save_pretrained(tmp_path)
    loaded = LlamaRecForCodeGeneration.from_pretrained(tmp_path)
    assert (loaded.config.embedding_dropout, loaded.config.hidden_dropout, loaded.config.attention_dropout) == (0.1, 0.2, 0.3)
    assert loaded.backbone.layers[0].self_attn.attention_dropout == 0.3
    loaded.train()
    torch.manual_seed(1)
    a = logits(loaded)
    torch.manual_seed(2)
    assert not torch.allclose(a, logits(loaded), atol=1e-4)
    model.eval()
    loaded.eval()
    assert torch.equal(logits(model), logits(loaded))


def test_item_id_family_takes_the_same_fields():
    plain = test_itemid.tiny()
    dropped = test_itemid.tiny(hidden_dropout=0.5, embedding_dropout=0.5)
    dropped.load_state_dict(plain.state_dict())
    q = test_itemid.HISTORY
    assert torch.equal(plain.query(q), dropped.query(q))  # eval
    dropped.train()
    torch.manual_seed(1)
    a = dropped.query(q)
    torch.manual_seed(2)
    assert not torch.allclose(a, dropped.query(q), atol=1e-4)


def test_hllm_user_llm_dropout(tmp_path):
    tok = test_hllm.train_word_level_tokenizer(test_hllm.TEXTS, test_hllm.HLLMConfig().item_prompt)
    model = test_hllm.make_model(tok, mode="light", user_hidden_dropout=0.5, user_attention_dropout=0.2)
    model.eval()
    before = model.all_item_scores(test_hllm.HISTORY)
    model.save_pretrained(tmp_path)
    loaded = HLLMForRecommendation.from_pretrained(tmp_path).eval()
    assert loaded.config.user_hidden_dropout == 0.5 and loaded.user_llm.config.attention_dropout == 0.2
    torch.testing.assert_close(loaded.all_item_scores(test_hllm.HISTORY), before)
    loaded.train()
    torch.manual_seed(1)
    a = loaded.user_embedding(test_hllm.HISTORY)
    torch.manual_seed(2)
    assert not torch.allclose(a, loaded.user_embedding(test_hllm.HISTORY), atol=1e-4)


def test_bad_dropout_values_are_refused():
    with pytest.raises(ValueError, match="hidden_dropout must be in"):
        tiny_recommender(use_lora=False, hidden_dropout=1.0)
