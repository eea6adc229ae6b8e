"""Reading interaction files with polars, and naming the exact line when one is malformed.

The fast path hands the whole file (gzip or not) to polars' CSV / NDJSON readers, every column as a
string. polars' own errors name neither the file nor the line, so when it refuses a file (bad UTF-8,
a line that is not a JSON object, a truncated gzip, a ragged row) the file is scanned line by line in
Python to find the first bad record and say what is wrong with it; that slow scan runs only on failure.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import math
import os
import zlib
from collections.abc import Callable, Iterator

import polars as pl

from ..utils.errors import MissingFileError
from .errors import InteractionFormatError

PolarsError = (pl.exceptions.PolarsError, OSError)


def require_file(path: str, what: str = "interaction file") -> None:
    if not os.path.exists(path):
        raise MissingFileError(f"{what} not found: {path}")


def raw_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """``(line number, bytes without the newline)`` of a file, gunzipped when it ends in ``.gz``;
    a truncated or corrupt gzip raises naming the last line read."""
    opener = gzip.open if path.endswith(".gz") else open
    number = 0
    try:
        with opener(path, "rb") as f:
            for number, line in enumerate(f, 1):
                yield number, line.rstrip(b"\r\n")
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise InteractionFormatError(f"{path}:{number + 1}: the gzip stream is truncated or corrupt ({e})") from None


def text_lines(path: str, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Decoded lines; bytes that are not valid ``encoding`` raise naming the line (never replaced: two
    different byte strings must not become one id)."""
    for number, line in raw_lines(path):
        try:
            yield number, line.decode(encoding)
        except UnicodeDecodeError as e:
            message = f"not valid {encoding.upper()} ({e.reason} at byte {e.start})"
            raise InteractionFormatError(f"{path}:{number}: {message}") from None


def explain_failure(path: str, error: Exception, check_line: Callable[[int, str], None]) -> InteractionFormatError:
    """The error to raise when polars refused ``path``: the first line that ``check_line`` (or the
    decoding) rejects, else polars' message with the file name."""
    try:
        for number, line in text_lines(path):
            if line.strip():
                check_line(number, line)
    except InteractionFormatError as named:
        return named
    return InteractionFormatError(f"{path}: could not be read ({type(error).__name__}: {str(error).splitlines()[0]})")


def line_of_record(path: str, record: int, header: bool) -> int:
    """The file line of the 0-based ``record`` among non-blank lines (after a header line)."""
    seen = -1 if header else 0
    for number, line in raw_lines(path):
        if line.strip():
            if seen == record:
                return number
            seen += 1
    return record + (2 if header else 1)


def _split_fields(separator: str, quote_char: str | None) -> Callable[[str], list[str]]:
    import csv

    if quote_char is None:
        return lambda line: line.split(separator)
    return lambda line: next(csv.reader([line], delimiter=separator, quotechar=quote_char))


def _line_checker(path: str, split: Callable[[str], list[str]], names: list[str], header: bool,
                  numeric: dict[str, str]) -> Callable[[int, str], None]:
    """What polars found wrong, said of one line: the field count, or a numeric field that is not a number."""
    positions = {names.index(c): label for c, label in numeric.items() if c in names}

    def check(number: int, line: str) -> None:
        if header and number == 1:
            return
        fields = split(line)
        if len(fields) != len(names):
            raise InteractionFormatError(f"{path}:{number}: expected {len(names)} fields, found {len(fields)} ({line[:80]!r})")
        for position, label in positions.items():
            value = fields[position].strip()
            if value:
                try:
                    float(value)
                except ValueError:
                    raise InteractionFormatError(f"{path}:{number}: {label} is not a finite number ({value!r})") from None

    return check


