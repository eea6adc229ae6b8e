"""Readers that turn interaction files into per-user, time-ordered item sequences.

Every reader returns a :class:`SequenceData`: ``sequences`` maps a user id to that user's
item ids in time order, ``item_text`` (optional) maps an item id to a text description.
Item ids keep their original type here; :func:`hf_genrec.data.leave_one_out` remaps them.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field

from .item_text import find_item_text_file, read_item_texts, read_movielens_movies

ItemId = int | str


class InteractionFormatError(ValueError):
    """Raised when an interaction file cannot be read as the format it claims to be."""


@dataclass
class SequenceData:
    """Per-user item sequences (time order), optional item text and, where the file has them, each
    interaction's timestamp (seconds, aligned with ``sequences``)."""

    sequences: dict[str, list[ItemId]]
    item_text: dict[ItemId, str] | None = None
    timestamps: dict[str, list[float]] | None = None
    source: str = ""
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def num_interactions(self) -> int:
        return sum(len(s) for s in self.sequences.values())


def _check_item_id(item: object, where: str) -> ItemId:
    # bool is an int subclass; a JSON `true` is never an item id.
    if isinstance(item, bool) or not isinstance(item, int | str):
        raise InteractionFormatError(f"{where}: item ids must be int or str, got {type(item).__name__} ({item!r})")
    return item


def _check_not_empty(sequences: dict, path: str) -> None:
    if not sequences:
        raise InteractionFormatError(f"{path}: no interactions found (empty file?)")


