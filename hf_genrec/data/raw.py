"""From the raw public dumps to benchmark sequences: Amazon reviews (2014, 2018, 2023) and MovieLens
(1M ``.dat``; 20M / 25M / 32M ``.csv``), streamed line by line (gzip or not).

:func:`prepare_raw` reads the interactions, keeps those at or above an optional rating threshold,
drops repeated (user, item) pairs (the earliest stays), filters users and items to an iterative
k-core, orders each user's items by time (ties keep file order) and joins the item text from the
metadata (title, brand, categories, description; HTML entities decoded). The result is a
:class:`~hf_genrec.data.readers.SequenceData` (with timestamps) plus a summary. The Amazon 2014
5-core Beauty files (``reviews_Beauty_5.json.gz``) are the source of the TIGER / LETTER split
(22,363 users, 12,101 items, 198,502 interactions); that this path reproduces those counts is not
verified here (the raw dumps are not available offline), only the filtering rules on small files.
"""

from __future__ import annotations

import ast
import csv
import gzip
import html
import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .readers import InteractionFormatError, SequenceData

RAW_FORMATS = ("amazon2014", "amazon2018", "amazon2023", "movielens")


@dataclass(frozen=True)
class Interaction:
    user: str
    item: str
    timestamp: float  # seconds
    rating: float | None


def open_text(path: str) -> io.TextIOBase:
    """A text stream over ``path``, gunzipped when it ends in ``.gz``."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"raw data file not found: {path}")
    if path.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def parse_record(line: str, path: str, number: int) -> dict:
    """One metadata / review line: JSON, or (Amazon 2014 metadata) a Python dict literal."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        try:
            value = ast.literal_eval(line)
        except (ValueError, SyntaxError):
            value = None
        if not isinstance(value, dict):
            raise InteractionFormatError(f"{path}:{number}: neither a JSON object nor a Python dict literal") from None
        return value


def _records(path: str) -> Iterator[tuple[int, dict]]:
    with open_text(path) as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                yield number, parse_record(line, path, number)


def iter_amazon_reviews(path: str, version: str) -> Iterator[Interaction]:
    """Reviews of one Amazon dump: 2014 / 2018 (``reviewerID``, ``asin``, ``unixReviewTime`` seconds,
    ``overall``) or 2023 (``user_id``, ``parent_asin``, ``timestamp`` milliseconds, ``rating``)."""
    for number, r in _records(path):
        try:
            if version == "amazon2023":
                yield Interaction(str(r["user_id"]), str(r.get("parent_asin") or r["asin"]), float(r["timestamp"]) / 1000.0,
                                  _float(r.get("rating")))
            else:
                yield Interaction(str(r["reviewerID"]), str(r["asin"]), float(r["unixReviewTime"]), _float(r.get("overall")))
        except KeyError as missing:
            raise InteractionFormatError(f"{path}:{number}: a {version} review needs the field {missing}") from None


def _float(value) -> float | None:
    return None if value is None or value == "" else float(value)


def iter_movielens_ratings(path: str) -> Iterator[Interaction]:
    """MovieLens ratings: ``ratings.dat`` (``user::movie::rating::timestamp``, 1M) or ``ratings.csv``
    (header ``userId,movieId,rating,timestamp``; 20M / 25M / 32M)."""
    with open_text(path) as f:
        if path.endswith((".csv", ".csv.gz")):
            reader = csv.DictReader(f)
            for row in reader:
                yield Interaction(row["userId"], row["movieId"], float(row["timestamp"]), float(row["rating"]))
        else:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.strip().split("::")
                if len(parts) != 4:
                    raise InteractionFormatError(f"{path}:{number}: expected user::movie::rating::timestamp")
                yield Interaction(parts[0], parts[1], float(parts[3]), float(parts[2]))


# --------------------------------------------------------------------------------- item text
_TAGS = re.compile(r"<[^>]+>")


