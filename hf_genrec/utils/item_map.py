"""Bijection between a dataset's original item ids and the dense ids 1..N used by models (0 = padding)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from .errors import InputError, UnknownItemError

ITEM_MAP_FILE = "item_map.json"
PAD_ITEM = 0


class ItemIdMap:
    """Maps original item ids to ``1..N``; ``0`` is reserved for padding.

    Dense ids follow the sorted order of the original ids, so a dataset whose items are the
    integers ``0..N-1`` gets ``id + 1`` and the mapping is reproducible across runs. Items added to a
    trained model (:meth:`extended`) take the next dense ids ``N+1, N+2, ...`` in the order given, so
    the ids the model already knows never move; the saved list keeps that order.
    """

    def __init__(self, original_ids: Iterable):
        ids = list(original_ids)
        self._check_types(ids)
        self._set(sorted(set(ids)))

    @staticmethod
    def _check_types(ids: list) -> None:
        if len(set(map(type, ids))) > 1:
            raise TypeError("item ids mix types (e.g. int and str); convert them to one type first")

    def _set(self, ordered_ids: list) -> None:
        self.original_ids: list = ordered_ids
        self._to_dense = {orig: i + 1 for i, orig in enumerate(self.original_ids)}

    @classmethod
    def from_ordered(cls, original_ids: Iterable) -> ItemIdMap:
        """The map whose dense id ``i + 1`` is ``original_ids[i]``, in the order given (no sorting);
        duplicates raise."""
        ids = list(original_ids)
        cls._check_types(ids)
        if len(set(ids)) != len(ids):
            seen, dup = set(), None
            for i in ids:
                if i in seen:
                    dup = i
                    break
                seen.add(i)
            raise InputError(f"item id {dup!r} appears twice in the item map")
        out = cls.__new__(cls)
        out._set(ids)
        return out

    def extended(self, new_ids: Iterable) -> ItemIdMap:
        """A new map with ``new_ids`` appended as dense ids ``N+1 ..`` (this map is unchanged).

        Raises ``ValueError`` naming an id that is already mapped or given twice, and ``TypeError``
        when the new ids' type differs from the existing ones'."""
        # numpy / torch scalars (e.g. from a pandas column) become the Python ints or strings they hold.
        new = [i.item() if hasattr(i, "item") and not isinstance(i, (str, bytes)) else i for i in new_ids]
        known = [i for i in new if i in self._to_dense]
        if known:
            raise InputError(f"item id(s) {', '.join(map(repr, known[:10]))} already exist in the item map")
        if self.original_ids and new and {type(i) for i in new} != {type(self.original_ids[0])}:
            raise TypeError(
                f"new item ids must have the type of the existing ones ({type(self.original_ids[0]).__name__}), "
                f"got {sorted({type(i).__name__ for i in new})}"
            )
        return ItemIdMap.from_ordered([*self.original_ids, *new])

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

    @classmethod
    def identity(cls, num_items: int) -> ItemIdMap:
        """The map of a catalogue whose item ids already are ``1..num_items``."""
        return cls(range(1, num_items + 1))

    def to_dense_many(self, items: Iterable, unknown: str = "error") -> tuple[list[int], list]:
        """Dense ids of ``items`` (order kept) and the unknown ids that were dropped.

        ``unknown="error"`` raises :class:`UnknownItemError` naming every unknown id; ``"drop"`` skips them.
        """
        if unknown not in ("error", "drop"):
            raise InputError(f"unknown must be 'error' or 'drop', got {unknown!r}")
        dense, missing = [], []
        for item in items:
            idx = self._to_dense.get(item)
            if idx is None:
                missing.append(item)
            else:
                dense.append(idx)
        if missing and unknown == "error":
            shown = ", ".join(repr(m) for m in missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise UnknownItemError(f"unknown item id(s) {shown} (not in the item map of {self.num_items} items)")
        return dense, missing

    def to_original_many(self, dense_ids: Iterable[int]) -> list:
        """Original ids of dense ids; ``-1`` or ``0`` (no item) map to ``None``."""
        return [self.original_ids[i - 1] if 1 <= i <= self.num_items else None for i in map(int, dense_ids)]

    def save(self, directory: str) -> str:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, ITEM_MAP_FILE)
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"original_ids": self.original_ids}, f)
        return path

    @classmethod
    def load(cls, directory_or_file: str) -> ItemIdMap:
        """Read ``item_map.json`` from a folder (or the file itself)."""
        path = directory_or_file
        if os.path.isdir(path):
            path = os.path.join(path, ITEM_MAP_FILE)
        with open(path, encoding="utf-8") as f:
            try:
                saved = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise InputError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(saved, dict) or not isinstance(saved.get("original_ids"), list):
            raise InputError(f'{path}: expected an object {{"original_ids": [item ids in dense order]}}')
        ids = saved["original_ids"]
        for position, item in enumerate(ids):
            # bool is an int subclass; JSON true is never an item id, nor is 1.0 or an object.
            if isinstance(item, bool) or not isinstance(item, int | str):
                raise InputError(f"{path}: original_ids[{position}] is {item!r} ({type(item).__name__}); item ids are "
                                 "integers or strings")
        try:
            # The saved order is the dense order (sorted, then any items added after training).
            return cls.from_ordered(ids)
        except (TypeError, ValueError) as e:
            raise InputError(f"{path}: {e}") from None

    def __contains__(self, item) -> bool:
        return item in self._to_dense

    def __len__(self) -> int:
        return self.num_items

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ItemIdMap) and self.original_ids == other.original_ids
