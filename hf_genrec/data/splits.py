"""Leave-one-out splits (TIGER / ETEGRec protocol) as views over a :class:`~hf_genrec.data.table.SequenceTable`.

For a user with items ``s[0..n-1]``: the test row is target ``s[n-1]`` with history ``s[:n-1]``, the
validation row target ``s[n-2]`` with history ``s[:n-2]``, and the training rows target ``s[t]`` with
history ``s[:t]`` for ``1 <= t < n-2`` (one per prefix) or, for whole-sequence training, one row per
window of ``max_history + 1`` items of ``s[:n-2]``. Every row is a (user, target position) pair computed
from per-user lengths when it is read: nothing per row is stored, so memory and disk grow with the
number of interactions, not interactions x history.

A row is a dict ``{"user", "history", "target", "length"}`` (plus ``"history_timestamps"`` when the
table has timestamps): ``history`` the dense item ids before the target (oldest first, the last
``max_history`` of them, or all with ``max_history=None``), ``length`` its length (for group-by-length
sampling). Views are ``torch.utils.data.Dataset`` objects, so ``Trainer`` and ``DataLoader`` take them
as they are; ``select`` / ``shuffle`` / ``column_names`` / ``split["column"]`` work as on a
``datasets.Dataset``.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ..utils.atomic import staged_folder
from ..utils.errors import InputError, OutputExistsError
from ..utils.item_map import ItemIdMap
from .readers import SequenceData
from .table import DATASET_INFO_FILE, SEQUENCES_FILE, SequenceTable, read_dataset_info, write_dataset_info

logger = logging.getLogger(__name__)

#: the kinds of rows a view produces (see :class:`LeaveOneOutRows`)
ROW_KINDS = ("train", "windows", "validation", "test")
#: the fewest interactions a user needs: a validation and a test target, each with a history
MIN_LENGTH = 3


def _segment_ranks(counts: np.ndarray) -> np.ndarray:
    """``[sum(counts)]``: 0, 1, .., counts[0]-1, 0, 1, .., counts[1]-1, ... (the rank of each row in its user)."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


