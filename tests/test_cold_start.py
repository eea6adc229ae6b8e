"""The cold-start split: held-out items never reach training, validation or test histories, and test
users are split by whether their target is held out."""

from __future__ import annotations

import pytest

from hf_genrec.data import ItemIdMap, cold_start_split


def sequences(n_users: int = 40, n_items: int = 30) -> dict[str, list[int]]:
    return {f"u{u}": [(u * 7 + 3 * t) % n_items + 100 for t in range(3 + u % 6)] for u in range(n_users)}


def test_cold_items_never_reach_training_and_each_user_keeps_its_test_target():
    seqs = sequences()
    split = cold_start_split(seqs, cold_fraction=0.2, seed=3)
    cold, dsd = set(split.cold_items), split.dataset
    assert len(cold) == 6 and not cold & set(dsd.item_map.original_ids)
    by_user = {}
    for name in ("train", "validation", "test"):
        for row in dsd[name]:
            assert all(h > 0 for h in row["history"]) and row["target"] > 0
        by_user[name] = {r["user"]: r for r in dsd[name]}
    for user, seq in seqs.items():
        warm = [i for i in seq[:-1] if i not in cold]
        if len(warm) < 2:
            assert user not in by_user["validation"]
            continue
        dense = dsd.item_map.to_dense_many(warm)[0]
        val = by_user["validation"][user]
        assert val["history"] == dense[:-1] and val["target"] == dense[-1]
        if seq[-1] in cold:
            (row,) = [r for r in split.cold_test if r["user"] == user]
            assert row["history"] == dense and row["target"] == seq[-1] and user not in by_user["test"]
        else:
            assert by_user["test"][user]["history"] == dense
            assert by_user["test"][user]["target"] == dsd.item_map.to_dense(seq[-1])
    trains = [r for r in dsd["train"] if r["user"] == "u5"]
    warm5 = dsd.item_map.to_dense_many([i for i in seqs["u5"][:-1] if i not in cold])[0]
    assert [(r["history"], r["target"]) for r in trains] == [(warm5[:t], warm5[t]) for t in range(1, len(warm5) - 1)]
    assert split.cold_test and dsd.num_dropped_users == sum(
        len([i for i in s[:-1] if i not in cold]) < 2 for s in seqs.values())


def test_cold_test_rows_map_through_a_grown_item_map_and_the_split_is_reproducible():
    split = cold_start_split(sequences(), cold_fraction=0.2, seed=3)
    assert cold_start_split(sequences(), cold_fraction=0.2, seed=3).cold_items == split.cold_items
    assert cold_start_split(sequences(), cold_fraction=0.2, seed=4).cold_items != split.cold_items
    grown = split.dataset.item_map.extended(split.cold_items)
    rows = split.cold_test_dataset(grown, max_history=2)
    n = split.dataset.num_items
    assert all(n < t <= n + len(split.cold_items) for t in rows["target"])
    assert [grown.to_original(t) for t in rows["target"]] == [r["target"] for r in split.cold_test]
    assert all(len(h) <= 2 for h in rows["history"])
    with pytest.raises(KeyError):  # the dataset's own map has no cold item
        split.cold_test_dataset(split.dataset.item_map)
    with pytest.raises(ValueError, match="cold_fraction"):
        cold_start_split(sequences(), cold_fraction=1.0)
    assert isinstance(grown, ItemIdMap)
