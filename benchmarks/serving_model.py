"""Write a serving-benchmark checkpoint of a real dataset's size: its item ids, a k-means RQ-VAE's
codes, a random-init LLaMA recommender of the Beauty benchmark's shape. Serving cost depends on
the shape (catalogue, code trie, backbone), not on trained weights, so this measures what a
trained model of that shape would cost without hours of CPU training.

    python benchmarks/serving_model.py --data ../shared/data/amazon-beauty --out outputs/beauty-serving
    python benchmarks/serve_bench.py --spawn outputs/beauty-serving --qps 50,100,200 --compare_batch_size_1
"""

from __future__ import annotations

import argparse

import torch

from hf_genrec import RQVAEConfig, RQVAEModel
from hf_genrec.data import dataset_file_in, leave_one_out, load_interactions
from hf_genrec.recipes.stages import build_recommender


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/amazon-beauty")
    p.add_argument("--out", default="outputs/beauty-serving")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--semantic_dim", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    torch.manual_seed(a.seed)
    dsd = leave_one_out(load_interactions(dataset_file_in(a.data)), on_short="drop")
    emb = torch.randn(dsd.num_items, a.semantic_dim)
    tok = RQVAEModel(RQVAEConfig(semantic_dim=a.semantic_dim, hidden_dims=[128], codebook_dim=32))
    tok.kmeans_init(emb)
    backbone = {
        "model_type": "llama",
        "hidden_size": a.hidden,
        "intermediate_size": 4 * a.hidden,
        "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads,
        "num_key_value_heads": a.heads,
        "vocab_size": 8,
        "max_position_embeddings": 1024,
        "tie_word_embeddings": False,
    }
    model = build_recommender(tok, emb, backbone_config=backbone, use_lora=False)
    model.set_item_map(dsd.item_map)
    model.save_pretrained(a.out)
    print(f"{dsd.num_items} items, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters -> {a.out}")


if __name__ == "__main__":
    main()
