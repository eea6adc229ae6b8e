"""The prepared interaction data, one row per user: ``SequenceTable`` and its Parquet layout.

A prepared folder holds ``sequences.parquet`` (columns ``user`` string, ``items`` list of dense item ids
``int32`` in time order, and ``timestamps`` list of ``float64`` seconds when the source had them),
``item_map.json`` (dense id -> original id) and ``genrec_dataset.json`` (what the folder holds). Its size
grows with the number of interactions only: leave-one-out rows are positions in these sequences,
produced when a split is read (:mod:`hf_genrec.data.splits`), never stored.

In memory the table is kept in compressed sparse row form: ``items`` ``[T]`` (every interaction, user
by user), ``offsets`` ``[U + 1]`` (user ``u``'s items are ``items[offsets[u]:offsets[u + 1]]``) and
``timestamps`` ``[T]`` or ``None``; the user ids stay an Arrow string array. A 25M-interaction log is
100 MB of item ids and 200 MB of timestamps, with no Python object per interaction.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..utils.errors import InputError

SEQUENCES_FILE = "sequences.parquet"
DATASET_INFO_FILE = "genrec_dataset.json"
#: the layout written by this version (the earlier one stored one row per training prefix)
LAYOUT_VERSION = 2


class PreparedDatasetError(InputError):
    """Raised when a prepared dataset folder is missing, incomplete or in a layout this version cannot read."""


def _list_parts(column: pa.ChunkedArray | pa.Array, value_type: pa.DataType) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets [U + 1] int64, values [T])`` of an Arrow list column (list or large_list, any chunking)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    column = column.cast(pa.large_list(value_type))
    if column.null_count:
        raise PreparedDatasetError("a user's sequence is null")
    offsets = column.offsets.to_numpy().astype(np.int64)
    values = column.values.to_numpy(zero_copy_only=False)
    # A sliced array keeps its parent's buffers: rebase so offsets index `values` from 0.
    start = offsets[0]
    return offsets - start, values[start : offsets[-1]]


@dataclass
class SequenceTable:
    """Every user's time-ordered dense item ids (1..N; 0 is padding), in compressed sparse row form.

    Attributes:
        users: Arrow string array ``[U]``, the original user ids.
        items: ``int32 [T]``, all users' items back to back.
        offsets: ``int64 [U + 1]``, user ``u``'s sequence is ``items[offsets[u]:offsets[u + 1]]``.
        timestamps: ``float64 [T]`` aligned with ``items`` (seconds), or ``None``.
    """

    users: pa.Array
    items: np.ndarray
    offsets: np.ndarray
    timestamps: np.ndarray | None = None

    def __post_init__(self):
        self.items = np.ascontiguousarray(self.items, dtype=np.int32)
        self.offsets = np.ascontiguousarray(self.offsets, dtype=np.int64)
        if self.offsets.ndim != 1 or len(self.offsets) != len(self.users) + 1 or self.offsets[0] != 0:
            raise InputError(f"offsets must be [users + 1] starting at 0, got {self.offsets.shape} for {len(self.users)} users")
        if self.offsets[-1] != len(self.items) or np.any(np.diff(self.offsets) < 0):
            raise InputError("offsets must be non-decreasing and end at the number of items")
        if self.timestamps is not None:
            self.timestamps = np.ascontiguousarray(self.timestamps, dtype=np.float64)
            if len(self.timestamps) != len(self.items):
                raise InputError(f"{len(self.items)} items but {len(self.timestamps)} timestamps")

    @property
    def num_users(self) -> int:
        return len(self.users)

    @property
    def num_interactions(self) -> int:
        return len(self.items)

    @property
    def lengths(self) -> np.ndarray:
        """``int64 [U]``: each user's number of interactions."""
        return np.diff(self.offsets)

    def user(self, u: int) -> str:
        return self.users[u].as_py()

    def sequence(self, u: int) -> np.ndarray:
        return self.items[self.offsets[u] : self.offsets[u + 1]]

    @classmethod
    def from_lists(cls, users: list[str], sequences: list[list[int]], timestamps: list[list[float]] | None = None):
        """A table from Python lists (small data and tests)."""
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        flat = np.fromiter((i for s in sequences for i in s), dtype=np.int32, count=int(offsets[-1]))
        times = None
        if timestamps is not None:
            times = np.fromiter((t for s in timestamps for t in s), dtype=np.float64, count=int(offsets[-1]))
        return cls(pa.array(users, pa.large_string()), flat, offsets, times)

    def to_arrow(self) -> pa.Table:
        columns = {
            "user": self.users.cast(pa.large_string()),
            "items": pa.LargeListArray.from_arrays(pa.array(self.offsets), pa.array(self.items, pa.int32())),
        }
        if self.timestamps is not None:
            columns["timestamps"] = pa.LargeListArray.from_arrays(pa.array(self.offsets), pa.array(self.timestamps))
        return pa.table(columns)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> SequenceTable:
        for needed in ("user", "items"):
            if needed not in table.column_names:
                raise PreparedDatasetError(f"the sequence table has no {needed!r} column (columns: {table.column_names})")
        offsets, items = _list_parts(table.column("items"), pa.int32())
        times = None
        if "timestamps" in table.column_names:
            t_offsets, times = _list_parts(table.column("timestamps"), pa.float64())
            if not np.array_equal(t_offsets, offsets):
                raise PreparedDatasetError("timestamps are not aligned with items (different list lengths)")
        users = table.column("user").combine_chunks().cast(pa.large_string())
        return cls(users, items, offsets, times)

    def write_parquet(self, path: str) -> None:
        # Row groups of ~1M interactions keep a reader's working set small; zstd: ids compress 2-3x.
        rows = max(1, int(len(self.users) * min(1.0, 1_000_000 / max(1, self.num_interactions))))
        pq.write_table(self.to_arrow(), path, compression="zstd", row_group_size=rows)

    @classmethod
    def read_parquet(cls, path: str) -> SequenceTable:
        return cls.from_arrow(pq.read_table(path))


def write_dataset_info(directory: str, info: dict) -> None:
    with open(os.path.join(directory, DATASET_INFO_FILE), "w") as f:
        json.dump({"layout_version": LAYOUT_VERSION, **info}, f, indent=2)


def read_dataset_info(directory: str) -> dict:
    """``genrec_dataset.json`` of a prepared folder; an old (prefix-row) folder or a foreign one is refused."""
    path = os.path.join(directory, DATASET_INFO_FILE)
    if not os.path.isdir(directory):
        raise PreparedDatasetError(f"prepared dataset folder not found: {directory}")
    if not os.path.exists(path):
        if os.path.exists(os.path.join(directory, "dataset_dict.json")):
            raise PreparedDatasetError(
                f"{directory} was prepared by an earlier hf_genrec (one stored row per training prefix); re-run "
                "`hf-genrec prepare --input <your interaction file> --output_dir <folder>` to write the per-user layout"
            )
        raise PreparedDatasetError(f"{directory} is not a prepared dataset folder (no {DATASET_INFO_FILE})")
    with open(path) as f:
        info = json.load(f)
    if info.get("layout_version") != LAYOUT_VERSION:
        raise PreparedDatasetError(
            f"{path}: layout version {info.get('layout_version')!r}, this hf_genrec reads {LAYOUT_VERSION}; "
            "re-run hf-genrec prepare"
        )
    if not os.path.exists(os.path.join(directory, SEQUENCES_FILE)):
        raise PreparedDatasetError(f"{directory} lacks {SEQUENCES_FILE}; re-run hf-genrec prepare")
    return info
