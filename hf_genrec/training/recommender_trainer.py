"""``RecommenderTrainer``: the ``transformers.Trainer`` that evaluates any model family.

Evaluation asks the model for its top ``max(metric_ks)`` items through the recommender contract
(``top_k_items``) and reports Recall@k / NDCG@k over the whole catalogue (leave-one-out: one
held-out item per user, no sampled negatives). The Trainer's own evaluation loop gathers the
per-user ranks across processes and drops the padding it adds, so under DDP each user counts once.
"""

from __future__ import annotations

import inspect
import logging
import os
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import Trainer, TrainingArguments

from ..compat import TrainerHooks
from ..data import DataCollatorForRecommendation
from ..data.sampling import LengthGroupedRowSampler
from ..metrics import DEFAULT_KS, ranking_metrics_for_trainer, target_ranks
from ..utils.atomic import staged_folder
from ..utils.checkpoints import DurableCheckpointCallback, is_trainer_checkpoint, require_complete_checkpoint
from ..utils.errors import InputError
from .checkpoint import check_keys, read_weights

logger = logging.getLogger(__name__)


@dataclass
class RecommenderTrainingArguments(TrainingArguments):
    """``TrainingArguments`` plus what every recommender family's training shares."""

    metric_ks: list[int] = field(
        default_factory=lambda: list(DEFAULT_KS), metadata={"help": "cutoffs k of the Recall@k / NDCG@k reported"}
    )
    max_history: int = field(
        default=50,
        metadata={"help": "history items the model reads (the most recent); saved in the model's config.max_history"},
    )
    exclude_history: bool | None = field(
        default=None,
        metadata={
            "help": "evaluate with each user's whole history left out of the ranking (seen items excluded; a target "
            "that repeats a history item is then a miss); default: the model's config.exclude_history"
        },
    )
    # The collator consumes the raw `history` / `target` columns, so they must survive.
    remove_unused_columns: bool = field(default=False)

    def __post_init__(self):
        super().__post_init__()
        if not self.metric_ks or min(self.metric_ks) < 1:
            raise InputError(f"metric_ks must be positive cutoffs, got {self.metric_ks}")
        self.metric_ks = sorted(set(self.metric_ks))
        if self.label_names is None:
            self.label_names = ["targets"]


TRAINING_ARGS_JSON = "training_args.json"


def staged_save_folder(output_dir: str):
    """Stage a Trainer save (:func:`hf_genrec.utils.atomic.staged_folder`). A ``checkpoint-N`` is the
    Trainer's alone and is staged fresh, so a half-written one left by a killed run is dropped;
    any other folder (the run's ``output_dir``, a ``final/``) keeps what else it holds."""
    return staged_folder(output_dir, keep_other_files=not is_trainer_checkpoint(output_dir))


def replace_pickled_training_args(args: TrainingArguments, output_dir: str) -> None:
    """Write the training arguments as JSON and remove ``Trainer``'s ``training_args.bin``: a pickle,
    which nobody should have to unpickle to read a checkpoint (loading one runs arbitrary code)."""
    with open(os.path.join(output_dir, TRAINING_ARGS_JSON), "w") as f:
        f.write(args.to_json_string())
    pickled = os.path.join(output_dir, "training_args.bin")
    if os.path.exists(pickled):
        os.remove(pickled)


