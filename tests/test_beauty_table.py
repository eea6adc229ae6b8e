"""benchmarks/beauty_table.py: the README's Beauty table from a results file."""

from .conftest import load_benchmark

beauty_table = load_benchmark("beauty_table")


def test_rows_grouped_by_protocol_best_first_with_mean_and_std():
    report = {
        "rows": {
            "one run": {"protocol": "all_items", "test": {"recall@10": 0.07, "ndcg@10": 0.038}},
            "three seeds": {
                "protocol": "exclude_seen",
                "seeds": [0, 1, 2],
                "test_mean": {"recall@10": 0.0979, "ndcg@10": 0.0591},
                "test_std": {"recall@10": 0.0003, "ndcg@10": 0.0001},
            },
            "worse, seen excluded": {"protocol": "exclude_seen", "seeds": [42], "test": {"recall@10": 0.08, "ndcg@10": 0.046}},
        },
        "published": {"anchor": {"recall@10": "0.0977-0.0994", "ndcg@10": "0.0591-0.0601", "protocol": "exclude_seen"},
                      "old": {"ndcg@10": 0.0384, "protocol": "all_items"}},
    }
    lines = beauty_table.markdown(report).splitlines()[2:]
    assert lines == [
        "| anchor (published) | seen excluded | - | 0.0977-0.0994 | 0.0591-0.0601 |",
        "| three seeds | seen excluded | 3 | 0.0979 ± 0.0003 | 0.0591 ± 0.0001 |",
        "| worse, seen excluded | seen excluded | 1 | 0.0800 | 0.0460 |",
        "| old (published) | all items | - | - | 0.0384 |",
        "| one run | all items | 1 | 0.0700 | 0.0380 |",
    ]
