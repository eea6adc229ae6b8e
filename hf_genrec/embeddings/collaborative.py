"""Collaborative item embeddings: train SASRec on the train split and export its item table.

SASRec doubles as the library's sequential baseline, so training also reports its
full-ranking validation / test metrics.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from transformers import EarlyStoppingCallback, TrainerCallback, TrainingArguments

from ..data import DataCollatorForRecommendation
from ..data.splits import GenRecDatasetDict
from ..data.table import SequenceTable
from ..distributed import without_model_sharding
from ..metrics import DEFAULT_KS
from ..models.sasrec import SASRecConfig, SASRecModel
from ..training import RecommenderTrainer, RecommenderTrainingArguments, run_stage
from ..utils.errors import InputError
from ..utils.padding import left_pad

logger = logging.getLogger(__name__)

#: Named :func:`train_sasrec` settings. ``"basic"``: the function's own defaults (pre-norm blocks,
#: validation every epoch, early stopping). ``"reference"``: the strongest published Beauty recipe
#: for a full-softmax SASRec (2 blocks, 1 head, dropout 0.6, constant lr 5e-4, weight decay 1e-8,
#: batch 512, 50-item window, validation with seen items excluded every 5 epochs, no early
#: stopping) with its block structure (query-only LayerNorm, attention over the padded window,
#: Xavier init); on Beauty it tests at NDCG@10 ~.059 with seen items excluded after 100 epochs.
SASREC_RECIPES: dict[str, dict] = {
    "basic": {"num_train_epochs": 30},
    "reference": dict(
        num_train_epochs=100, hidden_size=64, num_layers=2, num_heads=1, dropout=0.6, max_history=50, batch_size=512,
        learning_rate=5e-4, weight_decay=1e-8, max_grad_norm=0.0, lr_scheduler_type="constant",
        eval_every_epochs=5, patience=None, exclude_history=True,
        block="query_norm", attend_padding=True, initialization="xavier",
    ),
}


class EvaluateAtTrainingEnd(TrainerCallback):
    """Validate and checkpoint at the last step of a step-scheduled run, so a run shorter than its
    validation period (or one whose length is not a multiple of it) still ends with a checkpoint
    to select. Recent Trainers do this themselves; older 5.x ones do not, so it is explicit here."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps and args.eval_strategy == "steps":
            if state.global_step % state.eval_steps:  # a multiple was already scheduled by the Trainer
                control.should_evaluate = True
            control.should_save = True
        return control


def sasrec_recipe(name: str, **overrides) -> dict:
    """The :func:`train_sasrec` keyword arguments of recipe ``name`` (see :data:`SASREC_RECIPES`),
    updated with ``overrides`` (``None`` values are ignored, so unset CLI flags keep the recipe's)."""
    if name not in SASREC_RECIPES:
        raise InputError(f"unknown SASRec recipe {name!r}; choose one of {sorted(SASREC_RECIPES)}")
    return {**SASREC_RECIPES[name], **{k: v for k, v in overrides.items() if v is not None}}


class SASRecCollator(DataCollatorForRecommendation):
    """Whole training sequences: left-padded ``input_ids`` / shifted ``labels``, both ``[B, L]``
    (SASRec trains on every position). Evaluation rows (``history`` / ``target``) are batched as for
    every family (:class:`~hf_genrec.data.DataCollatorForRecommendation`, with ``seen_items``)."""

    def __init__(self, max_history: int = 50):
        super().__init__(max_history, seen_items=True)

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        if "labels" in rows[0]:
            return {
                "input_ids": left_pad([r["input_ids"] for r in rows], 0),
                "labels": left_pad([r["labels"] for r in rows], 0),
            }
        return super().__call__(rows)


class SequenceTrainingRows(torch.utils.data.Dataset):
    """SASRec's training rows, one per user whose training sequence (everything before the
    validation target) has two items or more: ``input_ids`` = its last ``max_history`` inputs and
    ``labels`` = the items that follow them (the model reads no more than that window). Made from
    the table when read; nothing per row is stored."""

    def __init__(self, table: SequenceTable, max_history: int):
        self.table, self.max_history = table, max_history
        self._users = np.flatnonzero(table.lengths - 2 >= 2)

    def __len__(self) -> int:
        return len(self._users)

    def __getitem__(self, i: int) -> dict:
        u = int(self._users[i])
        start, end = int(self.table.offsets[u]), int(self.table.offsets[u + 1]) - 2
        window = self.table.items[max(start, end - self.max_history - 1) : end].tolist()
        return {"input_ids": window[:-1], "labels": window[1:]}


