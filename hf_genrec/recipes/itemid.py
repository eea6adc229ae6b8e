"""The item-ID LLaMA recipe: item embeddings -> k-means clusters -> stage 1 (LLM frozen) -> stage 2
(LoRA or the whole LLM at a lower lr) -> test.

``hf-genrec train itemid`` and ``examples/run_itemid_llama.py`` run :func:`main`. With no arguments: the ``embedded`` preset
(generated data, 300 items, a small random-init LLaMA, random item embeddings), on CPU in minutes.
Real job, e.g. with 384-d MiniLM title embeddings of Beauty and a 7B backbone on a GPU:
``--dataset_dir ../shared/data/amazon-beauty --item_embeddings beauty_minilm.npy
--model_name_or_path /path/to/Llama-2-7b-hf --use_lora true --bf16``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
from dataclasses import dataclass, field

import torch
from transformers import EarlyStoppingCallback, TrainerCallback

from ..data import whole_sequence_rows
from ..embeddings import load_item_embeddings
from ..models.itemid import ItemIDLlamaConfig, ItemIDLlamaForRecommendation
from ..models.itemid.configuration_itemid import DEFAULT_BACKBONE
from ..training import RecommenderTrainer, RecommenderTrainingArguments, TimeBudgetCallback, run_stage
from .arguments import BackboneArguments, DropoutArguments, SASRecStageArguments
from .config import RUN_DEFAULTS, parse_recipe_args
from .stages import get_item_embeddings, load_dataset, seed_stage, test_and_save

logger = logging.getLogger(__name__)


@dataclass
class ItemIDArguments(BackboneArguments, DropoutArguments, SASRecStageArguments):
    dataset_dir: str | None = field(
        default=None, metadata={"help": "interaction file/folder or prepared split; default: generated"}
    )
    item_embeddings: str = field(
        default="random", metadata={"help": "random | sasrec (trained here) | path to an [N, d] .npy (e.g. MiniLM titles)"}
    )
    item_embedding_dim: int = field(default=64, metadata={"help": "with --item_embeddings random"})
    num_clusters: int | None = field(default=None, metadata={"help": "default: round(sqrt(#items))"})
    head: str = field(default="hierarchical", metadata={"help": "hierarchical | full (the flat softmax, for comparison)"})
    stage1_epochs: float = field(default=6, metadata={"help": "LLM frozen: item table, adapters, head train"})
    stage1_learning_rate: float = 1e-3
    stage2_epochs: float = field(default=4, metadata={"help": "LoRA / the LLM trains too, at a lower lr"})
    stage2_learning_rate: float = 2e-4
    stage1_max_minutes: float | None = field(
        default=None, metadata={"help": "wall-clock budget of stage 1; stops at a step end, then evaluates and saves"}
    )
    stage2_max_minutes: float | None = field(
        default=None, metadata={"help": "wall-clock budget of stage 2 (e.g. to compare recipes at equal time)"}
    )
    train_on_all_positions: bool = field(
        default=False, metadata={"help": "whole-sequence training: one causal pass per user sequence, every item predicted"}
    )
    recluster_between_stages: bool = field(
        default=True, metadata={"help": "re-run k-means on the item table after stage 1 (an explicit step)"}
    )
    early_stopping_patience: int = 3


#: the recipe's run-shaping defaults (a config file and the flags override them)
DEFAULTS = {**RUN_DEFAULTS, "output_dir": "outputs/itemid", "per_device_train_batch_size": 64}

ARGUMENTS = (ItemIDArguments, RecommenderTrainingArguments)


def parse_args(argv: list[str], prog: str | None = None) -> tuple:
    """``(ItemIDArguments, RecommenderTrainingArguments)``: defaults, ``--config``, then the flags."""
    return parse_recipe_args("itemid", ARGUMENTS, argv, DEFAULTS, prog)


def run(margs: ItemIDArguments, targs: RecommenderTrainingArguments) -> dict:
    """Run the two-stage recipe; returns the test metrics (both protocols)."""
    os.makedirs(targs.output_dir, exist_ok=True)
    dsd = load_dataset(margs.dataset_dir, max_history=targs.max_history, seed=targs.seed)

    if margs.item_embeddings == "random":
        emb = None
        dim = margs.item_embedding_dim
    elif margs.item_embeddings == "sasrec":
        sasrec = margs.sasrec_kwargs(use_cpu=targs.use_cpu, disable_tqdm=True, seed=targs.seed)
        emb = get_item_embeddings(dsd, None, targs.output_dir, sasrec)
        dim = emb.shape[1]
    else:
        emb = torch.from_numpy(load_item_embeddings(margs.item_embeddings, dsd.num_items))
        dim = emb.shape[1]
    num_clusters = margs.num_clusters or max(1, round(math.sqrt(dsd.num_items)))
    shape = dict(num_items=dsd.num_items, item_embedding_dim=dim, num_clusters=num_clusters, head=margs.head)
    use_lora = margs.lora_enabled()
    lora = dict(use_lora=use_lora, **margs.lora_config(), **margs.dropout_config())
    lora.update(train_on_all_positions=margs.train_on_all_positions, max_history=targs.max_history)
    seed_stage(targs.seed, "recommender", targs.full_determinism)
    if margs.model_name_or_path:
        model = ItemIDLlamaForRecommendation.from_backbone(margs.model_name_or_path, **shape, **lora)
    else:
        backbone = margs.small_backbone(DEFAULT_BACKBONE["vocab_size"])
        model = ItemIDLlamaForRecommendation(ItemIDLlamaConfig(backbone_config=backbone, **shape, **lora))
    if emb is not None:
        model.set_item_embeddings(emb)
    model.recluster(seed=targs.seed)
    model.set_item_map(dsd.item_map)
    sizes = torch.bincount(model.head.item_cluster[1:], minlength=num_clusters)
    width = model.head.cluster_items.shape[1]
    logger.info("%d items in %d clusters (largest %d, head width %d)", dsd.num_items, num_clusters, sizes.max(), width)

    def stage(name: str, epochs: float, lr: float, backbone_trains: bool, max_minutes: float | None) -> RecommenderTrainer:
        model.set_backbone_trainable(backbone_trains)
        work = os.path.join(targs.output_dir, name)
        args = dataclasses.replace(targs, num_train_epochs=epochs, learning_rate=lr, output_dir=work)
        callbacks: list[TrainerCallback] = [EarlyStoppingCallback(early_stopping_patience=margs.early_stopping_patience)]
        if max_minutes:
            callbacks.append(TimeBudgetCallback(max_minutes))
        trainer = RecommenderTrainer(
            model=model,
            args=args,
            train_dataset=whole_sequence_rows(dsd, targs.max_history) if margs.train_on_all_positions else dsd["train"],
            eval_dataset=dsd["validation"],
            callbacks=callbacks,
        )
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.info("%s: %.2fM trainable parameters, lr %g, %g epochs", name, trainable / 1e6, lr, epochs)
        # A rerun after a kill resumes the stage, or reuses it when it had finished; --resume_from_checkpoint
        # names a checkpoint of one of the stages.
        asked = targs.resume_from_checkpoint
        in_stage = asked and os.path.dirname(os.path.abspath(asked)) == os.path.abspath(args.output_dir)
        run_stage(trainer, asked if in_stage else None)
        return trainer

    trainer = stage(
        "stage1", margs.stage1_epochs, margs.stage1_learning_rate, backbone_trains=False, max_minutes=margs.stage1_max_minutes
    )
    if margs.stage2_epochs > 0:
        if margs.recluster_between_stages:
            model.recluster(seed=targs.seed)
        trainer = stage(
            "stage2", margs.stage2_epochs, margs.stage2_learning_rate, backbone_trains=True, max_minutes=margs.stage2_max_minutes
        )
    model.set_backbone_trainable(not use_lora)  # leave the usual LoRA freeze in the saved model
    return test_and_save(trainer, model, dsd, margs.dataset_dir, targs.output_dir)


def main(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the recipe; returns the test metrics."""
    return run(*parse_args(sys.argv[1:] if argv is None else argv))
