"""The SASRec recipe: the sequential baseline (full-softmax cross-entropy on every position of each
user's sequence), validated every few epochs, then tested under both ranking protocols.

``hf-genrec train sasrec`` runs :func:`main`; with no arguments, the ``embedded`` preset (generated
data, the short ``basic`` recipe). ``--sasrec_recipe reference`` is a full-softmax recipe after the
strongest published SASRec on Amazon Beauty. Writes ``final/`` (the model, its item map and model
card: ``AutoModel.from_pretrained`` loads it, ``recommend()`` and ``hf-genrec serve`` use it), ``item_embeddings.npy``
(its item table, the input ETEGRec's RQ-VAE and item-ID's clusters can take) and ``test_metrics.json``.
The same training is the collaborative-embedding stage of the ETEGRec and item-ID recipes.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

from accelerate import PartialState

from ..embeddings import collaborative_item_embeddings, train_sasrec
from ..utils.atomic import save_npy, write_json
from .arguments import SASRecStageArguments
from .config import parse_recipe_args
from .stages import dataset_label, load_dataset

logger = logging.getLogger(__name__)


@dataclass
class SASRecArguments(SASRecStageArguments):
    dataset_dir: str | None = field(
        default=None, metadata={"help": "interaction file/folder or prepared split; default: generated"}
    )


@dataclass
class SASRecRunArguments:
    output_dir: str = field(default="outputs/sasrec", metadata={"help": "checkpoints, final/ and test_metrics.json"})
    seed: int = 42
    use_cpu: bool = False
    disable_tqdm: bool = False


ARGUMENTS = (SASRecArguments, SASRecRunArguments)


def parse_args(argv: list[str], prog: str | None = None) -> tuple:
    """``(SASRecArguments, SASRecRunArguments)``: defaults, ``--config``, then the flags."""
    return parse_recipe_args("sasrec", ARGUMENTS, argv, None, prog)


def run(sargs: SASRecArguments, rargs: SASRecRunArguments) -> dict:
    """Train, select on validation, test under both protocols; returns the test metrics
    (``exclude_seen/...`` and ``all_items/...``, and the recipe's own protocol unprefixed)."""
    kwargs = sargs.sasrec_kwargs(use_cpu=rargs.use_cpu, seed=rargs.seed, disable_tqdm=rargs.disable_tqdm)
    dsd = load_dataset(sargs.dataset_dir, max_history=kwargs.get("max_history", 50), seed=rargs.seed)
    model, metrics = train_sasrec(dsd, rargs.output_dir, **kwargs)
    report = {}
    for key, value in metrics.items():
        if key.startswith("test_"):
            name = key.removeprefix("test_")
            for protocol in ("exclude_seen", "all_items"):
                if name.startswith(f"{protocol}_"):
                    name = f"{protocol}/{name.removeprefix(f'{protocol}_')}"
            report[name] = value
    chosen = "exclude_seen" if model.config.exclude_history else "all_items"
    model.record_evaluation(report, dataset=dataset_label(sargs.dataset_dir), split="test", protocol=chosen)
    final = os.path.join(rargs.output_dir, "final")
    if not PartialState().is_main_process:  # every rank holds the same model; one writes it
        return report
    model.save_pretrained(final)  # weights, item_map.json and the model card
    save_npy(os.path.join(rargs.output_dir, "item_embeddings.npy"), collaborative_item_embeddings(model))
    write_json(os.path.join(rargs.output_dir, "test_metrics.json"), report)
    print("\nTest metrics (leave-one-out, full ranking; exclude_seen/: seen items excluded, all_items/: all ranked):")
    for name, value in report.items():
        print(f"  {name:>24}: {value:.4f}")
    print(f"Checkpoint saved to {final}  (AutoModel.from_pretrained('{final}') after `import hf_genrec`)")
    return report


def main(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the recipe; returns the test metrics."""
    return run(*parse_args(sys.argv[1:] if argv is None else argv))
