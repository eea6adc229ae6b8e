"""The ETEGRec recipe, end to end: item embeddings -> RQ-VAE -> alternating training -> fine-tuning -> test.

``hf-genrec train etegrec``, ``examples/run_etegrec.py``, ``run_alternating.sh`` and the benchmarks
all run :func:`main`. With no arguments it runs the ``embedded`` preset on CPU in under ten minutes: a
generated dataset (1,000 users, 300 items), a small random-init LLaMA, SASRec item embeddings and a
small RQ-VAE.

Real job (GPU), e.g.:
    hf-genrec train etegrec --model_name_or_path /path/to/Llama-2-7b-hf \\
        --dataset_dir ../shared/data/amazon-beauty --item_embeddings item_emb.npy --rqvae_path rqvae/ \\
        --bf16 --optim adamw_bnb_8bit --per_device_train_batch_size 32 --output_dir outputs/beauty-7b
Many GPUs: ``accelerate launch examples/run_etegrec.py ...`` (no code change).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from dataclasses import dataclass, field

import torch
from transformers import AutoConfig, EarlyStoppingCallback, set_seed

from ..data import whole_sequence_rows
from ..distributed import launched_with
from ..memory import estimate_training_memory
from ..models.backbone import pretrained
from ..models.llamarec import LlamaRecConfig
from ..models.llamarec.configuration_llamarec import DEFAULT_BACKBONE
from ..training import ETEGRecTrainer, ETEGRecTrainingArguments, TimeBudgetCallback, run_stage
from .arguments import BackboneArguments, DropoutArguments, RQVAEArguments, SASRecStageArguments
from .config import RUN_DEFAULTS, parse_recipe_args
from .stages import (
    build_recommender,
    get_item_embeddings,
    get_item_tokenizer,
    load_dataset,
    seed_stage,
    test_and_save,
    with_length_grouping,
)

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments(BackboneArguments, DropoutArguments, RQVAEArguments):
    train_on_all_positions: bool = field(
        default=False,
        metadata={"help": "whole-sequence training: one causal pass per user sequence, every item predicted (its codes)"},
    )


@dataclass
class DataArguments(SASRecStageArguments):
    dataset_dir: str | None = field(
        default=None, metadata={"help": "interaction file/folder or a prepared split; default: generated data"}
    )
    item_embeddings: str | None = field(default=None, metadata={"help": "[N, d] .npy; default: train SASRec here"})
    finetune_epochs: int = field(
        default=4,
        metadata={
            "help": "final recommender-only epochs on the frozen codes, from the best checkpoint; early stopping ends "
            "them when validation stops improving, so a run whose fine-tuning validation still climbs at the last "
            "epoch wants more (the embedded preset runs up to 24)"
        },
    )
    finetune_keep_better: bool = field(
        default=False,
        metadata={
            "help": "keep the alternating stage's best checkpoint when fine-tuning never beats it on validation. Off "
            "by default, as the official code (fine-tuning's best regardless; docs/ETEGREC.md has the measurement)"
        },
    )
    finetune_learning_rate: float = field(
        default=5e-4, metadata={"help": "lr of the final stage (ETEGRec: 5e-4, code loss only)"}
    )
    early_stopping_patience: int = 4
    max_train_minutes: float | None = field(
        default=None, metadata={"help": "wall-clock budget of the main (alternating) stage; stops at a step end"}
    )
    finetune_max_minutes: float | None = field(default=None, metadata={"help": "wall-clock budget of fine-tuning"})
    eval_users: int | None = field(
        default=None,
        metadata={
            "help": "select checkpoints / early-stop on this many random validation users (beam search over every "
            "user is the slowest part of a CPU epoch); the test split is always complete"
        },
    )
    group_by_length: bool = field(
        default=False,
        metadata={
            "help": "batch rows of similar history length: much less padding, but it changes the batches' mix, so "
            "it is opt-in (docs/tutorials/etegrec.md has the measured effect)"
        },
    )


#: the recipe's run-shaping defaults (a config file and the flags override them)
DEFAULTS = {
    **RUN_DEFAULTS,
    "output_dir": "outputs/etegrec",
    "num_train_epochs": 16,
    "per_device_train_batch_size": 64,
    "per_device_eval_batch_size": 128,
    "learning_rate": 1e-3,
    "max_grad_norm": 1.0,
    "weight_decay": 0.05,  # official ETEGRec, both sides
    "save_total_limit": 2,
    "logging_steps": 25,
}

ARGUMENTS = (ModelArguments, DataArguments, ETEGRecTrainingArguments)


def parse_args(argv: list[str], prog: str | None = None) -> tuple:
    """``(ModelArguments, DataArguments, ETEGRecTrainingArguments)`` from the command line
    (:func:`~hf_genrec.recipes.config.parse_recipe_args`: defaults, ``--config``, flags)."""
    return parse_recipe_args("etegrec", ARGUMENTS, argv, DEFAULTS, prog)


def print_memory_estimate(margs: ModelArguments, targs: ETEGRecTrainingArguments) -> dict:
    """Print (and return) the per-device memory this configuration needs for training, from the
    config alone (no weights loaded): ``hf-genrec estimate-memory``."""
    backbone = margs.small_backbone(DEFAULT_BACKBONE["vocab_size"])
    if margs.model_name_or_path:
        backbone_config = pretrained(AutoConfig, margs.model_name_or_path, "backbone")
    else:
        backbone_config = backbone
    config = LlamaRecConfig(
        backbone_config=backbone_config,
        num_levels=margs.num_levels,
        codebook_size=margs.codebook_size,
        suffix_size=margs.suffix_size,
        codebook_dim=margs.codebook_dim,
        use_lora=margs.lora_enabled(),
        **margs.lora_config(),
    )
    seq_len = targs.max_history * config.code_length + config.code_length - 1
    checkpointing = bool(targs.gradient_checkpointing or getattr(targs, "activation_checkpointing", False))
    est = estimate_training_memory(
        config,
        targs.per_device_train_batch_size,
        seq_len,
        optim=str(getattr(targs.optim, "value", targs.optim)),
        gradient_checkpointing=checkpointing,
        weight_dtype=torch.bfloat16 if targs.bf16 else torch.float32,
        # Under `accelerate launch --config_file examples/accelerate/fsdp2.yaml` the model is split over the processes.
        shard_over=targs.world_size if launched_with("FSDP") else 1,
    )
    print(
        f"Training memory estimate per device (batch {targs.per_device_train_batch_size} x {seq_len} tokens, "
        f"optim {getattr(targs.optim, 'value', targs.optim)}, {targs.world_size} process(es)):"
    )
    print(est.table())
    return est.to_dict()


def run(margs: ModelArguments, dargs: DataArguments, targs: ETEGRecTrainingArguments) -> dict:
    """Run the recipe end to end; returns the test metrics (both protocols)."""
    set_seed(targs.seed)
    work = targs.output_dir
    os.makedirs(work, exist_ok=True)

    dsd = load_dataset(dargs.dataset_dir, max_history=targs.max_history, seed=targs.seed)
    if dargs.group_by_length:
        targs = with_length_grouping(targs, dsd)
    # The checkpoint-selection subset; the SASRec stage and the test still read every user.
    validation = dsd["validation"]
    if dargs.eval_users and dargs.eval_users < len(validation):
        validation = validation.shuffle(seed=targs.seed).select(range(dargs.eval_users))
    logger.info(
        "data: %d items; rows train %d / validation %d (selection on %d) / test %d",
        dsd.num_items,
        len(dsd["train"]),
        len(dsd["validation"]),
        len(validation),
        len(dsd["test"]),
    )
    emb = get_item_embeddings(
        dsd,
        dargs.item_embeddings,
        work,
        dargs.sasrec_kwargs(use_cpu=targs.use_cpu, disable_tqdm=True, seed=targs.seed, full_determinism=targs.full_determinism),
    )
    tokenizer = get_item_tokenizer(
        emb,
        margs.rqvae_path,
        work,
        margs.rqvae_config(emb.shape[1]),
        margs.rqvae_epochs,
        use_cpu=targs.use_cpu,
        seed=targs.seed,
        full_determinism=targs.full_determinism,
    )

    seed_stage(targs.seed, "recommender", targs.full_determinism)
    model = build_recommender(
        tokenizer,
        emb,
        margs.model_name_or_path,
        backbone_config=margs.small_backbone(DEFAULT_BACKBONE["vocab_size"]),
        use_lora=margs.lora_enabled(),
        **margs.lora_config(),
        default_num_beams=targs.eval_num_beams,
        train_on_all_positions=margs.train_on_all_positions,
        max_history=targs.max_history,
        **margs.dropout_config(),
    )
    # Whole-sequence training reads one row per user sequence (windows of max_history + 1 items).
    train_rows = dsd["train"]
    if margs.train_on_all_positions:
        train_rows = whole_sequence_rows(dsd, targs.max_history)
        logger.info("whole-sequence training: %d rows (windows of up to %d items)", len(train_rows), targs.max_history + 1)
    model.set_item_map(dsd.item_map)
    logger.info(
        "recommender: %.2fM parameters, %.2fM trainable",
        sum(p.numel() for p in model.parameters()) / 1e6,
        sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
    )

    def make_trainer(args: ETEGRecTrainingArguments, max_minutes: float | None) -> ETEGRecTrainer:
        callbacks = [EarlyStoppingCallback(early_stopping_patience=dargs.early_stopping_patience)]
        if max_minutes:
            callbacks.append(TimeBudgetCallback(max_minutes))
        return ETEGRecTrainer(
            model=model,
            item_tokenizer=tokenizer,
            item_embeddings=emb,
            args=args,
            train_dataset=train_rows,
            eval_dataset=validation,
            callbacks=callbacks,
        )

    trainer = make_trainer(targs, dargs.max_train_minutes)
    before = run_stage(trainer, targs.resume_from_checkpoint)

    # Final stage: from the best checkpoint (loaded at the end of train()), fine-tune the
    # recommender with the tokenizer frozen.
    if dargs.finetune_epochs > 0:
        # As in the official ETEGRec: code loss only, a smaller lr, no warmup.
        ft_args = dataclasses.replace(
            targs,
            alternating=False,
            num_train_epochs=dargs.finetune_epochs,
            learning_rate=dargs.finetune_learning_rate,
            warmup_steps=0,
            rec_sia_weight=0.0,
            rec_psa_weight=0.0,
            output_dir=os.path.join(work, "finetune"),
            resume_from_checkpoint=None,
        )
        seed_stage(targs.seed, "finetune", targs.full_determinism)
        trainer = make_trainer(ft_args, dargs.finetune_max_minutes)
        run_stage(trainer, None)
        if dargs.finetune_keep_better:
            keep_better_stage(trainer, before, targs.greater_is_better)

    return test_and_save(trainer, model, dsd, dargs.dataset_dir, work, ", exact 4-code match")


def keep_better_stage(ft_trainer: ETEGRecTrainer, before, greater_is_better: bool | None) -> None:
    """Reload the alternating stage's best checkpoint when fine-tuning never beat it on validation.

    The official code restarts the best score at 0 for fine-tuning, so a fine-tuning stage that only
    loses ground on validation still replaces the alternating stage's model (``--finetune_keep_better``)."""
    ours, theirs = ft_trainer.state.best_metric, before.best_metric
    if ours is None or theirs is None or not before.best_model_checkpoint:
        return
    if (ours < theirs) if greater_is_better is not False else (ours > theirs):
        logger.warning(
            "fine-tuning's best validation %s (%.5f) is below the alternating stage's (%.5f): keeping %s",
            ft_trainer.args.metric_for_best_model,
            ours,
            theirs,
            before.best_model_checkpoint,
        )
        ft_trainer.load_saved_model(before.best_model_checkpoint)


def main(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the recipe; returns the test metrics."""
    return run(*parse_args(sys.argv[1:] if argv is None else argv))
