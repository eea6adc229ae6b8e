"""The columnar core of data preparation (polars): interaction events in, per-user sequences out.

Every reader turns its file into an *event frame*, one row per interaction with the columns ``user``
(string), ``item`` (string or integer), ``timestamp`` (float seconds, optional), ``rating`` (float,
optional, raw dumps) and ``order`` (the record's position in the file, which breaks ties in time).
Two pipelines turn events into a *sequence frame* (one row per user: ``user``, ``items`` list,
``timestamps`` list when known):

* :func:`sequences_in_file_order` for prepared formats: each user's events sorted by time (ties keep
  file order), users in order of first appearance, nothing dropped.
* :func:`prepare_events` for raw dumps: an optional rating threshold, repeated (user, item) pairs
  dropped keeping the earliest, the iterative k-core, then time order and users sorted by id.

Both run on polars' engine (no Python object per interaction), so a 25M-interaction log fits in a
few GB. Bad values are checked here with the record they came from (:func:`check_events`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from .errors import InteractionFormatError
from .sources import line_of_record
from .table import SequenceTable


def _line_of(frame: pl.DataFrame, row: int, path: str) -> str:
    if "line" in frame.columns:
        return str(frame["line"][row])
    return str(line_of_record(path, int(frame["order"][row]), header=False))


def check_events(events: pl.DataFrame, path: str, time_field: str = "timestamp",
                 user_field: str = "user", item_field: str = "item") -> pl.DataFrame:
    """Refuse null ids and missing, non-numeric, NaN or infinite timestamps, naming the file and line.

    ``events`` holds the raw columns as read (strings or numbers); the result has ``timestamp`` as
    ``Float64``. The line is the ``line`` column where the reader kept one, else found by counting
    the file's non-blank lines."""
    for column, field in (("user", user_field), ("item", item_field)):
        nulls = events[column].is_null()
        if nulls.any():
            row = int(nulls.arg_max())
            raise InteractionFormatError(f"{path}:{_line_of(events, row, path)}: missing {field}")
    if "timestamp" in events.columns:
        raw = events["timestamp"]
        if raw.dtype == pl.String:
            parsed = raw.str.strip_chars().cast(pl.Float64, strict=False)
        else:
            parsed = raw.cast(pl.Float64, strict=False)
        bad = parsed.is_null() | parsed.is_nan() | parsed.is_infinite()
        if bad.any():
            row = int(bad.arg_max())
            value = raw[row]
            what = "missing" if value is None else f"not a finite number ({value!r})"
            raise InteractionFormatError(f"{path}:{_line_of(events, row, path)}: {time_field} is {what}")
        events = events.with_columns(timestamp=parsed)
    if "rating" in events.columns and events["rating"].dtype == pl.String:
        raw = events["rating"]
        parsed = raw.str.strip_chars().cast(pl.Float64, strict=False)
        bad = parsed.is_null() & raw.is_not_null() & (raw.str.strip_chars() != "")
        if bad.any():
            row = int(bad.arg_max())
            raise InteractionFormatError(f"{path}:{_line_of(events, row, path)}: the rating {raw[row]!r} is not a number")
        events = events.with_columns(rating=parsed)
    return events


def sequences_in_file_order(events: pl.DataFrame) -> pl.DataFrame:
    """Per-user sequences of a prepared file: each user's events by time, ties in file order; users in
    order of first appearance. Returns ``user``, ``items`` and (when events have them) ``timestamps``."""
    keys = ["first", "order"] if "timestamp" not in events.columns else ["first", "timestamp", "order"]
    ordered = events.with_columns(first=pl.col("order").min().over("user")).sort(keys)
    aggs = [pl.col("item").alias("items")]
    if "timestamp" in events.columns:
        aggs.append(pl.col("timestamp").alias("timestamps"))
    return ordered.group_by("user", maintain_order=True).agg(aggs)


def dense_codes(values: pl.Series) -> tuple[pl.Series, pl.Series]:
    """``(codes, ids)``: each value's 1-based position among the sorted distinct values (``UInt32``)
    and those sorted values. A hash lookup: ``rank("dense")`` sorts every row and is ~30x slower on strings."""
    ids = values.unique().sort()
    codes = values.replace_strict(ids, pl.int_range(1, len(ids) + 1, eager=True, dtype=pl.UInt32))
    return codes, ids


def k_core_codes(pairs: pl.DataFrame, min_user: int, min_item: int) -> tuple[pl.DataFrame, int]:
    """The iterative k-core of (``u``, ``i``) rows: drop users with fewer than ``min_user`` and items
    with fewer than ``min_item`` rows, both counted on the same rows, until nothing changes.

    Returns the kept rows (order preserved) and the number of passes that dropped something (a pass
    that only drops a user or item left with no rows counts too, as in the set formulation)."""
    users, items = pairs["u"].n_unique(), pairs["i"].n_unique()
    passes = 0
    while True:
        good_u = pairs.group_by("u").len().filter(pl.col("len") >= min_user)["u"]
        good_i = pairs.group_by("i").len().filter(pl.col("len") >= min_item)["i"]
        if len(good_u) == users and len(good_i) == items:
            return pairs, passes
        users, items = len(good_u), len(good_i)
        passes += 1
        pairs = pairs.filter(pl.col("u").is_in(good_u.implode()) & pl.col("i").is_in(good_i.implode()))


