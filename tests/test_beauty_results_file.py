"""benchmarks/beauty.py: two calls on one --out must not drop each other's finished variants."""

import json
import os

from .conftest import load_benchmark

beauty = load_benchmark("beauty")


def test_a_second_call_keeps_the_variant_the_first_call_wrote_meanwhile(tmp_path):
    path = str(tmp_path / "beauty_metrics.json")
    # Both calls read the (empty) file at their start.
    first = {"variants": {}, "minutes": {}, "preset": "cpu"}
    second = {"variants": {}, "minutes": {}, "preset": "cpu"}
    first["variants"]["etegrec"], first["minutes"]["etegrec"] = {"exclude_seen/ndcg@10": 0.045}, 55.0
    beauty.save_results(path, first, {"etegrec"})
    second["variants"]["static_codes"], second["minutes"]["static_codes"] = {"exclude_seen/ndcg@10": 0.046}, 40.0
    second["minutes"]["this_call"] = 41.0
    beauty.save_results(path, second, {"static_codes", "this_call"})
    on_disk = json.load(open(path))
    assert on_disk["variants"] == {"etegrec": {"exclude_seen/ndcg@10": 0.045}, "static_codes": {"exclude_seen/ndcg@10": 0.046}}
    assert on_disk["minutes"] == {"etegrec": 55.0, "static_codes": 40.0, "this_call": 41.0}
    assert os.listdir(tmp_path) == ["beauty_metrics.json"]  # no temp file left behind


def test_a_rerun_of_a_variant_replaces_its_own_entry(tmp_path):
    path = str(tmp_path / "beauty_metrics.json")
    beauty.save_results(path, {"variants": {"etegrec": {"n": 1}}, "minutes": {}}, {"etegrec"})
    beauty.save_results(path, {"variants": {"etegrec": {"n": 2}}, "minutes": {}}, {"etegrec"})
    assert json.load(open(path))["variants"] == {"etegrec": {"n": 2}}
