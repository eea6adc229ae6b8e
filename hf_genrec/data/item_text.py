"""Item text readers: every format maps an item id to one string in the official HLLM layout
(``"title: ...description: ..."``), and :func:`align_item_texts` lines it up with a dataset's items.

Formats: a header-ed ``.tsv`` / ``.csv`` (``Beauty.titles.tsv``; HLLM's ``information/<name>.csv``
with ``item_id,description,title[,tag]``), MovieLens ``movies.dat`` / ``movies.csv``, the Amazon
metadata dumps (``meta_<Cat>...``) and a JSON object ``{item_id: text}`` or ``{item_id: {field: value}}``.
This is the one module that reads item text; the HLLM family tokenizes it (``models.hllm.tokenization_hllm``).
"""

from __future__ import annotations

import csv
import glob
import html
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence

from ..utils.errors import MissingFileError
from ..utils.item_map import ItemIdMap
from .errors import ItemTextFormatError
from .sources import open_text, read_records

logger = logging.getLogger(__name__)

#: columns that identify an item rather than describe it
_ID_COLUMNS = ("item_id", "asin", "parent_asin", "id")


def format_item_fields(fields: Mapping[str, object] | str | None) -> str:
    """The official HLLM layout of an item's fields: ``f"{key}: {value}"`` joined with no separator
    (``"title: Xgenres: Y"``); empty / missing / NaN values are skipped. A plain string passes through."""
    if fields is None:
        return ""
    if isinstance(fields, str):
        return fields
    parts = []
    for key, value in fields.items():
        if value is None or (isinstance(value, float) and value != value) or str(value).strip() == "":
            continue
        parts.append(f"{key}: {value}")
    return "".join(parts)


def _table_id_column(header: list[str], path: str) -> str:
    if "item_id" in header:
        return "item_id"
    for name in header:  # e.g. Beauty.titles.tsv: letter_item_id (the id of Beauty.inter.json)
        if name.endswith("item_id"):
            return name
    raise ItemTextFormatError(f"{path}: no item id column (item_id or *_item_id) in header {header}")


def read_item_table(path: str, text_keys: Sequence[str] | None = None, delimiter: str | None = None) -> dict[str, str]:
    """A delimited file with a header: the id column (``item_id``, else the first ``*item_id``) and
    the text columns (``text_keys``, default every column that is not an id), in that order."""
    delimiter = delimiter or ("\t" if path.endswith((".tsv", ".tab")) else ",")
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        header = list(reader.fieldnames or [])
        if not header:
            raise ItemTextFormatError(f"{path}: file is empty")
        id_col = _table_id_column(header, path)
        keys = list(text_keys) if text_keys else [h for h in header if not (h.endswith("_id") or h in _ID_COLUMNS)]
        missing = [k for k in keys if k not in header]
        if missing:
            raise ItemTextFormatError(f"{path}: text column(s) {missing} not in header {header}")
        return {row[id_col]: format_item_fields({k: row[k] for k in keys}) for row in reader}


def read_movielens_movies(path: str, wanted: set[str] | None = None) -> dict[str, str]:
    """``"title: ...genres: ..."`` per movie id from MovieLens ``movies.dat`` (``id::title::genres``,
    latin-1; 1M) or ``movies.csv`` (20M / 25M / 32M), for the ids in ``wanted`` (default all)."""
    rows: list[tuple[int, str, str, str]] = []
    if path.endswith((".csv", ".csv.gz")):
        with open_text(path) as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("movieId", "title", "genres") if c not in (reader.fieldnames or [])]
            if missing:
                raise ItemTextFormatError(f"{path}: header {reader.fieldnames} lacks {missing}")
            rows = [(n, r["movieId"], r["title"], r["genres"]) for n, r in enumerate(reader, 2)]
    else:
        with open(path, encoding="latin-1") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.rstrip("\n").split("::")
                if len(parts) != 3:
                    raise ItemTextFormatError(f"{path}:{n}: expected 'movie::title::genres'")
                rows.append((n, *parts))
    return {
        movie: format_item_fields({"title": clean_text(title), "genres": genres.replace("|", ", ")})
        for _, movie, title, genres in rows
        if wanted is None or movie in wanted
    }


def read_amazon_meta(path: str, version: str, wanted: set[str]) -> dict[str, str]:
    """Item text of the items in ``wanted`` from an Amazon metadata dump (streamed; 2023 keys items by
    ``parent_asin``)."""
    key = "parent_asin" if version == "amazon2023" else "asin"
    out = {}
    for _, record in read_records(path):
        item = str(record.get(key) or record.get("asin") or "")
        if item in wanted and item not in out:
            out[item] = amazon_item_text(record)
    return out


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
    return format_item_fields({k: clean_text(v) for k, v in fields.items()})


