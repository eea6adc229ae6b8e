"""Collaborative item embeddings: train SASRec on the train split and export its item table.

SASRec doubles as the library's sequential baseline, so training also reports its
full-ranking validation / test metrics.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
from transformers import EarlyStoppingCallback, Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from ..data.splits import GenRecDatasetDict, train_sequences
from ..distributed import without_model_sharding
from ..metrics import DEFAULT_KS, ranking_metrics_for_trainer, ranks_from_scores
from ..models.sasrec import SASRecConfig, SASRecModel
from ..utils.padding import left_pad

logger = logging.getLogger(__name__)


class SASRecCollator:
    """Left-pads whole training sequences (``input_ids`` / shifted ``labels``, both ``[B, L]``) or
    evaluation rows (``history`` -> ``input_ids`` ``[B, L]``, ``target`` -> ``labels`` ``[B]``)."""

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        if "labels" in rows[0]:
            return {
                "input_ids": left_pad([r["input_ids"] for r in rows], 0),
                "labels": left_pad([r["labels"] for r in rows], 0),
            }
        return {
            "input_ids": left_pad([r["history"] for r in rows], 0),
            "labels": torch.tensor([r["target"] for r in rows], dtype=torch.long),
        }


def _sequence_rows(dsd: GenRecDatasetDict) -> list[dict]:
    rows = []
    for seq in train_sequences(dsd):
        if len(seq) >= 2:
            rows.append({"input_ids": seq[:-1], "labels": seq[1:]})
    return rows


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
    patience: int = 10,
    seed: int = 42,
    use_cpu: bool = False,
    metric_ks=DEFAULT_KS,
    **training_kwargs,
) -> tuple[SASRecModel, dict[str, float]]:
    """Train SASRec with full-softmax CE on every position of each user's training sequence,
    select the epoch with the best validation NDCG@10 and evaluate it on the test split. A run
    that left epoch checkpoints in ``output_dir`` resumes from the last one.

    Returns the model and its metrics (``val_*`` and ``test_*`` recall/ndcg at ``metric_ks``).
    """
    config = SASRecConfig(
        num_items=dsd.num_items,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        dropout=dropout,
        max_history=max_history,
    )
    torch.manual_seed(seed)
    model = SASRecModel(config)
    # A small model: plain data parallel even inside an FSDP / DeepSpeed launch.
    with without_model_sharding():
        args = TrainingArguments(
            output_dir=output_dir,
            num_train_epochs=num_train_epochs,
            per_device_train_batch_size=batch_size,
            per_device_eval_batch_size=batch_size * 2,
            learning_rate=learning_rate,
            eval_strategy="epoch",
            save_strategy="epoch",
            save_total_limit=1,
            load_best_model_at_end=True,
            metric_for_best_model="ndcg@10",
            greater_is_better=True,
            remove_unused_columns=False,
            label_names=["labels"],
            report_to=[],
            seed=seed,
            use_cpu=use_cpu,
            logging_strategy="epoch",
            **training_kwargs,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=_sequence_rows(dsd),
            eval_dataset=list(dsd["validation"]),
            data_collator=SASRecCollator(),
            compute_metrics=ranking_metrics_for_trainer(metric_ks),
            # Full-catalogue logits are [users, N+1]; keep only each target's rank so evaluation
            # memory stays O(users) instead of O(users x items).
            preprocess_logits_for_metrics=ranks_from_scores,
            callbacks=[EarlyStoppingCallback(early_stopping_patience=patience)],
        )
        # A run cut short (a session's end) continues from its last epoch checkpoint.
        last = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
        if last:
            logger.info("SASRec: resuming from %s", last)
        trainer.train(resume_from_checkpoint=last)
        # The final reports use other metric prefixes; early stopping has nothing to watch there.
        trainer.remove_callback(EarlyStoppingCallback)
        metrics = {}
        for split, prefix in (("validation", "val"), ("test", "test")):
            m = trainer.evaluate(list(dsd[split]), metric_key_prefix=prefix)
            metrics.update({k: v for k, v in m.items() if "@" in k})
    logger.info("SASRec metrics: %s", metrics)
    return model, metrics


def collaborative_item_embeddings(model: SASRecModel) -> np.ndarray:
    """``[N, hidden_size]`` float32, row i = dense item id i + 1."""
    return model.item_embeddings().numpy().astype(np.float32)
