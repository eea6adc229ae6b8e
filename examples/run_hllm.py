"""HLLM: an item LLM embeds each item's text, a user LLM predicts the next item's embedding.

With no arguments it runs the embedded default on CPU in a few minutes (generated data with generated
item text, 300 items; small random-init LLaMA item and user models trained end to end) and saves a
checkpoint that ``AutoModel.from_pretrained`` loads. Amazon Beauty with the offline MiniLM as a
frozen item model: ``--dataset_dir ../shared/data/amazon-beauty --item_model minilm --mode light``.
``python examples/run_hllm.py --help`` lists every flag; the recipe is library code,
:mod:`hf_genrec.recipes.hllm`.
"""

import sys

from hf_genrec.cli.main import cli

if __name__ == "__main__":
    cli(["train", "hllm", *sys.argv[1:]])