_TAGS = re.compile(r"<[^>]+>")


def clean_text(value) -> str:
    """A field as plain text: lists joined, HTML tags removed and entities decoded, whitespace folded."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        value = ", ".join(t for t in (clean_text(v) for v in value) if t)
    text = html.unescape(_TAGS.sub(" ", str(value)))
    return " ".join(text.split())


def read_item_json(path: str) -> dict[str, str]:
    """``{item_id: text}`` or ``{item_id: {field: value, ...}}``."""
    with open(path, encoding="utf-8") as f:
        try:
            raw = json.load(f)
        except json.JSONDecodeError as e:
            raise ItemTextFormatError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(raw, dict):
        raise ItemTextFormatError(f"{path}: expected a JSON object {{item_id: text}}, got {type(raw).__name__}")
    out = {}
    for item, value in raw.items():
        if value is not None and not isinstance(value, str | dict):
            raise ItemTextFormatError(f"{path}: item {item!r} maps to {type(value).__name__}; expected text or an object")
        out[str(item)] = format_item_fields(value)
    return out


def read_item_texts(path: str, text_keys: Sequence[str] | None = None) -> dict[str, str]:
    """Read any supported item text file (chosen by its name); keys are item ids as strings."""
    if not os.path.exists(path):
        raise MissingFileError(f"item text file not found: {path}")
    if path.endswith(".dat") or os.path.basename(path) in ("movies.csv", "movies.csv.gz"):
        return read_movielens_movies(path)
    if path.endswith(".json"):
        return read_item_json(path)
    if path.endswith((".tsv", ".tab", ".csv")):
        return read_item_table(path, text_keys)
    raise ItemTextFormatError(f"cannot tell the format of item text file {path!r} (.tsv, .csv, .dat, .json)")


def find_item_text_file(dataset_path: str) -> str | None:
    """The item text file that belongs to a dataset: ``*.titles.tsv`` / ``movies.dat`` / ``item_text.json``
    beside it, or HLLM's ``information/<name>.csv`` (beside the file or one level up)."""
    folder = dataset_path if os.path.isdir(dataset_path) else os.path.dirname(dataset_path)
    if os.path.isfile(dataset_path) and dataset_path.endswith(".csv"):
        name = os.path.basename(dataset_path)
        for info in (os.path.join(folder, "information", name), os.path.join(folder, "..", "information", name)):
            if os.path.exists(info):
                return os.path.normpath(info)
    for pattern in ("*.titles.tsv", "movies.dat", "item_text.json"):
        found = sorted(glob.glob(os.path.join(folder, pattern)))
        if found:
            return found[0]
    return None


#: the item text a prepared dataset folder carries, keyed by the *original* item id (as a string)
ITEM_TEXT_FILE = "item_text.json"


def write_item_text(directory: str, item_text: Mapping, item_map: ItemIdMap) -> str:
    """Write ``item_text.json`` for the items of ``item_map``, keyed by their original ids (the ids
    of the interaction file; what :func:`align_item_texts` and every family match). Returns the path."""
    known = {str(i) for i in item_map.original_ids}
    path = os.path.join(directory, ITEM_TEXT_FILE)
    with open(path, "w") as f:
        json.dump({str(k): v for k, v in item_text.items() if str(k) in known}, f)
    return path


def align_item_texts(item_text: Mapping, item_map: ItemIdMap) -> list[str]:
    """The text of every mapped item in dense order (``N`` strings, ``""`` where none is known).

    Ids are matched as strings, so ``"17"`` in a text file finds item ``17`` of a JSON file.
    Raises when no item has text (wrong file or wrong id column); logs how many lack it.
    """
    by_str = {str(k): v for k, v in item_text.items()}
    texts = [by_str.get(str(orig), "") or "" for orig in item_map.original_ids]
    missing = sum(1 for t in texts if not t)
    if missing == len(texts):
        raise ItemTextFormatError(
            f"none of the {len(texts)} items has text; do the text file's ids match the interactions' ids? "
            f"(text ids look like {list(by_str)[:3]}, item ids like {list(item_map.original_ids)[:3]})"
        )
    if missing:
        logger.warning("%d of %d items have no text; they are embedded from the prompt alone", missing, len(texts))
    return texts
