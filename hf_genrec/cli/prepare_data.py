"""Read an interaction file, split it leave-one-out and save it (with item_map.json).

hf-genrec-prepare --input ../shared/data/amazon-beauty --output_dir outputs/beauty/data
"""

from __future__ import annotations

import argparse
import logging

from ..data import dataset_file_in, leave_one_out, load_interactions
from ..data.item_text import write_item_text
from .errors import run_cli


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="interaction file or a dataset folder holding one")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--format", default=None, help="json | etegrec_jsonl | recbole | movielens (default: from the name)")
    p.add_argument("--max_history", type=int, default=50)
    p.add_argument("--on_short", default="error", choices=["error", "drop"])
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