def clean_text(value) -> str:
    """A field as plain text: lists joined, HTML tags removed and entities decoded, whitespace folded."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        value = ", ".join(t for t in (clean_text(v) for v in value) if t)
    text = html.unescape(_TAGS.sub(" ", str(value)))
    return " ".join(text.split())


def amazon_item_text(record: dict) -> str:
    """``title: ...brand: ...categories: ...description: ...`` from any Amazon metadata version
    (2014 ``categories`` is a list of category paths; 2018 ``category`` a path; 2023 ``categories``
    and ``store``); missing fields are left out."""
    categories = record.get("categories", record.get("category"))
    if categories and isinstance(categories, list) and categories and isinstance(categories[0], list):
        categories = sorted({c for path in categories for c in path})  # 2014: several paths
    fields = {
        "title": record.get("title"),
        "brand": record.get("brand") or record.get("store"),
        "categories": categories,
        "description": record.get("description"),
    }
    return "".join(f"{k}: {t}" for k, t in ((k, clean_text(v)) for k, v in fields.items()) if t)


def read_amazon_meta(path: str, version: str, wanted: set[str]) -> dict[str, str]:
    """Item text of the items in ``wanted`` from an Amazon metadata dump (streamed)."""
    key = "parent_asin" if version == "amazon2023" else "asin"
    out = {}
    for _, record in _records(path):
        item = str(record.get(key) or record.get("asin") or "")
        if item in wanted and item not in out:
            out[item] = amazon_item_text(record)
    return out


def read_movielens_titles(path: str, wanted: set[str]) -> dict[str, str]:
    """``title: ...genres: ...`` from ``movies.dat`` (``id::title::genres``, latin-1) or ``movies.csv``."""
    out = {}
    if path.endswith((".csv", ".csv.gz")):
        with open_text(path) as f:
            for row in csv.DictReader(f):
                if row["movieId"] in wanted:
                    out[row["movieId"]] = f"title: {clean_text(row['title'])}genres: {row['genres'].replace('|', ', ')}"
        return out
    with open(path, encoding="latin-1") as f:
        for line in f:
            parts = line.rstrip("\n").split("::")
            if len(parts) == 3 and parts[0] in wanted:
                out[parts[0]] = f"title: {clean_text(parts[1])}genres: {parts[2].replace('|', ', ')}"
    return out


# ------------------------------------------------------------------------------- filtering
def k_core(pairs: list[tuple[str, str]], min_user: int, min_item: int) -> tuple[set[str], set[str], int]:
    """Users and items of the iterative k-core of (user, item) pairs: drop users with fewer than
    ``min_user`` and items with fewer than ``min_item`` interactions until none is left to drop.
    Returns the kept users, items and the number of passes that dropped something."""
    users, items = set(u for u, _ in pairs), set(i for _, i in pairs)
    passes = 0  # rounds that dropped something
    while True:
        kept = [(u, i) for u, i in pairs if u in users and i in items]
        per_user, per_item = Counter(u for u, _ in kept), Counter(i for _, i in kept)
        new_users = {u for u, n in per_user.items() if n >= min_user}
        new_items = {i for i, n in per_item.items() if n >= min_item}
        if new_users == users and new_items == items:
            return users, items, passes
        users, items = new_users, new_items
        passes += 1


def summarise(sequences: dict[str, list], num_items: int) -> dict:
    lengths = np.array([len(s) for s in sequences.values()])
    n = int(lengths.sum())
    return {
        "users": len(sequences),
        "items": num_items,
        "interactions": n,
        "density": n / max(1, len(sequences) * num_items),
        "sequence_length": {q: float(np.quantile(lengths, p)) for q, p in
                            (("min", 0), ("p25", 0.25), ("median", 0.5), ("p75", 0.75), ("p95", 0.95), ("max", 1))},
    }


def prepare_raw(
    interactions: Iterator[Interaction],
    min_user_interactions: int = 5,
    min_item_interactions: int = 5,
    min_rating: float | None = None,
) -> tuple[SequenceData, dict]:
    """Filter and order raw interactions into sequences (see the module docstring). Returns the
    :class:`SequenceData` (``timestamps`` included) and a summary (users, items, interactions,
    density, sequence-length quantiles, what each filter dropped)."""
    first: dict[tuple[str, str], tuple[float, int]] = {}
    read = below = repeated = 0
    for order, x in enumerate(interactions):
        read += 1
        if min_rating is not None and (x.rating is None or x.rating < min_rating):
            below += 1
            continue
        key = (x.user, x.item)
        if key in first:
            repeated += 1
            if x.timestamp < first[key][0]:
                first[key] = (x.timestamp, order)
            continue
        first[key] = (x.timestamp, order)
    if not first:
        raise InteractionFormatError("no interactions left to prepare (empty input, or every rating below the threshold)")
    users, items, passes = k_core(list(first), min_user_interactions, min_item_interactions)
    per_user: dict[str, list[tuple[float, int, str]]] = {}
    for (u, i), (t, order) in first.items():
        if u in users and i in items:
            per_user.setdefault(u, []).append((t, order, i))
    sequences, timestamps = {}, {}
    for u in sorted(per_user):
        events = sorted(per_user[u])  # by time, ties in file order
        sequences[u] = [i for _, _, i in events]
        timestamps[u] = [t for t, _, _ in events]
    if not sequences:
        raise InteractionFormatError(
            f"the {min_user_interactions}/{min_item_interactions}-core is empty: lower --min_user_interactions / "
            "--min_item_interactions"
        )
    summary = summarise(sequences, len(items))
    summary.update(read=read, below_rating=below, repeated_pairs=repeated, k_core_passes=passes)
    return SequenceData(sequences, timestamps=timestamps, source="raw"), summary


def detect_raw_format(path: str) -> str | None:
    """The raw dump a file name belongs to, or None."""
    name = os.path.basename(path)
    if re.match(r"reviews_.+_5\.json(\.gz)?$", name) or re.match(r"reviews_.+\.json(\.gz)?$", name):
        return "amazon2014"
    if re.match(r".+_5\.json(\.gz)?$", name):
        return "amazon2018"
    if name.endswith((".jsonl", ".jsonl.gz")) and not name.startswith("meta_"):
        return "amazon2023"
    if name in ("ratings.dat", "ratings.csv", "ratings.csv.gz"):
        return "movielens"
    return None


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
    fmt = format or detect_raw_format(path)
    if fmt not in RAW_FORMATS:
        raise InteractionFormatError(f"cannot tell which raw dump {path!r} is; pass format= one of {RAW_FORMATS}")
    stream = iter_movielens_ratings(path) if fmt == "movielens" else iter_amazon_reviews(path, fmt)
    data, summary = prepare_raw(stream, min_user_interactions, min_item_interactions, min_rating)
    wanted = {str(i) for s in data.sequences.values() for i in s}
    if fmt == "movielens" and meta is None:
        folder = os.path.dirname(path)
        beside = [os.path.join(folder, n) for n in ("movies.dat", "movies.csv")]
        meta = next((m for m in beside if os.path.exists(m)), None)
    if meta:
        data.item_text = read_movielens_titles(meta, wanted) if fmt == "movielens" else read_amazon_meta(meta, fmt, wanted)
        summary["items_with_text"] = sum(1 for t in data.item_text.values() if t)
    summary.update(format=fmt, source=path, meta=meta)
    data.source = path
    return data, summary


def write_recbole_inter(path: str, data: SequenceData) -> None:
    """Write sequences (with their timestamps) as a RecBole ``.inter`` file, the format
    :func:`~hf_genrec.data.load_interactions` reads back with timestamps."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for user, items in data.sequences.items():
            times = data.timestamps[user] if data.timestamps else range(len(items))
            for item, t in zip(items, times):
                f.write(f"{user}\t{item}\t{t}\n")
