"""Named SASRec recipes: what each recipe sends to train_sasrec, and a run shorter than its validation period."""

import json
import os

import pytest
import torch

from hf_genrec.data import leave_one_out, make_synthetic_sequences
from hf_genrec.embeddings import SASREC_RECIPES, sasrec_recipe, train_sasrec
from hf_genrec.recipes import etegrec, itemid, stages


def test_recipe_overrides_and_unknown_name():
    ref = sasrec_recipe("reference", hidden_size=32, num_train_epochs=None)
    # An unset flag (None) keeps the recipe's value; a set one replaces it.
    assert ref["num_train_epochs"] == 100 and ref["hidden_size"] == 32
    assert (ref["block"], ref["attend_padding"], ref["initialization"]) == ("query_norm", True, "xavier")
    assert (ref["dropout"], ref["learning_rate"], ref["batch_size"], ref["patience"]) == (0.6, 5e-4, 512, None)
    assert ref["exclude_history"] is True and ref["eval_every_epochs"] == 5
    assert SASREC_RECIPES["reference"]["hidden_size"] == 64  # the table itself is not modified
    assert sasrec_recipe("basic") == {"num_train_epochs": 30}
    with pytest.raises(ValueError, match="unknown SASRec recipe 'fast'.*basic.*reference"):
        sasrec_recipe("fast")


class _Stop(Exception):
    pass


@pytest.fixture
def captured_sasrec(monkeypatch):
    """Replace the recipes' SASRec stage with one that records its arguments and stops the run."""
    calls = []

    def fake(dsd, output_dir, **kwargs):
        calls.append(kwargs | {"validation_users": len(dsd["validation"])})
        raise _Stop

    monkeypatch.setattr(stages, "train_sasrec", fake)
    return calls


def _data(tmp_path):
    path = tmp_path / "toy.inter.json"
    path.write_text(json.dumps(make_synthetic_sequences(num_users=40, num_items=20, seed=1)))
    return str(path)


def test_etegrec_real_jobs_get_the_reference_recipe_and_the_embedded_preset_keeps_basic(tmp_path, captured_sasrec):
    for argv in (
        ["--dataset_dir", _data(tmp_path), "--output_dir", str(tmp_path / "real")],
        ["--config", "embedded", "--output_dir", str(tmp_path / "embedded")],
        ["--dataset_dir", _data(tmp_path), "--output_dir", str(tmp_path / "chosen"), "--sasrec_recipe", "basic",
         "--sasrec_epochs", "7"],
    ):
        with pytest.raises(_Stop):
            etegrec.main(argv)
    real, embedded, chosen = captured_sasrec
    assert real["block"] == "query_norm" and real["num_train_epochs"] == 100 and real["dropout"] == 0.6
    assert real["hidden_size"] == 64 and real["use_cpu"] == (not torch.cuda.is_available()) and real["seed"] == 42
    # The embedded default's measured figures came from the basic recipe at its tiny width.
    assert "block" not in embedded and embedded["num_train_epochs"] == 30 and embedded["hidden_size"] == 32
    assert "block" not in chosen and chosen["num_train_epochs"] == 7


def test_itemid_sasrec_table_uses_the_chosen_recipe(tmp_path, captured_sasrec):
    base = ["--dataset_dir", _data(tmp_path), "--item_embeddings", "sasrec"]
    with pytest.raises(_Stop):
        itemid.main([*base, "--output_dir", str(tmp_path / "a"), "--sasrec_epochs", "3"])
    with pytest.raises(_Stop):
        itemid.main([*base, "--output_dir", str(tmp_path / "b"), "--sasrec_recipe", "basic"])
    reference, basic = captured_sasrec
    assert reference["block"] == "query_norm" and reference["num_train_epochs"] == 3
    assert "block" not in basic and basic["num_train_epochs"] == 30


def test_a_run_shorter_than_its_validation_period_validates_and_checkpoints_at_its_end(tmp_path):
    """The reference recipe validates every 5 epochs; a 2-epoch run must still select a checkpoint
    (EvaluateAtTrainingEnd), validated once, not twice."""
    dsd = leave_one_out(make_synthetic_sequences(num_users=60, num_items=20, seed=0))
    kwargs = sasrec_recipe("reference", hidden_size=16, num_train_epochs=2)
    model, metrics = train_sasrec(dsd, str(tmp_path), use_cpu=True, disable_tqdm=True, **kwargs)
    evaluated = [round(e["epoch"]) for e in model.training_log if "eval_ndcg@10" in e]
    assert evaluated == [2]
    assert any(d.startswith("checkpoint-") for d in os.listdir(tmp_path))
    assert 0 <= metrics["test_ndcg@10"] <= metrics["test_recall@10"] <= 1


def test_the_sasrec_stage_reads_every_user_when_selection_uses_a_subset(tmp_path, captured_sasrec):
    """--eval_users subsamples the users checkpoints are selected on; SASRec's training sequences
    come from the validation histories, so it must still see all 40 users."""
    with pytest.raises(_Stop):
        etegrec.main(["--dataset_dir", _data(tmp_path), "--output_dir", str(tmp_path / "run"), "--eval_users", "5"])
    assert captured_sasrec[0]["validation_users"] == 40