class RecommenderTrainer(TrainerHooks, Trainer):
    """A ``Trainer`` for any model that implements the recommender contract
    (:class:`hf_genrec.models.recommender.Recommender`).

    Args:
        model: the module to train (the recommender itself, or a module wrapping it).
        args: :class:`RecommenderTrainingArguments` (or a subclass).
        recommender: the model whose ``top_k_items`` evaluation calls; default ``model``.
        data_collator: default :class:`~hf_genrec.data.DataCollatorForRecommendation`.
        compute_metrics: default Recall@k, NDCG@k, HR@k and MRR@k at ``args.metric_ks`` (the ``evaluate`` ranking module).
        Everything else goes to ``Trainer``.
    """

    def __init__(
        self, model, args: RecommenderTrainingArguments, recommender=None, data_collator=None, compute_metrics=None, **kwargs
    ):
        if not isinstance(args, RecommenderTrainingArguments):
            raise TypeError(f"{type(self).__name__} needs RecommenderTrainingArguments (or a subclass)")
        self.recommender = recommender if recommender is not None else model
        if not callable(getattr(self.recommender, "top_k_items", None)):
            raise TypeError(f"{type(self.recommender).__name__} does not implement the recommender contract (top_k_items)")
        config = getattr(self.recommender, "config", None)
        if config is not None and getattr(config, "max_history", args.max_history) != args.max_history:
            # The checkpoint must record the history length it was trained and evaluated with.
            logger.warning(
                "max_history: the model's %s is replaced by the training arguments' %s (saved with the model)",
                config.max_history,
                args.max_history,
            )
            config.max_history = args.max_history
            check = getattr(self.recommender, "check_max_history", None)
            if check is not None:
                check()  # a backbone that cannot place that many positions refuses here too
        asked = args.exclude_history
        if config is not None and asked is not None and getattr(config, "exclude_history", None) != asked:
            # Likewise the ranking protocol the checkpoint was selected and measured under: a model
            # trained with exclude_history=True must not serve (recommend(), the server) with seen items.
            logger.info("exclude_history: the model's config is set to the training arguments' %s (saved with it)", asked)
            config.exclude_history = bool(asked)
        # Per-user side inputs the collator adds (e.g. history_timestamps) go to a model that takes them.
        self._top_k_params = set(inspect.signature(self.recommender.top_k_items).parameters)
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator or DataCollatorForRecommendation(args.max_history, seen_items=True),
            compute_metrics=compute_metrics or ranking_metrics_for_trainer(args.metric_ks),
            **kwargs,
        )
        self.add_callback(DurableCheckpointCallback())

    def _load_adapters(self, checkpoint: str) -> None:
        # Adapter-only backbones keep their adapters beside the weights, in peft's format, which
        # Trainer's own loading (model.safetensors only) does not read.
        load = getattr(self.recommender, "load_adapters_from", None)
        if load is not None and self.recommender.adapter_only_slots():
            load(checkpoint)

    def load_saved_model(self, folder: str) -> None:
        """Load into the trained model, strictly, what :meth:`save_model` wrote to ``folder`` (a
        finished stage's weights, when a rerun skips the stage)."""
        state = read_weights(folder)
        adapters = getattr(self.recommender, "adapter_state_from", None)
        if adapters is not None:
            state.update(adapters(folder))
        # An adapter-only checkpoint lacks the frozen base weights by design (they stay as loaded).
        check_keys(folder, set(state), set(self.recommender.state_dict()), self.recommender._keys_to_ignore_on_load_missing)
        self.recommender.load_state_dict(state, strict=False)

    def load_checkpoint_weights(self, folder: str, model=None):
        """Resume from ``folder``: refused unless the checkpoint is complete; adapters are loaded too."""
        require_complete_checkpoint(folder)
        self.trainer_load_checkpoint_weights(folder, model)
        self._load_adapters(folder)

    def load_best_model(self):
        self.trainer_load_best_model()
        if self.state.best_model_checkpoint:
            self._load_adapters(self.state.best_model_checkpoint)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        # The main process stages the folder and renames it into place; under a launch the other
        # ranks then write their RNG state into a checkpoint folder, which must be the final one.
        self.accelerator.wait_for_everyone()

    def write_model_folder(self, output_dir: str, state_dict=None):
        # The Trainer writes the model, then training_args.bin beside it: staged, the folder
        # appears whole or not at all (the model's own staging writes into this stage).
        if not self.args.should_save:
            return self.trainer_write_model_folder(output_dir, state_dict)
        with staged_save_folder(output_dir) as stage:
            self.trainer_write_model_folder(stage, state_dict)
            replace_pickled_training_args(self.args, stage)

    def train_sampler(self, train_dataset=None):
        # Trainer reads group-by-length lengths only from a `datasets.Dataset` column, and would
        # otherwise list every row's history. Leave-one-out views (hf_genrec.data.LeaveOneOutRows)
        # carry their lengths as an array computed from per-user lengths; the sampler draws the
        # same order as transformers' LengthGroupedSampler would.
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        lengths = getattr(dataset, "lengths", None) if self._groups_by_length else None
        if isinstance(lengths, np.ndarray):
            return LengthGroupedRowSampler(lengths, self.args.train_batch_size * self.args.gradient_accumulation_steps)
        return self.trainer_train_sampler(train_dataset)

    def eval_sampler(self, eval_dataset):
        # The Trainer groups evaluation rows by length too when training does, again only from a
        # `datasets` column; a view's lengths give the same order (its seeded generator included).
        lengths = getattr(eval_dataset, "lengths", None) if self._groups_by_length else None
        if isinstance(lengths, np.ndarray):
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return LengthGroupedRowSampler(lengths, self.args.eval_batch_size, torch.Generator().manual_seed(seed))
        return self.trainer_eval_sampler(eval_dataset)

    @property
    def _groups_by_length(self) -> bool:
        strategy = getattr(self.args, "train_sampling_strategy", None)
        return strategy == "group_by_length" or getattr(self.args, "group_by_length", False)

    def top_k_kwargs(self) -> dict:
        """Extra keyword arguments of ``top_k_items`` during evaluation (e.g. beams)."""
        return {}

    @property
    def excludes_history(self) -> bool:
        """Whether evaluation leaves the history out of the ranking (``args.exclude_history``, else the
        recommender's ``config.exclude_history``)."""
        if self.args.exclude_history is not None:
            return self.args.exclude_history
        return bool(getattr(getattr(self.recommender, "config", None), "exclude_history", False))

    def evaluate_protocols(self, dataset, metric_key_prefix: str = "test") -> dict[str, float]:
        """Rank ``dataset`` under both protocols: ``{"exclude_seen/recall@10": ..., "all_items/...": ...}``,
        plus the run's own protocol (:attr:`excludes_history`) under unprefixed keys (``"recall@10"``)."""
        chosen, asked = self.excludes_history, self.args.exclude_history
        report: dict[str, float] = {}
        try:
            for protocol, exclude in (("exclude_seen", True), ("all_items", False)):
                self.args.exclude_history = exclude
                out = self.evaluate(dataset, metric_key_prefix=metric_key_prefix)
                metrics = {k.removeprefix(f"{metric_key_prefix}_"): v for k, v in out.items() if "@" in k}
                report.update({f"{protocol}/{k}": v for k, v in metrics.items()})
                if exclude == chosen:
                    report.update(metrics)
        finally:
            self.args.exclude_history = asked
        return report

    def training_step(self, model, inputs, *args, **kwargs):
        # `seen_items` is for evaluation only; the model's forward does not take it.
        return super().training_step(model, {k: v for k, v in inputs.items() if k != "seen_items"}, *args, **kwargs)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Top ``max(metric_ks)`` items for each history; returns each target's 0-based rank (a miss = k).
        With :attr:`excludes_history`, the ranking leaves out the whole history (``seen_items`` when
        the collator gives it, else the model's ``history``)."""
        inputs = self.inputs_on_device(inputs)
        seen = inputs.pop("seen_items", None)
        extra = {k: v for k, v in inputs.items() if k not in ("history", "targets") and k in self._top_k_params}
        if self.excludes_history:
            extra["exclude_items"] = seen if seen is not None else inputs["history"]
        with torch.no_grad():
            out = self.recommender.top_k_items(inputs["history"], max(self.args.metric_ks), **extra, **self.top_k_kwargs())
        ranks = target_ranks(out.item_ids, inputs["targets"])
        return None, ranks, inputs["targets"]
