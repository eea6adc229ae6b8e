"""``hf-genrec evaluate``: ranks a split with a saved checkpoint under both protocols, optionally with
an inference field of its config overridden (``--set``)."""

import pytest

from hf_genrec import RecommenderTrainer, RecommenderTrainingArguments
from hf_genrec.cli import evaluate as evaluate_checkpoint
from hf_genrec.data import leave_one_out, make_synthetic_sequences

from .conftest import tiny_recommender


def test_overrides_parse_json_values_and_keep_other_values_as_strings():
    assert evaluate_checkpoint.parse_overrides(["default_num_beams=50", "score_mode=hybrid", "w=0.5"]) == {
        "default_num_beams": 50, "score_mode": "hybrid", "w": 0.5,
    }
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        evaluate_checkpoint.parse_overrides(["default_num_beams"])


def direct_metrics(model, split, tmp_path, exclude_history=None) -> dict:
    args = RecommenderTrainingArguments(
        output_dir=str(tmp_path / "direct"), per_device_eval_batch_size=256, max_history=50, report_to=[],
        use_cpu=True, disable_tqdm=True, exclude_history=exclude_history,
    )
    metrics = RecommenderTrainer(model=model, args=args).evaluate(split, metric_key_prefix="test")
    return {k.removeprefix("test_"): v for k, v in metrics.items() if "@" in k}


def test_the_override_reaches_the_ranking_and_unknown_fields_are_refused(tmp_path):
    dsd = leave_one_out(make_synthetic_sequences(num_users=60, num_items=30, min_length=4, max_length=9, seed=3))
    model = tiny_recommender(num_items=30, use_lora=False, seed=1).eval()
    model.set_item_map(dsd.item_map)
    model.save_pretrained(tmp_path / "ckpt")
    dsd.save_to_disk(str(tmp_path / "data"))
    argv = ["--checkpoint", str(tmp_path / "ckpt"), "--data", str(tmp_path / "data"), "--protocol", "all_items"]

    narrow = evaluate_checkpoint.main(argv)  # the saved default: 20 beams
    wide = evaluate_checkpoint.main(argv + ["--set", "default_num_beams=30"])
    assert narrow == pytest.approx(direct_metrics(model, dsd["test"], tmp_path))
    model.config.default_num_beams = 30
    assert wide == pytest.approx(direct_metrics(model, dsd["test"], tmp_path))
    assert wide != pytest.approx(narrow)  # so the two beam widths rank differently on this model

    with pytest.raises(ValueError, match="has no field 'num_beamz'"):
        evaluate_checkpoint.main(argv + ["--set", "num_beamz=30"])



def test_both_protocols_match_a_direct_evaluation_of_each_and_go_to_the_json_file(tmp_path):
    import json

    dsd = leave_one_out(make_synthetic_sequences(num_users=60, num_items=30, min_length=4, max_length=9, seed=4))
    model = tiny_recommender(num_items=30, use_lora=False, seed=2).eval()
    model.set_item_map(dsd.item_map)
    model.save_pretrained(tmp_path / "ckpt")
    dsd.save_to_disk(str(tmp_path / "data"))
    out = tmp_path / "report.json"
    report = evaluate_checkpoint.main(
        ["--checkpoint", str(tmp_path / "ckpt"), "--data", str(tmp_path / "data"), "--split", "validation", "--json", str(out)]
    )
    assert json.loads(out.read_text()) == report
    for protocol, exclude in (("exclude_seen", True), ("all_items", False)):
        direct = direct_metrics(model, dsd["validation"], tmp_path, exclude_history=exclude)
        assert {k.removeprefix(f"{protocol}/"): v for k, v in report.items() if k.startswith(protocol)} == pytest.approx(direct)
    assert report["exclude_seen/recall@10"] != report["all_items/recall@10"]  # the two protocols differ on this model


def test_data_of_another_catalogue_is_refused_not_scored(tmp_path):
    dsd = leave_one_out(make_synthetic_sequences(num_users=60, num_items=30, min_length=4, max_length=9, seed=4))
    model = tiny_recommender(num_items=30, use_lora=False, seed=2).eval()  # its map: the dense ids 1..30
    model.save_pretrained(tmp_path / "ckpt")
    dsd.save_to_disk(str(tmp_path / "data"))  # item ids 0..29: the same count, other items
    with pytest.raises(ValueError, match="has another item map than the checkpoint"):
        evaluate_checkpoint.main(["--checkpoint", str(tmp_path / "ckpt"), "--data", str(tmp_path / "data")])
