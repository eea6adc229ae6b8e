"""From the raw public dumps to benchmark sequences: Amazon reviews (2014, 2018, 2023) and MovieLens
(1M ``.dat``; 20M / 25M / 32M ``.csv``), gzip or not, read by polars.

:func:`load_raw` reads the interactions, keeps those at or above an optional rating threshold,
drops repeated (user, item) pairs (the earliest stays), filters users and items to an iterative
k-core, orders each user's items by time (ties keep file order) and joins the item text from the
metadata (title, brand, categories, description; HTML entities decoded). The result is a
:class:`~hf_genrec.data.readers.SequenceData` (with timestamps) plus a summary. The filtering runs
on columns (:mod:`hf_genrec.data.columnar`); only the metadata, one record per item, is parsed in
Python (Amazon 2014's is Python literals, not JSON). The Amazon 2014 5-core Beauty files
(``reviews_Beauty_5.json.gz``) are the source of the TIGER / LETTER split (22,363 users, 12,101
items, 198,502 interactions); that this path reproduces those counts is not verified here (the raw
dumps are not available offline), only the filtering rules on small files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from ..utils.errors import MissingFileError
from ..utils.item_map import ItemIdMap
from .columnar import EncodedEvents, check_events, encode_events, k_core_codes, prepare_events, summarise
from .errors import InteractionFormatError
from .formats import RAW_FORMATS, resolve_format
from .item_text import read_amazon_meta, read_movielens_movies
from .readers import SequenceData, read_movielens_dat_events
from .sources import read_delimited, read_ndjson, require_file


@dataclass(frozen=True)
class Interaction:
    """One raw interaction (for building events from Python; the readers build frames directly)."""

    user: str
    item: str
    timestamp: float  # seconds
    rating: float | None


def amazon_review_events(path: str, version: str) -> pl.DataFrame:
    """Events of one Amazon reviews dump: 2014 / 2018 (``reviewerID``, ``asin``, ``unixReviewTime``
    seconds, ``overall``) or 2023 (``user_id``, ``parent_asin`` else ``asin``, ``timestamp``
    milliseconds, ``rating``)."""
    require_file(path, "raw data file")
    if version == "amazon2023":
        raw = read_ndjson(path, ["user_id", "parent_asin", "asin", "timestamp", "rating"])
        parent = pl.col("parent_asin")
        events = raw.select(
            user=pl.col("user_id"),
            item=pl.when(parent.is_not_null() & (parent != "")).then(parent).otherwise(pl.col("asin")),
            timestamp=pl.col("timestamp"),
            rating=pl.col("rating"),
            order=pl.col("order"),
        )
        events = check_events(events, path, "timestamp", "user_id", "parent_asin / asin")
        # numpy's division is exactly rounded; polars turns `/ 1000.0` into `* 0.001`, one unit off in ~14% of values.
        return events.with_columns(timestamp=pl.Series(events["timestamp"].to_numpy() / 1000.0))
    raw = read_ndjson(path, ["reviewerID", "asin", "unixReviewTime", "overall"])
    events = raw.select(
        user="reviewerID", item="asin", timestamp="unixReviewTime", rating="overall", order="order"
    )
    return check_events(events, path, "unixReviewTime", "reviewerID", "asin")


def movielens_rating_events(path: str) -> pl.DataFrame:
    """MovieLens ratings: ``ratings.dat`` (``user::movie::rating::timestamp``, 1M) or ``ratings.csv``
    (header ``userId,movieId,rating,timestamp``; 20M / 25M / 32M), ids as strings."""
    if not path.endswith((".csv", ".csv.gz")):
        return read_movielens_dat_events(path)
    require_file(path, "raw data file")
    frame = read_delimited(path, ",", numeric={"rating": "rating", "timestamp": "timestamp"},
                           required=["userId", "movieId", "timestamp"])
    header = [c for c in frame.columns if c not in ("line", "order")]
    for needed in ("userId", "movieId", "rating", "timestamp"):
        if needed not in header:
            raise InteractionFormatError(f"{path}: header {header} has no {needed!r} column (is the header line missing?)")
    events = frame.select(user="userId", item="movieId", timestamp="timestamp", rating="rating", line="line", order="order")
    return check_events(events, path, "timestamp", "userId", "movieId")


# ------------------------------------------------------------------------------- filtering
def k_core(pairs: list[tuple[str, str]], min_user: int, min_item: int) -> tuple[set[str], set[str], int]:
    """Users and items of the iterative k-core of (user, item) pairs: drop users with fewer than
    ``min_user`` and items with fewer than ``min_item`` interactions until none is left to drop.
    Returns the kept users, items and the number of passes that dropped something."""
    frame = pl.DataFrame({"u": [u for u, _ in pairs], "i": [i for _, i in pairs]}, schema={"u": pl.String, "i": pl.String})
    kept, passes = k_core_codes(frame, min_user, min_item)
    return set(kept["u"].to_list()), set(kept["i"].to_list()), passes


def prepare_raw(
    interactions: Iterable[Interaction] | pl.DataFrame | EncodedEvents,
    min_user_interactions: int = 5,
    min_item_interactions: int = 5,
    min_rating: float | None = None,
) -> tuple[SequenceData, dict]:
    """Filter and order raw interactions into sequences (see the module docstring). ``interactions``
    is an event frame (:mod:`hf_genrec.data.columnar`), its encoding or an iterable of :class:`Interaction`.
    Returns the :class:`SequenceData` (``timestamps`` included) and a summary (users, items,
    interactions, density, sequence-length quantiles, what each filter dropped)."""
    if not isinstance(interactions, pl.DataFrame | EncodedEvents):
        rows = list(interactions)
        interactions = pl.DataFrame(
            {
                "user": [x.user for x in rows],
                "item": [x.item for x in rows],
                "timestamp": [float(x.timestamp) for x in rows],
                "rating": [x.rating for x in rows],
            },
            schema={"user": pl.String, "item": pl.String, "timestamp": pl.Float64, "rating": pl.Float64},
        ).with_row_index("order")
    table, item_ids, counts = prepare_events(interactions, min_user_interactions, min_item_interactions, min_rating)
    summary = summarise(table.lengths, len(item_ids))
    summary.update(counts)
    data = SequenceData.from_table(table, ItemIdMap.from_ordered(item_ids), source="raw", summary=summary)
    return data, summary


def load_raw(
    path: str,
    meta: str | None = None,
    format: str | None = None,
    min_user_interactions: int = 5,
    min_item_interactions: int = 5,
    min_rating: float | None = None,
) -> tuple[SequenceData, dict]:
    """Prepare a raw dump: ``path`` is the reviews / ratings file, ``meta`` the metadata file (Amazon
    ``meta_<Cat>...``; MovieLens: ``movies.dat`` / ``movies.csv``, found beside the ratings when
    omitted). Returns sequences with timestamps and item text, and the summary."""
    fmt = resolve_format(path, format).name
    if meta is not None and not os.path.exists(meta):
        raise MissingFileError(f"--meta {meta}: no such file")
    if fmt not in RAW_FORMATS:
        raise InteractionFormatError(f"{path!r} is not a raw dump ({fmt}); raw formats: {', '.join(RAW_FORMATS)}")
    # Encoded at once, so the strings of every row are freed before the filtering starts.
    events = encode_events(movielens_rating_events(path) if fmt == "movielens" else amazon_review_events(path, fmt))
    data, summary = prepare_raw(events, min_user_interactions, min_item_interactions, min_rating)
    if fmt == "movielens" and meta is None:
        folder = os.path.dirname(path)
        beside = [os.path.join(folder, n) for n in ("movies.dat", "movies.csv")]
        meta = next((m for m in beside if os.path.exists(m)), None)
    if meta:
        wanted = set(data.item_ids())
        data.item_text = read_movielens_movies(meta, wanted) if fmt == "movielens" else read_amazon_meta(meta, fmt, wanted)
        summary["items_with_text"] = sum(1 for t in data.item_text.values() if t)
    summary.update(format=fmt, source=path, meta=meta)
    data.source = path
    return data, summary