def read_delimited(
    path: str,
    separator: str,
    columns: list[str] | None = None,
    quote_char: str | None = '"',
    source: bytes | None = None,
    file_separator: str | None = None,
    numeric: dict[str, str] | None = None,
    required: list[str] | None = None,
) -> pl.DataFrame:
    """A delimited file: ``numeric`` columns (name -> the field's name in messages) as ``Float64``, the
    others as strings. ``columns`` names the fields of a header-less file; otherwise the first line is
    the header. ``source`` replaces the file's bytes (e.g. with ``file_separator`` rewritten to
    ``separator``). Adds ``line`` (the file line) and ``order`` (0-based record index; blank lines
    dropped). A row with too few or too many fields, or a numeric field that is not a number, raises
    naming its line; an empty field comes back null (the caller says which field is missing)."""
    header = columns is None
    numeric = numeric or {}
    split = _split_fields(file_separator or separator, quote_char)
    names = columns if columns is not None else split(_first_line(path))
    try:
        frame = pl.read_csv(
            source if source is not None else path,
            separator=separator,
            has_header=header,
            new_columns=columns,
            infer_schema=False,
            schema_overrides={c: pl.Float64 for c in numeric if c in names},
            quote_char=quote_char,
        )
    except PolarsError as e:
        raise explain_failure(path, e, _line_checker(path, split, names, header, numeric)) from None
    frame = frame.with_row_index("line", offset=2 if header else 1)
    data_cols = [c for c in frame.columns if c != "line"]
    blank = frame.select(pl.all_horizontal(pl.col(c).is_null() for c in data_cols)).to_series()
    if blank.any():  # filtering copies every column: only when there is a blank line to drop
        # polars reads a line of empty fields (",,,") as it reads an empty line: tell them apart.
        lines = set(frame.filter(blank)["line"].to_list())
        for number, text in text_lines(path):
            if number in lines and text.strip():
                raise InteractionFormatError(f"{path}:{number}: every field is empty ({text[:80]!r})")
        frame = frame.filter(~blank)
    del blank
    # A short row reads as nulls in its last fields: look at the raw line of the first row with a
    # null where a value is needed, so the message says which it is.
    needed = [c for c in (required or data_cols) if c in data_cols]
    nulls = frame.select(pl.any_horizontal(pl.col(c).is_null() for c in needed)).to_series() if needed else None
    if nulls is not None and nulls.any():
        line = int(frame["line"][int(nulls.arg_max())])
        text = next((t for n, t in text_lines(path) if n == line), "")
        _line_checker(path, split, names, False, {})(line, text)
    return frame.with_row_index("order")


def _first_line(path: str) -> str:
    for _, line in text_lines(path):
        return line
    return ""


def read_ndjson(path: str, fields: list[str]) -> pl.DataFrame:
    """The ``fields`` of a JSON-lines file, as strings (missing fields are null), plus ``order``
    (0-based record index). A line that is not a JSON object raises naming it."""

    def check(number: int, line: str) -> None:
        def refuse(constant: str):
            raise InteractionFormatError(f"{path}:{number}: {constant} is not a JSON number")

        def finite(text: str) -> float:
            if math.isinf(float(text)):
                raise InteractionFormatError(f"{path}:{number}: the number {text} is out of range")
            return float(text)

        try:
            value = json.loads(line, parse_constant=refuse, parse_float=finite)
        except json.JSONDecodeError as e:
            raise InteractionFormatError(f"{path}:{number}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(value, dict):
            raise InteractionFormatError(f"{path}:{number}: expected a JSON object, got {type(value).__name__}")

    try:
        frame = pl.read_ndjson(path, schema={f: pl.String for f in fields})
    except PolarsError as e:
        raise explain_failure(path, e, check) from None
    return frame.with_row_index("order")


# ------------------------------------------------------------- metadata records
def open_text(path: str) -> io.TextIOBase:
    """A text stream over a metadata file, gunzipped when it ends in ``.gz``. Undecodable bytes are
    replaced: metadata ids are only matched against the (strictly decoded) interaction ids, and a
    replaced character in a description is harmless."""
    require_file(path, "raw data file")
    if path.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def parse_record(line: str, path: str, number: int) -> dict:
    """One metadata line: JSON, or (Amazon 2014 metadata) a Python dict literal."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        try:
            value = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = None
    if not isinstance(value, dict):
        raise InteractionFormatError(f"{path}:{number}: neither a JSON object nor a Python dict literal")
    return value


def read_records(path: str) -> Iterator[tuple[int, dict]]:
    """``(line number, record)`` of every non-blank line of a metadata file (:func:`parse_record`)."""
    number = 0
    with open_text(path) as f:
        try:
            for number, line in enumerate(f, 1):
                if line.strip():
                    yield number, parse_record(line, path, number)
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise InteractionFormatError(f"{path}:{number + 1}: the gzip stream is truncated or corrupt ({e})") from None
