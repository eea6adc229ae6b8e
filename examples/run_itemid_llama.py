"""Item-ID LLaMA with a hierarchical softmax, two stages: LLM frozen, then LoRA / the whole LLM at a lower lr.

With no arguments it runs the embedded default on CPU in a few minutes (generated data, 300 items,
a small random-init LLaMA) and saves a checkpoint that ``AutoModel.from_pretrained`` loads.
``python examples/run_itemid_llama.py --help`` lists every flag; the recipe is library code,
:mod:`hf_genrec.recipes.itemid`.
"""

import sys

from hf_genrec.cli.main import cli

if __name__ == "__main__":
    cli(["train", "itemid", *sys.argv[1:]])
