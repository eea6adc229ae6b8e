"""``hf-genrec``: one command for every step, in the style of ``accelerate launch`` / ``trl sft``.

    hf-genrec prepare --input ratings.csv --output_dir data/ml
    hf-genrec train etegrec --config embedded
    hf-genrec evaluate --checkpoint outputs/etegrec-default/final --data data/ml
    hf-genrec serve --model outputs/etegrec-default/final

``hf-genrec COMMAND --help`` lists a command's flags. A mistake in the input (a missing file, a bad
argument or config, data the library refuses) ends in one line and exit status 2; anything else is
a bug and keeps its traceback (``HF_GENREC_TRACEBACK=1`` shows one for input mistakes too).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from .errors import run_cli

#: command -> (module whose ``main(argv)`` runs it, one-line summary); modules load only when run
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("hf_genrec.cli.prepare_data", "clean and split an interaction log (a file, a folder or a raw dump)"),
    "prepare-spark": ("hf_genrec.data.spark", "the same preparation on a Spark cluster, for logs past one machine"),
    "embeddings": ("hf_genrec.cli.item_embeddings", "item embeddings for the RQ-VAE: SASRec's item table and/or item text"),
    "pretrain-rqvae": ("hf_genrec.cli.pretrain_rqvae", "pre-train the RQ-VAE item tokenizer on item embeddings"),
    "train": ("", "train a family end to end: " + ", ".join(["etegrec", "hllm", "itemid", "sasrec"])),
    "evaluate": ("hf_genrec.cli.evaluate", "rank a split with any checkpoint, under both protocols, JSON out"),
    "serve": ("hf_genrec.cli.serve", "serve any checkpoint over HTTP"),
    "estimate-memory": ("hf_genrec.cli.estimate_memory", "the training memory an ETEGRec configuration needs, per device"),
}

#: family -> the recipe module training it (``hf-genrec train FAMILY``)
RECIPES: dict[str, tuple[str, str]] = {
    "etegrec": ("hf_genrec.recipes.etegrec", "item embeddings -> RQ-VAE -> alternating training -> fine-tuning -> test"),
    "hllm": ("hf_genrec.recipes.hllm", "item LLM over item text -> user LLM trained with NCE -> test"),
    "itemid": ("hf_genrec.recipes.itemid", "item-ID LLaMA with a hierarchical softmax, two stages -> test"),
    "sasrec": ("hf_genrec.recipes.sasrec", "the SASRec baseline (full-softmax CE) -> test"),
}


def usage(table: dict[str, tuple[str, str]], prog: str) -> str:
    width = max(map(len, table))
    rows = "\n".join(f"  {name:<{width}}  {summary}" for name, (_, summary) in table.items())
    return f"usage: {prog} COMMAND [flags]   ({prog} COMMAND --help for its flags)\n\ncommands:\n{rows}\n"


def dispatch(argv: Sequence[str], table: dict[str, tuple[str, str]], prog: str) -> None:
    """Run the command ``argv[0]`` of ``table`` on the rest of ``argv``."""
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__ if prog == "hf-genrec" else "", usage(table, prog), sep="\n" if prog == "hf-genrec" else "")
        sys.exit(0 if argv else 2)
    name, rest = argv[0], list(argv[1:])
    if name not in table:
        print(f"{prog}: error: unknown command {name!r}; choose one of {', '.join(table)}", file=sys.stderr)
        sys.exit(2)
    if name == "train":
        return dispatch(rest, RECIPES, f"{prog} train")
    module = importlib.import_module(table[name][0])
    run_cli(module.main, f"{prog} {name}", rest)


def cli(argv: Sequence[str] | None = None) -> None:
    """The ``hf-genrec`` console entry point."""
    dispatch(sys.argv[1:] if argv is None else argv, COMMANDS, "hf-genrec")


if __name__ == "__main__":
    cli()
