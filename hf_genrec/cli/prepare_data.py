"""Read an interaction file (or a raw public dump) and save it as a prepared dataset folder.

hf-genrec prepare --input ../shared/data/amazon-beauty --output_dir outputs/beauty/data
hf-genrec prepare --input reviews_Beauty_5.json.gz --meta meta_Beauty.json.gz --output_dir outputs/beauty2014
hf-genrec prepare --input ml-25m/ratings.csv --output_dir outputs/ml-25m      # movies.csv found beside it

Raw dumps (Amazon 2014 / 2018 / 2023 reviews + metadata, MovieLens 1M / 20M / 25M / 32M) are read by
polars, filtered to an iterative k-core (--min_user_interactions / --min_item_interactions, default
5), de-duplicated and ordered by time. The folder holds one row per user (``sequences.parquet``: dense
item ids and timestamps), ``item_map.json``, ``item_text.json`` (keyed by original item id, when the
source has text), ``summary.json`` and ``genrec_dataset.json``; leave-one-out rows are positions in the
sequences, made when the folder is read. It is written to a temporary folder and renamed into place,
so a failed run leaves ``--output_dir`` as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from ..data import FORMATS, dataset_file_in, read_interactions
from ..data.columnar import describe_summary, summarise
from ..data.item_text import ITEM_TEXT_FILE, write_item_text
from ..data.splits import MIN_LENGTH, check_replaceable, write_prepared


def prepare(
    input: str,
    output_dir: str,
    format: str | None = None,
    meta: str | None = None,
    min_user_interactions: int = 5,
    min_item_interactions: int = 5,
    min_rating: float | None = None,
    on_short: str = "error",
) -> dict:
    """Prepare ``input`` into ``output_dir`` (see the module docstring); returns the summary."""
    check_replaceable(output_dir, (input, meta))  # before hours of work, not after
    path = input if os.path.isfile(input) else dataset_file_in(input)
    data, summary = read_interactions(path, format, meta, min_user_interactions, min_item_interactions, min_rating)
    table, item_map, dropped = data.to_table(MIN_LENGTH, on_short)
    summary.update(summarise(table.lengths, item_map.num_items))
    summary["dropped_short_users"] = dropped
    item_text = data.item_text
    del data  # the table is what is written: free the per-user frame of original ids first
    with tempfile.TemporaryDirectory() as scratch:
        extra = {"summary.json": os.path.join(scratch, "summary.json")}
        with open(extra["summary.json"], "w") as f:
            json.dump(summary, f, indent=2)
        if item_text:
            extra[ITEM_TEXT_FILE] = write_item_text(scratch, item_text, item_map)
        write_prepared(output_dir, table, item_map, summary, dropped, extra_files=extra)
    return summary


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        prog="hf-genrec prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--input", required=True, help="interaction file or a dataset folder holding one")
    p.add_argument("--output_dir", required=True)
    p.add_argument(
        "--format",
        default=None,
        choices=[f.name for f in FORMATS],
        help="the interaction format (default: from the file name): "
        + "; ".join(f"{f.name}: {f.description}" for f in FORMATS),
    )
    p.add_argument("--meta", default=None, help="raw dumps: the item metadata file (Amazon meta_*; MovieLens movies.*)")
    p.add_argument("--min_user_interactions", type=int, default=5)
    p.add_argument("--min_item_interactions", type=int, default=5)
    p.add_argument("--min_rating", type=float, default=None, help="raw dumps: keep interactions rated at least this")
    p.add_argument("--on_short", default="error", choices=["error", "drop"],
                   help=f"users with fewer than {MIN_LENGTH} interactions: refuse the file, or drop them")
    a = p.parse_args(argv)
    s = prepare(a.input, a.output_dir, a.format, a.meta, a.min_user_interactions, a.min_item_interactions,
                a.min_rating, a.on_short)
    print(describe_summary(s, a.output_dir))
    return s