class LeaveOneOutRows(torch.utils.data.Dataset):
    """One kind of leave-one-out row over a table (see the module docstring).

    Args:
        table: the users' sequences.
        kind: ``"train"`` (one row per prefix), ``"windows"`` (whole-sequence windows of the training
            part), ``"validation"`` or ``"test"`` (one row per user).
        max_history: the most recent history items a row holds; ``None`` keeps them all (what
            evaluation with seen items excluded needs).
        window: the window's history length for ``"windows"`` (default ``max_history``).
        rows: optional indices into the view's rows (what ``select`` / ``shuffle`` return).
    """

    def __init__(
        self,
        table: SequenceTable,
        kind: str,
        max_history: int | None = None,
        window: int | None = None,
        rows: np.ndarray | None = None,
    ):
        if kind not in ROW_KINDS:
            raise InputError(f"kind must be one of {ROW_KINDS}, got {kind!r}")
        if max_history is not None and max_history < 1:
            raise InputError(f"max_history must be >= 1 or None, got {max_history}")
        self.table, self.kind, self.max_history = table, kind, max_history
        self.window = window or max_history
        if kind == "windows" and not self.window:
            raise InputError("whole-sequence windows need a window length (max_history)")
        n = table.lengths
        if kind == "train":
            counts = np.maximum(n - MIN_LENGTH, 0)
        elif kind == "windows":  # targets at n-3, n-3-W, ... while >= 1
            counts = np.where(n >= 4, (n - 4) // self.window + 1, 0)
        else:
            counts = np.ones_like(n)
        self._counts = counts
        self._row_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.column_names = ["user", "history", "target", "length"] + (
            ["history_timestamps"] if table.timestamps is not None else []
        )

    # ------------------------------------------------------------------ positions
    def __len__(self) -> int:
        return int(self._row_offsets[-1]) if self._rows is None else len(self._rows)

    def _base_rows(self, index: np.ndarray) -> np.ndarray:
        if self._rows is not None:
            index = self._rows[index]
        return index

    def _positions(self, users: np.ndarray, rank: np.ndarray) -> np.ndarray:
        """Target positions in each user's sequence ``[R]`` of the ``rank``-th row of ``users`` ``[R]``."""
        n = self.table.lengths[users]
        if self.kind == "validation":
            return n - 2
        if self.kind == "test":
            return n - 1
        if self.kind == "train":
            return rank + 1
        return n - 3 - rank * self.window  # windows end W items apart, the last at n - 3

    def _locate(self, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Users ``[R]`` and target positions within each user's sequence ``[R]`` of base rows ``[R]``."""
        users = np.searchsorted(self._row_offsets, base, side="right") - 1
        return users, self._positions(users, base - self._row_offsets[users])

    def _locate_all(self) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_locate` of every row of the view; for the unselected view from the per-user counts
        alone (O(rows), no search)."""
        if self._rows is not None:
            return self._locate(self._rows)
        users = np.repeat(np.arange(self.table.num_users), self._counts)
        return users, self._positions(users, _segment_ranks(self._counts))

    def _history_start(self, positions: np.ndarray) -> np.ndarray:
        span = self.window if self.kind == "windows" else self.max_history
        return np.zeros_like(positions) if span is None else np.maximum(positions - span, 0)

    @property
    def lengths(self) -> np.ndarray:
        """``int64 [len(self)]``: each row's history length, from the per-user lengths (for group-by-length sampling)."""
        _, pos = self._locate_all()
        return pos - self._history_start(pos)

    # ------------------------------------------------------------------ rows
    def _rows_at(self, index: np.ndarray) -> list[dict]:
        users, pos = self._locate(self._base_rows(index))
        starts = self._history_start(pos)
        table, items, times = self.table, self.table.items, self.table.timestamps
        out = []
        for u, p, s in zip(users.tolist(), pos.tolist(), starts.tolist()):
            base = int(table.offsets[u])
            row = {
                "user": table.user(u),
                "history": items[base + s : base + p].tolist(),
                "target": int(items[base + p]),
                "length": p - s,
            }
            if times is not None:
                row["history_timestamps"] = times[base + s : base + p].tolist()
            out.append(row)
        return out

    def _check_index(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for {n} rows")
        return i % n if n else i

    def __getitem__(self, key):
        if isinstance(key, str):
            return self.column(key)
        if isinstance(key, slice):
            rows = self._rows_at(np.arange(len(self))[key])
            return {c: [r[c] for r in rows] for c in self.column_names}
        if isinstance(key, int | np.integer):
            return self._rows_at(np.array([self._check_index(int(key))]))[0]
        raise TypeError(f"rows are indexed by int, slice or column name, not {type(key).__name__}")

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        """A batch of rows at once (``DataLoader`` calls this): the positions are found vectorised."""
        return self._rows_at(np.asarray([self._check_index(int(i)) for i in indices], dtype=np.int64))

    def __iter__(self) -> Iterator[dict]:
        for start in range(0, len(self), 1024):
            yield from self._rows_at(np.arange(start, min(start + 1024, len(self))))

    def column(self, name: str) -> list:
        """One column of every row as a list (materialised: for small splits and inspection)."""
        if name not in self.column_names:
            raise KeyError(f"no column {name!r}; columns: {self.column_names}")
        if name == "length":
            return self.lengths.tolist()
        if name == "target":
            users, pos = self._locate_all()
            return self.table.items[self.table.offsets[users] + pos].astype(np.int64).tolist()
        return [r[name] for r in self]

    # ------------------------------------------------------------------ datasets-like
    def select(self, indices) -> LeaveOneOutRows:
        """The rows at ``indices`` (in that order), as a view."""
        if isinstance(indices, range):
            idx = np.arange(indices.start, indices.stop, indices.step, dtype=np.int64)
        else:
            idx = np.asarray(indices if isinstance(indices, np.ndarray) else list(indices), dtype=np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"indices must lie in 0..{len(self) - 1}")
        return LeaveOneOutRows(self.table, self.kind, self.max_history, self.window, self._base_rows(idx))

    def shuffle(self, seed: int | None = None) -> LeaveOneOutRows:
        """The rows in a random order (``numpy.random.default_rng(seed).permutation``, as ``datasets`` does)."""
        return self.select(np.random.default_rng(seed).permutation(len(self)))

    def __repr__(self) -> str:
        return f"LeaveOneOutRows(kind={self.kind!r}, rows={len(self)}, max_history={self.max_history})"


class GenRecDatasetDict(dict):
    """The splits ``train`` / ``validation`` / ``test`` of one table, with its :class:`ItemIdMap`.

    ``train`` holds one row per prefix with at most ``max_history`` history items; ``validation`` and
    ``test`` one row per user with the whole history (``None``) or the last ``max_history`` items as
    asked. :meth:`whole_sequence_rows` gives the windows of whole-sequence training. ``save_to_disk``
    writes the per-user layout (:mod:`hf_genrec.data.table`); :func:`load_genrec_dataset` reads it back.
    """

    def __init__(
        self,
        table: SequenceTable,
        item_map: ItemIdMap,
        max_history: int | None = 50,
        eval_max_history: int | None = None,
        num_dropped_users: int = 0,
        summary: dict | None = None,
    ):
        super().__init__(
            train=LeaveOneOutRows(table, "train", max_history),
            validation=LeaveOneOutRows(table, "validation", eval_max_history),
            test=LeaveOneOutRows(table, "test", eval_max_history),
        )
        self.table, self.item_map, self.max_history = table, item_map, max_history
        self.num_dropped_users, self.summary = num_dropped_users, summary or {}

    @property
    def num_items(self) -> int:
        return self.item_map.num_items

    @property
    def has_timestamps(self) -> bool:
        return self.table.timestamps is not None

    def whole_sequence_rows(self, max_history: int) -> LeaveOneOutRows:
        """Training rows for whole-sequence training (``train_on_all_positions``): each user's training
        sequence (everything before the validation target) as windows of at most ``max_history + 1``
        items; ``history`` = the window without its last item, ``target`` = that item.

        A sequence longer than a window is cut into windows that end ``max_history`` items apart, so
        every transition is trained once per epoch (the first target of each window reads only the
        items of its window). Timestamps follow the items when the table has them."""
        if max_history < 1:
            raise InputError(f"max_history must be >= 1, got {max_history}")
        rows = LeaveOneOutRows(self.table, "windows", max_history)
        if not len(rows):
            raise InputError("no user has a training sequence of two items or more")
        return rows

    def save_to_disk(self, path: str) -> None:
        """Write ``sequences.parquet``, ``item_map.json`` and ``genrec_dataset.json`` into ``path``
        (atomically: a folder that exists afterwards is complete)."""
        write_prepared(path, self.table, self.item_map, self.summary, self.num_dropped_users)


def write_prepared(path: str, table: SequenceTable, item_map: ItemIdMap, summary: dict | None = None,
                   num_dropped_users: int = 0, extra_files: dict[str, str] | None = None) -> None:
    """Write a prepared folder into a temporary sibling and rename it into place, so a failure or a
    kill leaves the previous ``path`` (or none), never a partial one. ``extra_files`` maps file names
    to paths of files to move in beside the table (item text, interactions)."""
    check_replaceable(path)
    with staged_folder(path, keep_other_files=False) as tmp:
        table.write_parquet(os.path.join(tmp, SEQUENCES_FILE))
        item_map.save(tmp)
        for name, src in (extra_files or {}).items():
            shutil.move(src, os.path.join(tmp, name))
        write_dataset_info(tmp, {
            "users": table.num_users,
            "items": item_map.num_items,
            "interactions": table.num_interactions,
            "timestamps": table.timestamps is not None,
            "dropped_users": num_dropped_users,
            "summary": summary or {},
        })


def check_replaceable(path: str, inputs: tuple[str, ...] = ()) -> None:
    """Refuse to write a prepared folder over anything but an empty folder or an earlier prepared one
    (it is replaced whole), or over a folder that holds one of the ``inputs``."""
    if not os.path.exists(path):
        return
    if not os.path.isdir(path):
        raise OutputExistsError(f"{path} exists and is not a folder")
    target = os.path.realpath(path)
    for given in inputs:
        if given and os.path.realpath(given).startswith(target + os.sep):
            raise InputError(f"the input {given} lies inside the output folder {path}; write the prepared folder elsewhere")
    markers = (DATASET_INFO_FILE, "dataset_dict.json")
    if os.listdir(path) and not any(os.path.exists(os.path.join(path, m)) for m in markers):
        raise OutputExistsError(
            f"{path} is not empty and not a prepared dataset folder; it would be replaced whole, so choose a new or "
            "empty folder"
        )


def load_genrec_dataset(path: str, max_history: int | None = 50, eval_max_history: int | None = None) -> GenRecDatasetDict:
    """Load a prepared folder (``hf-genrec prepare`` or :meth:`GenRecDatasetDict.save_to_disk` output).

    ``max_history`` bounds the training rows' histories; validation / test rows keep
    ``eval_max_history`` items (default all, so evaluation can exclude every seen item). A folder in
    the earlier one-row-per-prefix layout is refused with a message to re-run the preparation."""
    info = read_dataset_info(path)
    table = SequenceTable.read_parquet(os.path.join(path, SEQUENCES_FILE))
    item_map = ItemIdMap.load(path)
    if table.num_interactions and not 1 <= int(table.items.min()) <= int(table.items.max()) <= item_map.num_items:
        raise InputError(f"{path}: item ids outside 1..{item_map.num_items} (item_map.json does not belong to this table)")
    short = int((table.lengths < MIN_LENGTH).sum())
    if short:
        raise InputError(f"{path}: {short} user(s) have fewer than {MIN_LENGTH} interactions; re-run hf-genrec prepare")
    return GenRecDatasetDict(table, item_map, max_history, eval_max_history, info.get("dropped_users", 0), info.get("summary"))


def leave_one_out(
    sequences: dict[str, list] | SequenceData,
    max_history: int | None = 50,
    min_length: int = MIN_LENGTH,
    on_short: str = "error",
    eval_max_history: int | None = None,
) -> GenRecDatasetDict:
    """Split per-user sequences leave-one-out (see the module docstring). Item ids are remapped to
    ``1..N`` in the sorted order of the original ids (0 = padding).

    Args:
        sequences: user -> time-ordered item ids, or a :class:`SequenceData` (columnar, with timestamps).
        max_history: the most recent history items a row keeps (``None``: all).
        min_length: users need this many interactions (3: a user with exactly 3 gives a validation
            and a test row but no training row).
        on_short: ``"error"`` raises on a user shorter than ``min_length``; ``"drop"`` drops them and
            logs how many (also stored as ``num_dropped_users``).
        eval_max_history: history items of validation / test rows; ``None`` (the default, as
            :func:`load_genrec_dataset`) keeps every item, so evaluation with seen items excluded
            leaves out the whole history while the model reads its own ``max_history``.
    """
    data = sequences if isinstance(sequences, SequenceData) else SequenceData(sequences)
    if min_length < MIN_LENGTH:
        raise InputError(f"min_length must be at least {MIN_LENGTH} (a validation and a test target need a history)")
    if on_short not in ("error", "drop"):
        raise InputError(f"on_short must be 'error' or 'drop', got {on_short!r}")
    table, item_map, dropped = data.to_table(min_length, on_short)
    return GenRecDatasetDict(table, item_map, max_history, eval_max_history, dropped)


def train_sequences(dsd: GenRecDatasetDict) -> Iterator[np.ndarray]:
    """Each user's training sequence (everything before the validation target), dense ids ``int32``."""
    table = dsd.table
    for u in range(table.num_users):
        yield table.items[table.offsets[u] : table.offsets[u + 1] - 2]


def whole_sequence_rows(dsd: GenRecDatasetDict, max_history: int) -> LeaveOneOutRows:
    """:meth:`GenRecDatasetDict.whole_sequence_rows` (kept as a function for recipes and user code)."""
    return dsd.whole_sequence_rows(max_history)
