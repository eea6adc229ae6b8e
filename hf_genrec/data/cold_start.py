"""A cold-start split: some items never appear in training or validation, and test users whose next
item is one of them measure what a model does with items added after training (``add_items``)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from datasets import Dataset

from ..utils.errors import InputError
from ..utils.item_map import ItemIdMap
from .readers import SequenceData
from .splits import GenRecDatasetDict
from .table import SequenceTable


@dataclass
class ColdStartSplit:
    """What :func:`cold_start_split` returns.

    dataset: leave-one-out splits over the warm items only (its item map has no cold item); its
        ``test`` split holds the users whose test target is warm.
    cold_items: the held-out items' original ids (sorted), never in ``dataset``.
    cold_test: the users whose test target is a cold item: ``user``, ``history`` (dense warm ids,
        oldest first) and ``target`` (the cold item's original id; map it with the model's item map
        once the item is added).
    """

    dataset: GenRecDatasetDict
    cold_items: list
    cold_test: list[dict] = field(default_factory=list)

    def cold_test_dataset(self, item_map: ItemIdMap, max_history: int = 50) -> Dataset:
        """``cold_test`` as a test split on ``item_map`` (one that knows the cold items, e.g. a model's
        after ``add_items``): columns ``user`` / ``history`` / ``target`` / ``length``."""
        rows = {"user": [], "history": [], "target": [], "length": []}
        for r in self.cold_test:
            rows["user"].append(r["user"])
            rows["history"].append(r["history"][-max_history:])
            rows["target"].append(item_map.to_dense(r["target"]))
            rows["length"].append(min(len(r["history"]), max_history))
        return Dataset.from_dict(rows)


def cold_start_split(
    sequences: dict[str, list] | SequenceData,
    cold_fraction: float = 0.05,
    seed: int = 0,
    max_history: int = 50,
) -> ColdStartSplit:
    """Hold out a random ``cold_fraction`` of the items from every training and validation sequence.

    For a user with items ``s[0..n-1]``, the test target stays ``s[n-1]``; the items before it,
    cold ones removed, form ``p``, and ``p`` is split as :func:`~hf_genrec.data.leave_one_out` splits a
    sequence: validation target ``p[-1]`` (history ``p[:-1]``), one training row per prefix before
    it, test history ``p``. Users with fewer than 2 warm items before their test target are dropped
    (no validation row). Users whose test target is cold go to ``cold_test``, the others to the
    dataset's ``test`` split, so a model trained on ``dataset`` has never seen a cold item, not even
    in a history.
    """
    if isinstance(sequences, SequenceData):
        sequences = sequences.sequences
    if not 0 < cold_fraction < 1:
        raise InputError(f"cold_fraction must be in (0, 1), got {cold_fraction}")
    items = sorted({i for s in sequences.values() for i in s})
    rng = random.Random(seed)
    cold = set(rng.sample(items, max(1, round(cold_fraction * len(items)))))
    prefixes = {}
    for user, seq in sequences.items():
        warm = [i for i in seq[:-1] if i not in cold]
        if len(warm) >= 2 and seq:
            prefixes[user] = (warm, seq[-1])
    if not prefixes:
        raise InputError("no user has 2 warm items before the test target; nothing to split")
    item_map = ItemIdMap({i for warm, target in prefixes.values() for i in warm} | {
        target for _, target in prefixes.values() if target not in cold})
    # Each user's table row is the warm prefix and then the test target (0, no item, where it is cold):
    # training and validation rows never read the last position, and the test split keeps the users
    # whose target is warm.
    users, table_rows, warm_test, cold_test = [], [], [], []
    for user, (warm, target) in prefixes.items():
        dense = [item_map.to_dense(i) for i in warm]
        if target in cold:
            cold_test.append({"user": user, "history": list(dense), "target": target})
            dense.append(0)
        else:
            warm_test.append(len(users))
            dense.append(item_map.to_dense(target))
        users.append(user)
        table_rows.append(dense)
    dsd = GenRecDatasetDict(SequenceTable.from_lists(users, table_rows), item_map, max_history, max_history,
                            len(sequences) - len(prefixes))
    dsd["test"] = dsd["test"].select(warm_test)
    return ColdStartSplit(dataset=dsd, cold_items=sorted(cold), cold_test=cold_test)
