"""Readers that turn prepared interaction files into per-user, time-ordered item sequences.

Every reader returns a :class:`SequenceData`: a polars frame with one row per user (``user``,
``items`` in time order, ``timestamps`` where the file has them) and, optionally, ``item_text``
(item id -> text). Item ids keep their original type here; :func:`hf_genrec.data.leave_one_out`
remaps them. The files are read by polars (no Python object per interaction), except the
``{user: [items]}`` JSON object, which has no streaming reader.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import polars as pl
import pyarrow as pa

from ..utils.errors import InputError
from ..utils.item_map import ItemIdMap
from .columnar import check_events, dense_codes, sequences_in_file_order
from .errors import InteractionFormatError
from .item_text import find_item_text_file, read_item_texts
from .sources import raw_lines, read_delimited, require_file, text_lines
from .table import SequenceTable

logger = logging.getLogger(__name__)

ItemId = int | str


def _item_dtype(items: list, where: str) -> pl.DataType:
    kinds = set()
    for item in items:
        # bool is an int subclass; a JSON `true` is never an item id.
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise InteractionFormatError(f"{where}: item ids must be int or str, got {type(item).__name__} ({item!r})")
        kinds.add(type(item))
        if len(kinds) > 1:
            raise InteractionFormatError(f"{where}: item ids mix types (int and str); convert them to one type first")
    return pl.Int64 if kinds == {int} else pl.String


class SequenceData:
    """Per-user item sequences (time order) as a polars frame, with optional item text and timestamps.

    Args:
        sequences: a frame with ``user`` (string), ``items`` (list of int or str) and optionally
            ``timestamps`` (list of float seconds, aligned), or a dict ``{user: [item, ...]}``.
        item_text: item id -> text.
        timestamps: with a dict of sequences, ``{user: [seconds, ...]}`` aligned with them.
        source: the file read.
        summary: what the preparation did (counts), when it came from a raw dump.
    """

    def __init__(
        self,
        sequences: pl.DataFrame | dict,
        item_text: dict | None = None,
        timestamps: dict | None = None,
        source: str = "",
        summary: dict | None = None,
    ):
        if isinstance(sequences, dict):
            users = [str(u) for u in sequences]
            # numpy / torch scalars (e.g. from an array per user) become the Python ints or strings they hold.
            lists = [[i.item() if hasattr(i, "item") and not isinstance(i, str) else i for i in s] for s in sequences.values()]
            dtype = _item_dtype([i for s in lists for i in s], source or "sequences")
            columns = {"user": pl.Series(users, dtype=pl.String), "items": pl.Series(lists, dtype=pl.List(dtype))}
            if timestamps is not None:
                columns["timestamps"] = pl.Series([[float(t) for t in timestamps[u]] for u in sequences],
                                                  dtype=pl.List(pl.Float64))
            sequences = pl.DataFrame(columns)
        if sequences is not None:
            for needed in ("user", "items"):
                if needed not in sequences.columns:
                    raise InputError(f"a sequence frame needs a {needed!r} column, got {sequences.columns}")
        self._frame = sequences
        self._dense: tuple[SequenceTable, ItemIdMap] | None = None
        self.item_text, self.source, self.summary = item_text, source, summary or {}

    @classmethod
    def from_table(cls, table: SequenceTable, item_map: ItemIdMap, **kwargs) -> SequenceData:
        """Sequences already in dense form (what raw preparation produces): ``to_table`` returns them
        as they are, and the frame of original ids is built only if asked for."""
        data = cls(None, **kwargs)
        data._dense = (table, item_map)
        return data

    @property
    def frame(self) -> pl.DataFrame:
        """One row per user: ``user``, ``items`` (original ids), ``timestamps`` when known."""
        if self._frame is None:
            table, item_map = self._dense
            originals = pl.Series(item_map.original_ids)
            flat = originals.gather(pl.Series(table.items).cast(pl.Int64) - 1)
            columns = {"user": pl.Series(table.users), "items": _regroup(flat, table.offsets)}
            if table.timestamps is not None:
                columns["timestamps"] = _regroup(pl.Series(table.timestamps), table.offsets)
            self._frame = pl.DataFrame(columns)
        return self._frame

    def item_ids(self) -> list:
        """The distinct original item ids."""
        if self._dense is not None:
            return list(self._dense[1].original_ids)
        return self.frame["items"].explode().unique().to_list()

    @property
    def has_timestamps(self) -> bool:
        if self._dense is not None:
            return self._dense[0].timestamps is not None
        return "timestamps" in self.frame.columns

    @property
    def sequences(self) -> dict[str, list[ItemId]]:
        """``{user: [item, ...]}`` as Python lists (built on each call: for small data and inspection)."""
        return dict(zip(self.frame["user"].to_list(), self.frame["items"].to_list()))

    @property
    def timestamps(self) -> dict[str, list[float]] | None:
        if not self.has_timestamps:
            return None
        return dict(zip(self.frame["user"].to_list(), self.frame["timestamps"].to_list()))

    @property
    def num_users(self) -> int:
        return self._dense[0].num_users if self._dense is not None else self.frame.height

    @property
    def num_interactions(self) -> int:
        if self._dense is not None:
            return self._dense[0].num_interactions
        return int(self.frame["items"].list.len().sum() or 0)

    def to_table(self, min_length: int = 3, on_short: str = "error") -> tuple[SequenceTable, ItemIdMap, int]:
        """The dense table of the users with at least ``min_length`` items, their item map (dense ids
        in the sorted order of the original ids) and the number of users dropped as too short."""
        if self._dense is not None and (self._dense[0].lengths >= min_length).all():
            return (*self._dense, 0)
        lengths = self.frame["items"].list.len()
        short = lengths < min_length
        n_short = int(short.sum())
        if self.frame.height == 0:
            raise InputError("no sequences to split")
        if n_short and on_short == "error":
            row = int(short.arg_max())
            raise InputError(
                f"{n_short} user(s) have fewer than {min_length} interactions (e.g. user {self.frame['user'][row]!r} with "
                f"{lengths[row]}); pass on_short='drop' to drop them"
            )
        if n_short:
            logger.warning(
                "leave_one_out: dropped %d user(s) with fewer than %d interactions", n_short, min_length
            )
        kept = self.frame.filter(~short)
        if kept.height == 0:
            raise InputError("every user was dropped as too short; nothing to split")
        flat = kept["items"].explode()
        if flat.null_count():
            raise InteractionFormatError("a sequence holds a null item id")
        kept_lengths = kept["items"].list.len()
        if self.has_timestamps:
            mismatch = kept["timestamps"].list.len() != kept_lengths
            if mismatch.any():
                row = int(mismatch.arg_max())
                raise InputError(f"user {kept['user'][row]!r}: {kept_lengths[row]} items but "
                                 f"{kept['timestamps'].list.len()[row]} timestamps")
        # Dense ids 1..N follow the sorted order of the original ids (polars orders strings by their
        # UTF-8 bytes, which is Python's code point order).
        codes, ids = dense_codes(flat)
        dense = codes.to_numpy().astype(np.int32)
        item_map = ItemIdMap.from_ordered(ids.to_list())
        offsets = np.concatenate([[0], np.cumsum(kept_lengths.to_numpy())]).astype(np.int64)
        times = kept["timestamps"].explode().to_numpy().astype(np.float64) if self.has_timestamps else None
        table = SequenceTable(kept["user"].cast(pl.String).to_arrow(), dense, offsets, times)
        return table, item_map, n_short


def _regroup(flat: pl.Series, offsets: np.ndarray) -> pl.Series:
    """``flat`` cut into lists at ``offsets`` ``[U + 1]`` (the inverse of ``explode``)."""
    values = flat.to_arrow()
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return pl.Series(pa.LargeListArray.from_arrays(pa.array(np.asarray(offsets, dtype=np.int64)), values))


def _check_not_empty(data: SequenceData, path: str) -> SequenceData:
    if data.num_users == 0:
        raise InteractionFormatError(f"{path}: no interactions found (empty file?)")
    return data


def read_json_sequences(path: str) -> SequenceData:
    """Read a JSON object ``{user: [item, ...]}`` whose lists are already in time order.

    This is the layout of ``amazon-beauty/Beauty.inter.json`` (LETTER / TIGER processing). A single
    JSON object cannot be streamed, so it is parsed whole; large logs belong in a line-based format.
    """
    require_file(path)
    text = "\n".join(line for _, line in text_lines(path))
    if not text.strip():
        raise InteractionFormatError(f"{path}: file is empty")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise InteractionFormatError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from e
    if not isinstance(raw, dict):
        raise InteractionFormatError(f"{path}: expected a JSON object {{user: [items]}}, got {type(raw).__name__}")
    for user, items in raw.items():
        if not isinstance(items, list):
            raise InteractionFormatError(f"{path}: user {user!r} maps to {type(items).__name__}, expected a list")
    return _check_not_empty(SequenceData(raw, source=path), path)


def read_etegrec_jsonl(path: str) -> SequenceData:
    """Read ETEGRec-style jsonl rows ``{"inter_history": [...], "target_id": x}``.

    Each row is one (history, target) example. The user's full sequence is taken to be
    ``inter_history + [target_id]`` of that user's *longest* row (the first of equally long ones),
    so pointing this at the test file of an ETEGRec dataset recovers every user's whole sequence.
    Rows without a ``user`` / ``user_id`` field are keyed by their line number.
    """
    require_file(path)
    users, lists = {}, []
    for number, line in text_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InteractionFormatError(f"{path}:{number}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or "inter_history" not in row or "target_id" not in row:
            raise InteractionFormatError(f"{path}:{number}: expected keys 'inter_history' and 'target_id'")
        if not isinstance(row["inter_history"], list):
            raise InteractionFormatError(f"{path}:{number}: inter_history must be a list")
        seq = row["inter_history"] + [row["target_id"]]
        _item_dtype(seq, f"{path}:{number}")
        user = str(row.get("user", row.get("user_id", number)))
        if user not in users:
            users[user] = len(lists)
            lists.append(seq)
        elif len(seq) > len(lists[users[user]]):
            lists[users[user]] = seq
    data = SequenceData(dict(zip(users, lists)), source=path)
    return _check_not_empty(data, path)


def _events_to_data(events: pl.DataFrame, path: str, item_text: dict | None = None) -> SequenceData:
    return _check_not_empty(SequenceData(sequences_in_file_order(events), item_text=item_text, source=path), path)


def read_recbole_inter(path: str) -> SequenceData:
    """Read a RecBole atomic ``.inter`` file (tab separated, typed header such as
    ``user_id:token  item_id:token  rating:float  timestamp:float``), sorted by timestamp per user.

    Ties in time keep file order (stable sort), as RecBole does. Ids stay strings."""
    require_file(path)
    header = next((line for _, line in text_lines(path)), None)
    if header is None or not header.strip():
        raise InteractionFormatError(f"{path}: file is empty")
    names = [h.split(":")[0] for h in header.split("\t")]
    for needed in ("user_id", "item_id"):
        if needed not in names:
            raise InteractionFormatError(f"{path}: header {header.split(chr(9))} has no '{needed}' column")
    t_name = next((h for h in header.split("\t") if h.split(":")[0] == "timestamp"), None)
    frame = read_delimited(path, "\t", quote_char=None, numeric={t_name: "timestamp"} if t_name else None)
    frame.columns = [n.split(":")[0] if n not in ("line", "order") else n for n in frame.columns]
    keep = {"user_id": "user", "item_id": "item"} | ({"timestamp": "timestamp"} if "timestamp" in names else {})
    events = frame.select(*(pl.col(k).alias(v) for k, v in keep.items()), "line", "order")
    return _events_to_data(check_events(events, path, "timestamp", "user_id", "item_id"), path)


def read_movielens_dat_events(path: str) -> pl.DataFrame:
    """Events of a ``::``-separated ``ratings.dat``: ``user``, ``item`` (strings), ``rating``,
    ``timestamp`` (floats), ``order``, ``line``."""
    require_file(path)
    # polars reads single-byte separators; the unit separator never occurs in these files.
    data = b"\n".join(line for _, line in raw_lines(path)).replace(b"::", b"\x1f")
    frame = read_delimited(path, "\x1f", ["user", "item", "rating", "timestamp"], quote_char=None, source=data,
                           file_separator="::", numeric={"rating": "rating", "timestamp": "timestamp"},
                           required=["user", "item", "timestamp"])
    return check_events(frame, path, "timestamp", "user", "movie")


def read_hllm_csv(path: str) -> SequenceData:
    """Read HLLM's interaction layout ``<name>.csv`` (header ``item_id,user_id,timestamp``, any column
    order), sorted by timestamp per user (ties keep file order). Ids stay strings, as in the official
    code. ``item_text`` comes from ``information/<name>.csv`` beside the file or one level up."""
    require_file(path)
    frame = read_delimited(path, ",", numeric={"timestamp": "timestamp"})
    header = [c for c in frame.columns if c not in ("line", "order")]
    for needed in ("item_id", "user_id", "timestamp"):
        if needed not in header:
            raise InteractionFormatError(f"{path}: header {header} has no '{needed}' column")
    events = frame.select(user="user_id", item="item_id", timestamp="timestamp", line="line", order="order")
    info = find_item_text_file(path)
    item_text = read_item_texts(info) if info and info.endswith(".csv") else None
    return _events_to_data(check_events(events, path, "timestamp", "user_id", "item_id"), path, item_text)
