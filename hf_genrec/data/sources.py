"""Reading interaction files with polars, and naming the exact line when one is malformed.

The fast path hands the whole file (gzip or not) to polars' CSV / NDJSON readers, every column as a
string. polars' own errors name neither the file nor the line, so when it refuses a file (bad UTF-8,
a line that is not a JSON object, a truncated gzip, a ragged row) the file is scanned line by line in
Python to find the first bad record and say what is wrong with it; that slow scan runs only on failure.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Callable, Iterator

import polars as pl

from .errors import InteractionFormatError

PolarsError = (pl.exceptions.PolarsError, OSError)


def require_file(path: str, what: str = "interaction file") -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}")


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
            raise InteractionFormatError(f"{path}:{number}: not valid {encoding.upper()} ({e.reason} at byte {e.start})") from None


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


def _csv_line_checker(path: str, separator: str, width: int, header: bool) -> Callable[[int, str], None]:
    import csv

    def check(number: int, line: str) -> None:
        if header and number == 1:
            return
        fields = next(csv.reader([line], delimiter=separator)) if separator != "\x1f" else line.split(separator)
        if len(fields) != width:
            raise InteractionFormatError(f"{path}:{number}: expected {width} fields, found {len(fields)} ({line[:80]!r})")

    return check


def read_delimited(
    path: str, separator: str, columns: list[str] | None = None, quote_char: str | None = '"', source: bytes | None = None
) -> pl.DataFrame:
    """A delimited file as strings. ``columns`` names the fields of a header-less file; otherwise the
    first line is the header. Adds ``order`` (0-based record index; blank lines dropped) and
    ``line``. A row with too few or too many fields raises naming its line."""
    header = columns is None
    try:
        frame = pl.read_csv(
            source if source is not None else path,
            separator=separator,
            has_header=header,
            new_columns=columns,
            infer_schema=False,
            quote_char=quote_char,
        )
    except PolarsError as e:
        width = len(columns) if columns else len(_first_line(path).split(separator))
        raise explain_failure(path, e, _csv_line_checker(path, separator, width, header)) from None
    first = 2 if header else 1
    frame = frame.with_row_index("line", offset=first)
    # Blank lines come back as rows of nulls; a row with some nulls is a short row.
    data_cols = [c for c in frame.columns if c != "line"]
    blank = pl.all_horizontal(pl.col(c).is_null() for c in data_cols)
    short = pl.any_horizontal(pl.col(c).is_null() for c in data_cols) & ~blank
    bad = frame.filter(short)
    if bad.height:
        line = int(bad["line"][0])
        raise InteractionFormatError(f"{path}:{line}: expected {len(data_cols)} fields, found fewer (a short row)")
    return frame.filter(~blank).with_row_index("order")


def _first_line(path: str) -> str:
    for _, line in text_lines(path):
        return line
    return ""


def read_ndjson(path: str, fields: list[str]) -> pl.DataFrame:
    """The ``fields`` of a JSON-lines file, as strings (missing fields are null). Adds ``order``
    (0-based record index) and ``line``. A line that is not a JSON object raises naming it."""

    def check(number: int, line: str) -> None:
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise InteractionFormatError(f"{path}:{number}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(value, dict):
            raise InteractionFormatError(f"{path}:{number}: expected a JSON object, got {type(value).__name__}")

    try:
        frame = pl.read_ndjson(path, schema={f: pl.String for f in fields})
    except PolarsError as e:
        raise explain_failure(path, e, check) from None
    return frame.with_row_index("order")
