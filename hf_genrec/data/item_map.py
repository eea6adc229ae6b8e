"""Bijection between a dataset's original item ids and the dense ids 1..N used by models (0 = padding)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

ITEM_MAP_FILE = "item_map.json"
PAD_ITEM = 0


class UnknownItemError(KeyError):
    """An item id that the mapping (and so the model) has never seen."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class ItemIdMap:
    """Maps original item ids to ``1..N``; ``0`` is reserved for padding.

    Dense ids follow the sorted order of the original ids, so a dataset whose items are the
    integers ``0..N-1`` gets ``id + 1`` and the mapping is reproducible across runs.
    """

    def __init__(self, original_ids: Iterable):
        ids = list(original_ids)
        if len(set(map(type, ids))) > 1:
            raise TypeError("item ids mix types (e.g. int and str); convert them to one type first")
        self.original_ids: list = sorted(set(ids))
        self._to_dense = {orig: i + 1 for i, orig in enumerate(self.original_ids)}

    @property
    def num_items(self) -> int:
        return len(self.original_ids)

    def to_dense(self, item) -> int:
        try:
            return self._to_dense[item]
        except KeyError:
            raise UnknownItemError(f"unknown item id {item!r} (not in the item map of {self.num_items} items)") from None

    def to_original(self, dense_id: int):
        if not 1 <= dense_id <= self.num_items:
            raise UnknownItemError(f"dense item id {dense_id} is outside 1..{self.num_items}")
        return self.original_ids[dense_id - 1]

    def save(self, directory: str) -> str:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, ITEM_MAP_FILE)
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"original_ids": self.original_ids}, f)
        return path

    @classmethod
    def load(cls, directory: str) -> ItemIdMap:
        with open(os.path.join(directory, ITEM_MAP_FILE), encoding="utf-8") as f:
            return cls(json.load(f)["original_ids"])

    def __contains__(self, item) -> bool:
        return item in self._to_dense

    def __len__(self) -> int:
        return self.num_items

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ItemIdMap) and self.original_ids == other.original_ids