def train_sasrec(
    dsd: GenRecDatasetDict,
    output_dir: str,
    hidden_size: int = 256,
    num_layers: int = 2,
    num_heads: int = 2,
    dropout: float = 0.5,
    max_history: int = 50,
    num_train_epochs: int = 200,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    patience: int | None = 10,
    seed: int = 42,
    use_cpu: bool = False,
    metric_ks=DEFAULT_KS,
    exclude_history: bool = False,
    eval_every_epochs: int = 1,
    lr_scheduler_type: str = "constant",
    callbacks: list | None = None,
    block: str = "pre_norm",
    attend_padding: bool = False,
    initialization: str = "normal",
    **training_kwargs,
) -> tuple[SASRecModel, dict[str, float]]:
    """Train SASRec with full-softmax CE on every position of each user's training sequence,
    select the evaluation with the best validation NDCG@10 and evaluate it on the test split. A
    run that left checkpoints in ``output_dir`` resumes from the last one.

    Args:
        exclude_history: the model-selection protocol (and the saved model's default): rank with
            each user's history items removed ("seen items excluded") or over all items.
        eval_every_epochs: validate (and checkpoint) every this many epochs, and at the last step
            (:class:`EvaluateAtTrainingEnd`), so a run shorter than that still has one to select.
        patience: stop after this many validations without improvement; None trains every epoch.
        lr_scheduler_type: ``"constant"`` by default (as the reference SASRec implementations: a
            linear decay to 0 stops learning long before 200 epochs are done).
        callbacks: more ``TrainerCallback`` objects (e.g. timing).
        block / attend_padding / initialization: the model's structure (:class:`SASRecConfig`).
        training_kwargs: more ``TrainingArguments`` (e.g. ``weight_decay``, ``max_grad_norm``).

    Returns the model and its metrics: ``val_*`` / ``test_*`` recall/ndcg at ``metric_ks`` under the
    selection protocol, and the same under both protocols as ``{split}_exclude_seen_*`` and
    ``{split}_all_items_*``.
    """
    if eval_every_epochs < 1:
        raise InputError(f"eval_every_epochs must be >= 1, got {eval_every_epochs}")
    config = SASRecConfig(
        num_items=dsd.num_items,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        dropout=dropout,
        max_history=max_history,
        exclude_history=exclude_history,
        block=block,
        attend_padding=attend_padding,
        initialization=initialization,
    )
    torch.manual_seed(seed)
    model = SASRecModel(config)
    model.set_item_map(dsd.item_map)  # every checkpoint, and the final model, recommends the user's ids
    train_rows = SequenceTrainingRows(dsd.table, max_history)
    # A small model: plain data parallel even inside an FSDP / DeepSpeed launch.
    with without_model_sharding():
        schedule = {"eval_strategy": "epoch", "save_strategy": "epoch"}
        if eval_every_epochs > 1:
            world = TrainingArguments(output_dir=output_dir, use_cpu=use_cpu, report_to=[]).world_size
            steps = eval_every_epochs * math.ceil(len(train_rows) / (batch_size * world))
            schedule = {"eval_strategy": "steps", "save_strategy": "steps", "eval_steps": steps, "save_steps": steps}
        args = RecommenderTrainingArguments(
            output_dir=output_dir,
            num_train_epochs=num_train_epochs,
            per_device_train_batch_size=batch_size,
            per_device_eval_batch_size=batch_size * 2,
            learning_rate=learning_rate,
            lr_scheduler_type=lr_scheduler_type,
            **schedule,
            save_total_limit=1,
            load_best_model_at_end=True,
            metric_for_best_model="ndcg@10",
            greater_is_better=True,
            metric_ks=list(metric_ks),
            max_history=max_history,
            exclude_history=exclude_history,
            report_to=[],
            seed=seed,
            use_cpu=use_cpu,
            logging_strategy="epoch",
            # A resumed run keeps early stopping's patience count (it is saved with each checkpoint).
            restore_callback_states_from_checkpoint=True,
            **training_kwargs,
        )
        # The trainer every family shares: evaluation ranks through top_k_items (each target's rank
        # only, so memory stays O(users)), checkpoints are staged and checked when loaded.
        trainer = RecommenderTrainer(
            model=model,
            args=args,
            train_dataset=train_rows,
            eval_dataset=dsd["validation"],
            data_collator=SASRecCollator(max_history),
            callbacks=([EarlyStoppingCallback(early_stopping_patience=patience)] if patience else [])
            + [EvaluateAtTrainingEnd()]
            + list(callbacks or []),
        )
        # A run cut short (a session's end) continues from its last epoch checkpoint; a finished one is reused.
        run_stage(trainer)
        # The final reports use other metric prefixes; early stopping has nothing to watch there.
        trainer.remove_callback(EarlyStoppingCallback)
        metrics = {}
        for split, prefix in (("validation", "val"), ("test", "test")):
            for key, value in trainer.evaluate_protocols(dsd[split], metric_key_prefix=prefix).items():
                metrics[f"{prefix}_{key.replace('/', '_')}"] = value
    logger.info("SASRec metrics: %s", metrics)
    model.training_log = trainer.state.log_history
    return model, metrics


def collaborative_item_embeddings(model: SASRecModel) -> np.ndarray:
    """``[N, hidden_size]`` float32, row i = dense item id i + 1."""
    return model.item_embeddings().numpy().astype(np.float32)
