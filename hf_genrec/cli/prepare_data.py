"""Read an interaction file (or a raw public dump), split it leave-one-out and save it (with item_map.json).

hf-genrec-prepare --input ../shared/data/amazon-beauty --output_dir outputs/beauty/data
hf-genrec-prepare --input reviews_Beauty_5.json.gz --meta meta_Beauty.json.gz --output_dir outputs/beauty2014
hf-genrec-prepare --input ml-1m/ratings.dat --output_dir outputs/ml-1m      # movies.dat found beside it

Raw dumps (Amazon 2014 / 2018 / 2023 reviews + metadata, MovieLens 1M / 20M / 25M / 32M) are
streamed, filtered to an iterative k-core (--min_user_interactions / --min_item_interactions,
default 5), de-duplicated and ordered by time; ``interactions.inter`` (with timestamps),
``item_text.json`` (keyed by original item id) and ``summary.json`` are written beside the split.
"""

from __future__ import annotations

import argparse
import json
import logging
import os

from ..data import dataset_file_in, leave_one_out, load_interactions
from ..data.item_text import write_item_text
from ..data.raw import RAW_FORMATS, detect_raw_format, load_raw, write_recbole_inter
from .errors import run_cli


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="interaction file or a dataset folder holding one")
    p.add_argument("--output_dir", required=True)
    p.add_argument(
        "--format",
        default=None,
        help="json | etegrec_jsonl | recbole | movielens, or a raw dump: amazon2014 | amazon2018 | amazon2023 | "
        "movielens (default: from the name)",
    )
    p.add_argument("--meta", default=None, help="raw dumps: the item metadata file (Amazon meta_*; MovieLens movies.*)")
    p.add_argument("--min_user_interactions", type=int, default=5)
    p.add_argument("--min_item_interactions", type=int, default=5)
    p.add_argument("--min_rating", type=float, default=None, help="raw dumps: keep interactions rated at least this")
    p.add_argument("--max_history", type=int, default=50)
    p.add_argument("--on_short", default="error", choices=["error", "drop"])
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # A raw dump: named as one (reviews_*_5.json.gz, *.jsonl.gz, ratings.dat / .csv) or said to be one.
    raw_format = a.format if a.format in RAW_FORMATS else None
    if raw_format is None and a.format in (None, "movielens") and os.path.isfile(a.input):
        raw_format = detect_raw_format(a.input)
    if raw_format:
        data, summary = load_raw(
            a.input, a.meta, raw_format, a.min_user_interactions, a.min_item_interactions, a.min_rating
        )
        os.makedirs(a.output_dir, exist_ok=True)
        write_recbole_inter(os.path.join(a.output_dir, "interactions.inter"), data)
        with open(os.path.join(a.output_dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        q = summary["sequence_length"]
        print(
            f"raw {summary['format']}: {summary['read']} interactions read, {summary['below_rating']} below the rating "
            f"threshold, {summary['repeated_pairs']} repeated pairs; {summary['k_core_passes']} k-core passes -> "
            f"{summary['users']} users, {summary['items']} items, {summary['interactions']} interactions, density "
            f"{summary['density']:.5f}, sequence length median {q['median']:.0f} (p95 {q['p95']:.0f}, max {q['max']:.0f})"
        )
    else:
        data = load_interactions(dataset_file_in(a.input), a.format)
    dsd = leave_one_out(data, max_history=a.max_history, on_short=a.on_short)
    dsd.save_to_disk(a.output_dir)
    if data.item_text:
        write_item_text(a.output_dir, data.item_text, dsd.item_map)
    print(
        f"{len(data.sequences)} users, {dsd.num_items} items, {data.num_interactions} interactions; "
        f"rows: train {len(dsd['train'])}, validation {len(dsd['validation'])}, test {len(dsd['test'])}; "
        f"dropped users: {dsd.num_dropped_users}; saved to {a.output_dir}"
    )


def cli(argv: list[str] | None = None) -> None:
    """Console entry point: user mistakes end in one line and exit status 2 (see :mod:`.errors`)."""
    run_cli(main, "hf-genrec-prepare", argv)


if __name__ == "__main__":
    cli()