def read_json_sequences(path: str) -> SequenceData:
    """Read a JSON object ``{user: [item, ...]}`` whose lists are already in time order.

    This is the layout of ``amazon-beauty/Beauty.inter.json`` (LETTER / TIGER processing).
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not text.strip():
        raise InteractionFormatError(f"{path}: file is empty")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise InteractionFormatError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(raw, dict):
        raise InteractionFormatError(f"{path}: expected a JSON object {{user: [items]}}, got {type(raw).__name__}")
    sequences: dict[str, list[ItemId]] = {}
    for user, items in raw.items():
        if not isinstance(items, list):
            raise InteractionFormatError(f"{path}: user {user!r} maps to {type(items).__name__}, expected a list")
        sequences[str(user)] = [_check_item_id(i, f"{path}: user {user!r}") for i in items]
    _check_not_empty(sequences, path)
    return SequenceData(sequences, source=path)


def read_etegrec_jsonl(path: str) -> SequenceData:
    """Read ETEGRec-style jsonl rows ``{"inter_history": [...], "target_id": x}``.

    Each row is one (history, target) example. The user's full sequence is taken to be
    ``inter_history + [target_id]`` of that user's *longest* row, so pointing this at the
    test file of an ETEGRec dataset recovers every user's whole sequence. Rows without a
    ``user`` / ``user_id`` field are keyed by their line number.
    """
    sequences: dict[str, list[ItemId]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InteractionFormatError(f"{path}:{lineno}: not valid JSON ({e})") from e
            if not isinstance(row, dict) or "inter_history" not in row or "target_id" not in row:
                raise InteractionFormatError(f"{path}:{lineno}: expected keys 'inter_history' and 'target_id'")
            where = f"{path}:{lineno}"
            seq = [_check_item_id(i, where) for i in row["inter_history"]] + [_check_item_id(row["target_id"], where)]
            user = str(row.get("user", row.get("user_id", lineno)))
            if len(seq) > len(sequences.get(user, [])):
                sequences[user] = seq
    _check_not_empty(sequences, path)
    return SequenceData(sequences, source=path)


def read_recbole_inter(path: str) -> SequenceData:
    """Read a RecBole atomic ``.inter`` file (tab separated, typed header such as
    ``user_id:token  item_id:token  rating:float  timestamp:float``), sorted by timestamp per user.

    Ties in time keep file order (stable sort), as RecBole does.
    """
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None:
            raise InteractionFormatError(f"{path}: file is empty")
        names = [h.split(":")[0] for h in header]
        for needed in ("user_id", "item_id"):
            if needed not in names:
                raise InteractionFormatError(f"{path}: header {header} has no '{needed}' column")
        u_col, i_col = names.index("user_id"), names.index("item_id")
        t_col = names.index("timestamp") if "timestamp" in names else None
        rows: dict[str, list[tuple[float, int, str]]] = {}
        for n, rec in enumerate(reader):
            if not rec:
                continue
            try:
                ts = float(rec[t_col]) if t_col is not None else float(n)
                rows.setdefault(rec[u_col], []).append((ts, n, rec[i_col]))
            except (IndexError, ValueError) as e:
                raise InteractionFormatError(f"{path}: line {n + 2}: {e}") from e
    sequences = {u: [item for _, _, item in sorted(r)] for u, r in rows.items()}
    _check_not_empty(sequences, path)
    timestamps = {u: [t for t, _, _ in sorted(r)] for u, r in rows.items()} if t_col is not None else None
    return SequenceData(sequences, timestamps=timestamps, source=path)


def read_movielens(path: str) -> SequenceData:
    """Read raw MovieLens-1M ``ratings.dat`` (``user::movie::rating::timestamp``).

    ``path`` is the ratings file or its folder. When ``movies.dat`` (``movie::title::genres``)
    sits beside it, ``item_text`` is filled with ``"title: ...genres: ..."`` (the HLLM layout).
    """
    ratings = os.path.join(path, "ratings.dat") if os.path.isdir(path) else path
    rows: dict[str, list[tuple[int, int, int]]] = {}
    with open(ratings, encoding="latin-1") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("::")
            if len(parts) != 4:
                raise InteractionFormatError(f"{ratings}:{lineno}: expected 'user::movie::rating::timestamp'")
            try:
                rows.setdefault(parts[0], []).append((int(parts[3]), lineno, int(parts[1])))
            except ValueError as e:
                raise InteractionFormatError(f"{ratings}:{lineno}: {e}") from e
    sequences = {u: [m for _, _, m in sorted(r)] for u, r in rows.items()}
    timestamps = {u: [float(t) for t, _, _ in sorted(r)] for u, r in rows.items()}
    _check_not_empty(sequences, ratings)
    movies = os.path.join(os.path.dirname(ratings), "movies.dat")
    item_text = {int(k): v for k, v in read_movielens_movies(movies).items()} if os.path.exists(movies) else None
    return SequenceData(sequences, item_text=item_text, timestamps=timestamps, source=ratings)


def read_hllm_csv(path: str) -> SequenceData:
    """Read HLLM's interaction layout ``<name>.csv`` (header ``item_id,user_id,timestamp``, any column
    order), sorted by timestamp per user (ties keep file order). Ids stay strings, as in the official
    code. ``item_text`` comes from ``information/<name>.csv`` beside the file or one level up."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        for needed in ("item_id", "user_id", "timestamp"):
            if needed not in header:
                raise InteractionFormatError(f"{path}: header {header} has no '{needed}' column")
        rows: dict[str, list[tuple[float, int, str]]] = {}
        for n, rec in enumerate(reader):
            try:
                rows.setdefault(rec["user_id"], []).append((float(rec["timestamp"]), n, rec["item_id"]))
            except (TypeError, ValueError) as e:
                raise InteractionFormatError(f"{path}: line {n + 2}: {e}") from e
    sequences = {u: [item for _, _, item in sorted(r)] for u, r in rows.items()}
    timestamps = {u: [t for t, _, _ in sorted(r)] for u, r in rows.items()}
    _check_not_empty(sequences, path)
    info = find_item_text_file(path)
    item_text = read_item_texts(info) if info and info.endswith(".csv") else None
    return SequenceData(sequences, item_text=item_text, timestamps=timestamps, source=path)


FORMATS = {
    "json": read_json_sequences,
    "etegrec_jsonl": read_etegrec_jsonl,
    "recbole": read_recbole_inter,
    "movielens": read_movielens,
    "hllm_csv": read_hllm_csv,
}


def detect_format(path: str) -> str:
    """Guess the format from the file name; raises for anything unrecognised."""
    name = os.path.basename(path.rstrip("/"))
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "ratings.dat")):
        return "movielens"
    if name.endswith(".dat"):
        return "movielens"
    if name.endswith(".inter"):
        return "recbole"
    if name.endswith(".csv"):
        return "hllm_csv"
    if name.endswith(".jsonl"):
        return "etegrec_jsonl"
    if name.endswith(".json"):
        return "json"
    raise InteractionFormatError(f"cannot tell the format of {path!r}; pass format= one of {sorted(FORMATS)}")


def load_interactions(path: str, format: str | None = None) -> SequenceData:
    """Read an interaction file in any supported format (``format=None`` guesses from the name)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"interaction file not found: {path}")
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise InteractionFormatError(f"unknown format {fmt!r}; expected one of {sorted(FORMATS)}")
    return FORMATS[fmt](path)
