"""Every interaction format the library reads, in one registry.

A format is either a **raw public dump** (Amazon reviews, MovieLens ratings: filtered to a k-core,
de-duplicated, ordered by time, item text joined from a metadata file; :mod:`.raw`) or a
**prepared file** (read as it stands, already one sequence per user; :mod:`.readers`). Every entry
point uses :func:`detect_format` and :func:`read_interactions`, so ``hf-genrec prepare``, a recipe's
``--dataset_dir`` and ``load_interactions`` read a file the same way. The Spark path reads the raw
formats (:mod:`.spark`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..utils.errors import MissingFileError
from .errors import InteractionFormatError
from .readers import SequenceData, read_etegrec_jsonl, read_hllm_csv, read_json_sequences, read_recbole_inter


@dataclass(frozen=True)
class DataFormat:
    """One interaction format: ``name`` (the ``--format`` value), ``raw`` (a public dump, filtered),
    ``pattern`` (the file names it claims, a regular expression) and what a file of it holds."""

    name: str
    raw: bool
    pattern: str
    description: str
    reader: Callable[[str], SequenceData] | None = None  # prepared formats; raw ones go through raw.load_raw

    def claims(self, file_name: str) -> bool:
        return re.fullmatch(self.pattern, file_name) is not None


#: in detection order: the first format whose pattern claims a file name is its format
FORMATS: tuple[DataFormat, ...] = (
    DataFormat("amazon2014", True, r"reviews_.+\.json(\.gz)?",
               "Amazon 2014 reviews (reviewerID, asin, unixReviewTime, overall); --meta meta_<Cat>.json.gz"),
    DataFormat("amazon2018", True, r".+_5\.json(\.gz)?",
               "Amazon 2018 5-core reviews (as 2014); --meta meta_<Cat>.json.gz"),
    DataFormat("amazon2023", True, r"(?!meta_).+\.jsonl(\.gz)?",
               "Amazon 2023 reviews (user_id, parent_asin, timestamp in ms, rating); --meta meta_<Cat>.jsonl.gz"),
    DataFormat("movielens", True, r"ratings\.(dat|csv)(\.gz)?",
               "MovieLens ratings.dat (1M) or ratings.csv (20M / 25M / 32M); movies.dat / movies.csv beside it"),
    DataFormat("json", False, r".+\.json", '{"user": [item, ...]} with each list in time order', read_json_sequences),
    DataFormat("recbole", False, r".+\.inter", "RecBole atomic file: user_id, item_id[, timestamp] (typed header)",
               read_recbole_inter),
    DataFormat("hllm_csv", False, r".+\.csv", "HLLM layout: item_id,user_id,timestamp; text in information/<name>.csv",
               read_hllm_csv),
    DataFormat("etegrec_jsonl", False, r".+\.jsonl", 'ETEGRec rows {"inter_history": [...], "target_id": x}',
               read_etegrec_jsonl),
)
BY_NAME = {f.name: f for f in FORMATS}
RAW_FORMATS = tuple(f.name for f in FORMATS if f.raw)


def _first_record(path: str) -> dict | None:
    """The first non-blank line of a plain ``.jsonl`` file as a JSON object (None if it is not one)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    return None
                return record if isinstance(record, dict) else None
    return None


def detect_format(path: str) -> DataFormat:
    """The format of an interaction file (a folder: MovieLens when it holds ``ratings.dat``), from its
    name; a plain ``.jsonl`` is ETEGRec's layout when its first row has ``inter_history``, else an
    Amazon 2023 dump. Raises :class:`InteractionFormatError` for a name no format claims."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "ratings.dat")):
            return BY_NAME["movielens"]
        raise InteractionFormatError(f"{path} is a folder; name the interaction file in it")
    name = os.path.basename(path)
    if name.endswith(".jsonl") and os.path.isfile(path):
        record = _first_record(path)
        if record is not None and "inter_history" in record:
            return BY_NAME["etegrec_jsonl"]
    for fmt in FORMATS:
        if fmt.claims(name):
            return fmt
    raise InteractionFormatError(f"cannot tell the format of {path!r}; pass format= one of {sorted(BY_NAME)}")


#: files a dataset folder holds beside its interactions (prepared layouts, item text, reports)
NOT_INTERACTIONS = ("item_map.json", "item_text.json", "genrec_dataset.json", "summary.json", "dataset_dict.json")


def dataset_file_in(directory: str) -> str:
    """The interaction file of a dataset folder (a file is returned as it is): of the files a format
    of :data:`FORMATS` claims (metadata ``meta_*`` and the prepared layout's own files aside), the
    one whose format comes first (raw dumps before prepared files), then by name."""
    if os.path.isfile(directory):
        return directory
    if not os.path.isdir(directory):
        raise MissingFileError(f"{directory}: no such file or folder")
    ranked = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.startswith("meta_") or name in NOT_INTERACTIONS or not os.path.isfile(path):
            continue
        claimed = [i for i, f in enumerate(FORMATS) if f.claims(name)]
        if claimed:
            ranked.append((claimed[0], name, path))
    if not ranked:
        raise MissingFileError(
            f"no interaction file in {directory}; file names the formats claim: "
            + ", ".join(f"{f.name} ({f.pattern})" for f in FORMATS)
        )
    return min(ranked)[2]


def resolve_format(path: str, format: str | None = None) -> DataFormat:
    """``format`` by name, or the one :func:`detect_format` finds."""
    if format is None:
        return detect_format(path)
    if format not in BY_NAME:
        raise InteractionFormatError(f"unknown format {format!r}; expected one of {sorted(BY_NAME)}")
    return BY_NAME[format]


def read_interactions(
    path: str,
    format: str | None = None,
    meta: str | None = None,
    min_user_interactions: int = 5,
    min_item_interactions: int = 5,
    min_rating: float | None = None,
) -> tuple[SequenceData, dict]:
    """Read an interaction file of any format: ``(sequences, summary)``. A raw dump is filtered
    (:func:`~hf_genrec.data.raw.load_raw`: ``meta``, the k-core sizes, ``min_rating``); a prepared
    file is read as it stands (the filters do not apply)."""
    if not os.path.exists(path):
        raise MissingFileError(f"interaction file not found: {path}")
    fmt = resolve_format(path, format)
    if fmt.raw:
        from .raw import load_raw  # here, not at the top: raw reads this registry when it loads

        if os.path.isdir(path):
            path = os.path.join(path, "ratings.dat")
        return load_raw(path, meta, fmt.name, min_user_interactions, min_item_interactions, min_rating)
    data = fmt.reader(path)
    return data, {"format": fmt.name, "source": data.source}


def load_interactions(path: str, format: str | None = None) -> SequenceData:
    """The sequences of an interaction file of any format (:func:`read_interactions` with the
    default filters for a raw dump)."""
    return read_interactions(path, format)[0]
