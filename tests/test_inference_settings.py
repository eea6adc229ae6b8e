"""The inference settings a checkpoint carries (``max_history``, ``exclude_history``): read the same
way by ``recommend()``, ``top_k_items``, the Trainer and a reloaded model."""

import pytest
import torch

from hf_genrec import LlamaRecForCodeGeneration, RecommenderTrainer, RecommenderTrainingArguments

from . import test_itemid
from .conftest import tiny_recommender


def test_a_history_longer_than_max_history_is_cut_to_its_most_recent_items(tmp_path):
    model = tiny_recommender(use_lora=False, max_history=3).eval()
    long, recent = [4, 9, 1, 2, 3, 8, 7], [3, 8, 7]
    with torch.no_grad():
        cut = model.recommend_dense([long], top_k=5, num_beams=30)
        direct = model.top_k_items(torch.tensor([long]), 5, num_beams=30)
        short = model.recommend_dense([recent], top_k=5, num_beams=30)
    assert torch.equal(cut.item_ids, short.item_ids) and torch.equal(direct.item_ids, short.item_ids)
    model.save_pretrained(tmp_path)
    loaded = LlamaRecForCodeGeneration.from_pretrained(tmp_path).eval()
    assert loaded.config.max_history == 3
    with torch.no_grad():
        assert torch.equal(loaded.recommend_dense([long], top_k=5, num_beams=30).item_ids, short.item_ids)


def test_the_exclusion_covers_items_older_than_max_history():
    model = tiny_recommender(use_lora=False, max_history=2).eval()
    history = list(range(1, 26))  # the model reads 24, 25; the other 23 are still seen items
    with torch.no_grad():
        out = model.recommend_dense([history], top_k=5, num_beams=30, exclude_history=True)
    assert sorted(out.item_ids[0].tolist()) == [26, 27, 28, 29, 30]


def test_a_model_whose_positions_cannot_hold_max_history_refuses_to_build():
    # TINY_LLAMA has 256 positions; 70 items x 4 codes + 3 need 283.
    with pytest.raises(ValueError, match="needs 283 positions but the backbone has max_position_embeddings=256"):
        tiny_recommender(use_lora=False, max_history=70)
    with pytest.raises(ValueError, match="needs 300 positions"):
        test_itemid.tiny(max_history=300)
    with pytest.raises(ValueError, match="max_history must be >= 1"):
        tiny_recommender(use_lora=False, max_history=0)


def test_the_trainer_records_its_max_history_in_the_model_config(tmp_path):
    model = tiny_recommender(use_lora=False)
    assert model.config.max_history == 50
    args = RecommenderTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", max_history=7)
    trainer = RecommenderTrainer(model=model, args=args)
    assert model.config.max_history == 7 and trainer.data_collator.max_history == 7


def test_the_trainer_records_its_exclude_history_and_the_saved_model_serves_that_protocol(tmp_path):
    model = tiny_recommender(use_lora=False)
    assert model.config.exclude_history is False
    RecommenderTrainer(model=model, args=RecommenderTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none"))
    assert model.config.exclude_history is False  # not given: the config's own setting stays
    args = RecommenderTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", exclude_history=True)
    trainer = RecommenderTrainer(model=model, args=args)
    assert model.config.exclude_history is True and trainer.excludes_history
    trainer.save_model(str(tmp_path / "saved"))
    loaded = LlamaRecForCodeGeneration.from_pretrained(tmp_path / "saved").eval()
    assert loaded.config.exclude_history is True
    history = [1, 2, 3, 4, 5, 6]
    with torch.no_grad():
        served = loaded.recommend_dense([history], top_k=8, num_beams=30)
        excluded = loaded.recommend_dense([history], top_k=8, num_beams=30, exclude_history=True)
        ranked_all = loaded.recommend_dense([history], top_k=8, num_beams=30, exclude_history=False)
    assert torch.equal(served.item_ids, excluded.item_ids)
    assert not set(served.item_ids[0].tolist()) & set(history)
    assert set(ranked_all.item_ids[0].tolist()) & set(history)  # what it would serve without the setting


def test_the_trainer_refuses_a_max_history_the_backbone_cannot_place(tmp_path):
    model = tiny_recommender(use_lora=False)
    args = RecommenderTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", max_history=70)
    with pytest.raises(ValueError, match="needs 283 positions"):
        RecommenderTrainer(model=model, args=args)


def test_timestamps_are_ignored_by_a_family_without_time_features():
    model = tiny_recommender(use_lora=False).eval()
    with torch.no_grad():
        timed = model.recommend_dense([[1, 2, 3]], top_k=5, history_timestamps=[[0.0, 60.0, 120.0]], num_beams=30)
        plain = model.recommend_dense([[1, 2, 3]], top_k=5, num_beams=30)
    assert torch.equal(timed.item_ids, plain.item_ids)
    with pytest.raises(ValueError, match="one time per history item"):
        model.recommend_dense([[1, 2, 3]], history_timestamps=[[0.0]])