@dataclass
class EncodedEvents:
    """Events with integer ids: ``frame`` has ``u`` / ``i`` (``UInt32`` codes: code k is the k-th
    smallest id, so code order is id order), ``t``, ``order`` and ``rating`` when the source has it;
    ``user_ids`` / ``item_ids`` are the sorted distinct ids (code k is ``ids[k - 1]``). Strings take
    most of a log's memory; encoded, the rest of the preparation runs on integers."""

    frame: pl.DataFrame
    user_ids: pl.Series
    item_ids: pl.Series


def encode_events(events: pl.DataFrame) -> EncodedEvents:
    """:class:`EncodedEvents` of an event frame (drop your reference to ``events`` to free its strings)."""
    u, user_ids = dense_codes(events["user"])
    i, item_ids = dense_codes(events["item"])
    columns = {"u": u, "i": i, "t": events["timestamp"], "order": events["order"]}
    if "rating" in events.columns:
        columns["rating"] = events["rating"]
    return EncodedEvents(pl.DataFrame(columns), user_ids, item_ids)


def prepare_events(
    events: pl.DataFrame | EncodedEvents,
    min_user_interactions: int = 5,
    min_item_interactions: int = 5,
    min_rating: float | None = None,
) -> tuple[SequenceTable, list, dict]:
    """Raw-dump preparation (see the module docstring) of an event frame or its encoding. Returns the
    dense table (users sorted by id), the original item ids in dense order (the item map's) and the
    counts of what each filter dropped (``read``, ``below_rating``, ``repeated_pairs``, ``k_core_passes``)."""
    encoded = events if isinstance(events, EncodedEvents) else encode_events(events)
    del events
    coded, user_ids, item_ids = encoded.frame, encoded.user_ids, encoded.item_ids
    encoded.frame = None
    read = coded.height
    below = 0
    if min_rating is not None:
        kept = coded.filter(pl.col("rating").is_not_null() & (pl.col("rating") >= min_rating))
        below, coded = read - kept.height, kept
    if coded.height == 0:
        raise InteractionFormatError("no interactions left to prepare (empty input, or every rating below the threshold)")
    coded = coded.select("u", "i", "t", "order")
    # Time order within a user (ties: file order); the first of each (user, item) pair is its earliest.
    # (`is_first_distinct` on one 64-bit key needs no extra copy of the rows; `unique(subset=...)` does.)
    coded = coded.sort(["u", "t", "order"])
    pair = coded["u"].cast(pl.UInt64) * (1 << 32) + coded["i"].cast(pl.UInt64)
    coded = coded.filter(pair.is_first_distinct())
    del pair
    repeated = read - below - coded.height
    coded, passes = k_core_codes(coded, min_user_interactions, min_item_interactions)
    if coded.height == 0:
        raise InteractionFormatError(
            f"the {min_user_interactions}/{min_item_interactions}-core is empty: lower --min_user_interactions / "
            "--min_item_interactions"
        )
    # Dense item ids 1..N: the rank of the remaining codes, which keeps the sorted order of the ids.
    # `coded` is sorted by (user code, time, order): each user's rows are contiguous and in time order.
    dense, kept_codes = dense_codes(coded["i"])
    kept_items = item_ids.gather(kept_codes.cast(pl.Int64) - 1)
    runs = coded["u"].rle()  # user codes in order, with their row counts
    lengths = runs.struct.field("len").to_numpy().astype(np.int64)
    users = user_ids.gather(runs.struct.field("value").cast(pl.Int64) - 1)
    table = SequenceTable(
        users.to_arrow(), dense.to_numpy(), np.concatenate([[0], np.cumsum(lengths)]), coded["t"].to_numpy()
    )
    counts = {"read": read, "below_rating": below, "repeated_pairs": repeated, "k_core_passes": passes}
    return table, kept_items.to_list(), counts


def summarise(lengths: np.ndarray, num_items: int) -> dict:
    """Users, items, interactions, density and sequence-length quantiles, from per-user lengths ``[U]``."""
    lengths = np.asarray(lengths)
    n = int(lengths.sum())
    users = len(lengths)
    return {
        "users": users,
        "items": num_items,
        "interactions": n,
        "density": n / max(1, users * num_items),
        "sequence_length": {
            q: float(np.quantile(lengths, p)) if users else math.nan
            for q, p in (("min", 0), ("p25", 0.25), ("median", 0.5), ("p75", 0.75), ("p95", 0.95), ("max", 1))
        },
    }


def describe_summary(summary: dict, output_dir: str) -> str:
    """The lines a preparation prints: what the filters dropped (raw dumps) and what is left."""
    q = summary["sequence_length"]
    lines = []
    if "read" in summary:
        lines.append(
            f"raw {summary['format']}: {summary['read']} interactions read, {summary['below_rating']} below the rating "
            f"threshold, {summary['repeated_pairs']} repeated pairs; {summary['k_core_passes']} k-core passes"
        )
    lines.append(
        f"{summary['users']} users, {summary['items']} items, {summary['interactions']} interactions (density "
        f"{summary['density']:.5f}); sequence length median {q['median']:.0f} (p95 {q['p95']:.0f}, max {q['max']:.0f}); "
        f"dropped users: {summary.get('dropped_short_users', 0)}; saved to {output_dir}"
    )
    return "\n".join(lines)
