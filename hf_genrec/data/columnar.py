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

import numpy as np
import polars as pl
import pyarrow as pa

from .errors import InteractionFormatError
from .sources import line_of_record


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
        events = events.with_columns(rating=pl.col("rating").str.strip_chars().cast(pl.Float64, strict=False))
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


def prepare_events(
    events: pl.DataFrame,
    min_user_interactions: int = 5,
    min_item_interactions: int = 5,
    min_rating: float | None = None,
) -> tuple[pl.DataFrame, dict]:
    """Raw-dump preparation (see the module docstring). Returns the sequence frame (users sorted by
    id) and the counts of what each filter dropped (``read``, ``below_rating``, ``repeated_pairs``,
    ``k_core_passes``)."""
    read = events.height
    below = 0
    if min_rating is not None:
        keep = pl.col("rating").is_not_null() & (pl.col("rating") >= min_rating)
        kept = events.filter(keep)
        below, events = read - kept.height, kept
    if events.height == 0:
        raise InteractionFormatError("no interactions left to prepare (empty input, or every rating below the threshold)")
    # Integer codes in sorted id order: later sorts and joins run on integers, and the code order is
    # the users' (sorted) output order.
    coded = events.select(
        u=pl.col("user").rank("dense"), i=pl.col("item").rank("dense"), t=pl.col("timestamp"), order=pl.col("order")
    )
    user_ids = events.select(u=pl.col("user").rank("dense"), user=pl.col("user")).unique("u").sort("u")
    item_ids = events.select(i=pl.col("item").rank("dense"), item=pl.col("item")).unique("i").sort("i")
    del events
    # Time order within a user (ties: file order); the first of each (user, item) pair is its earliest.
    coded = coded.sort(["u", "t", "order"]).unique(subset=["u", "i"], keep="first", maintain_order=True)
    repeated = read - below - coded.height
    coded, passes = k_core_codes(coded, min_user_interactions, min_item_interactions)
    if coded.height == 0:
        raise InteractionFormatError(
            f"the {min_user_interactions}/{min_item_interactions}-core is empty: lower --min_user_interactions / "
            "--min_item_interactions"
        )
    frame = (
        coded.group_by("u", maintain_order=True)
        .agg(items=pl.col("i"), timestamps=pl.col("t"))
        .join(user_ids, on="u", how="left", maintain_order="left")
    )
    # Item codes back to the original ids, list by list (a join on the exploded column, regrouped).
    lengths = frame["items"].list.len()
    flat = pl.DataFrame({"i": frame["items"].explode()}).join(item_ids, on="i", how="left", maintain_order="left")["item"]
    items = _regroup(flat, lengths)
    frame = pl.DataFrame({"user": frame["user"], "items": items, "timestamps": frame["timestamps"]})
    return frame, {"read": read, "below_rating": below, "repeated_pairs": repeated, "k_core_passes": passes}


def _regroup(flat: pl.Series, lengths: pl.Series) -> pl.Series:
    """``flat`` cut back into lists of ``lengths`` (the inverse of ``explode``)."""
    offsets = np.concatenate([[0], np.cumsum(lengths.to_numpy())]).astype(np.int64)
    values = flat.to_arrow()
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return pl.Series("items", pa.LargeListArray.from_arrays(pa.array(offsets), values))


def summarise(frame: pl.DataFrame, num_items: int) -> dict:
    """Users, items, interactions, density and sequence-length quantiles of a sequence frame."""
    lengths = frame["items"].list.len().to_numpy()
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
