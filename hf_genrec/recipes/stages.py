"""Stages the recipes share: load data, get item embeddings, get a tokenizer, build the recommender around it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys

import torch
from accelerate import PartialState
from transformers import EarlyStoppingCallback, HfArgumentParser, TrainerState, set_seed

from ..data import (
    GenRecDatasetDict,
    dataset_file_in,
    leave_one_out,
    load_genrec_dataset,
    load_interactions,
    make_synthetic_sequences,
)
from ..data.table import DATASET_INFO_FILE
from ..embeddings import SASREC_RECIPES, collaborative_item_embeddings, load_item_embeddings, sasrec_recipe, train_sasrec
from ..models.llamarec import LlamaRecConfig, LlamaRecForCodeGeneration
from ..models.rqvae import RQVAEConfig, RQVAEModel
from ..training import RecommenderTrainer
from ..training.rqvae_pretraining import pretrain_rqvae
from ..utils.atomic import save_npy, write_json
from ..utils.checkpoints import last_complete_checkpoint

logger = logging.getLogger(__name__)

#: run-shaping defaults the recommender recipes share (each adds its own output dir, epochs, lr, ...)
RUN_DEFAULTS = {
    "--per_device_eval_batch_size": "256",
    "--eval_strategy": "epoch",
    "--save_strategy": "epoch",
    "--save_total_limit": "1",
    "--load_best_model_at_end": "true",
    "--metric_for_best_model": "ndcg@10",
    "--lr_scheduler_type": "cosine",
    "--warmup_steps": "0.05",
    "--logging_steps": "50",
    "--report_to": "none",
}


def stage_seed(run_seed: int, stage: str) -> int:
    """The seed of one stage of a run: a hash of the run's seed and the stage's name (32 bits)."""
    return int.from_bytes(hashlib.sha256(f"{run_seed}/{stage}".encode()).digest()[:4], "little")


def seed_stage(run_seed: int, stage: str, deterministic: bool = False) -> int:
    """Seed Python, numpy and torch for ``stage`` (:func:`stage_seed`) and return the seed.

    Called where a stage starts building random state (a model's initial weights), so what it
    builds does not depend on which stages ran before it in this process: a rerun after a kill
    skips the finished stages, and must still build exactly what the uninterrupted run built.
    """
    seed = stage_seed(run_seed, stage)
    set_seed(seed, deterministic=deterministic)
    return seed


def parse_recipe_args(dataclass_types: tuple, argv: list[str] | None, defaults: dict[str, str]) -> tuple:
    """Parse ``argv`` (default ``sys.argv[1:]``) into ``dataclass_types`` (the last one a
    ``TrainingArguments``), filling every flag not given from ``defaults``; then the set-up every
    recipe does: CPU when there is no GPU, the seed, the output dir (logging is the caller's: the
    console entry points configure it, see :func:`hf_genrec.cli.errors.run_cli`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    given = {a.split("=")[0] for a in argv if a.startswith("--")}
    argv += [x for k, v in defaults.items() if k not in given for x in (k, v)]
    *recipe_args, targs = HfArgumentParser(dataclass_types).parse_args_into_dataclasses(args=argv)
    if not torch.cuda.is_available():
        targs = dataclasses.replace(targs, use_cpu=True)
    set_seed(targs.seed)
    os.makedirs(targs.output_dir, exist_ok=True)
    return (*recipe_args, targs)


def load_dataset(dataset_dir: str | None, max_history: int = 50, seed: int = 0) -> GenRecDatasetDict:
    """A prepared folder (``hf-genrec-prepare`` output), an interaction file / folder, or — with
    ``None`` — the generated embedded default. Training rows hold at most ``max_history`` history
    items; validation and test rows hold the whole history (so evaluation can exclude every seen item)."""
    if dataset_dir is None:
        return leave_one_out(make_synthetic_sequences(seed=seed), max_history=max_history, eval_max_history=None)
    if os.path.isdir(dataset_dir) and any(
        os.path.exists(os.path.join(dataset_dir, marker)) for marker in (DATASET_INFO_FILE, "dataset_dict.json")
    ):
        return load_genrec_dataset(dataset_dir, max_history=max_history)
    return leave_one_out(load_interactions(dataset_file_in(dataset_dir)), max_history=max_history, eval_max_history=None)


def with_length_grouping(args, dsd: GenRecDatasetDict):
    """Return ``args`` set to batch rows of similar history length (the rows' lengths come from the
    per-user lengths). Leave-one-out histories are mostly short (Beauty: median 4 items, max 50), so
    random batches padded to their longest row hold few real tokens."""
    names = {f.name for f in dataclasses.fields(args)}
    if "train_sampling_strategy" in names:  # transformers >= 5.2x
        return dataclasses.replace(args, train_sampling_strategy="group_by_length", length_column_name="length")
    return dataclasses.replace(args, group_by_length=True, length_column_name="length")


def get_item_embeddings(
    dsd: GenRecDatasetDict, path: str | None, work_dir: str, sasrec_kwargs: dict | None = None
) -> torch.Tensor:
    """Load ``path`` (``.npy``, ``[N, d]``) or train SASRec and export its item table (saved to ``work_dir``)."""
    if path:
        return torch.from_numpy(load_item_embeddings(path, dsd.num_items))
    # A rerun (e.g. after a kill) reuses the finished stage: the RQ-VAE and the recommender's
    # checkpoints were built on exactly these embeddings. The metrics file is written last.
    saved, report = os.path.join(work_dir, "item_embeddings.npy"), os.path.join(work_dir, "sasrec_metrics.json")
    if os.path.exists(saved) and os.path.exists(report):
        logger.info("SASRec stage already finished: reusing %s", saved)
        return torch.from_numpy(load_item_embeddings(saved, dsd.num_items))
    model, metrics = train_sasrec(dsd, os.path.join(work_dir, "sasrec"), **(sasrec_kwargs or {}))
    emb = collaborative_item_embeddings(model)
    if PartialState().is_main_process:  # every rank holds the same table; one writes it
        save_npy(saved, emb)
        write_json(report, metrics)  # last: it marks the stage finished
    PartialState().wait_for_everyone()
    logger.info("SASRec baseline: %s", metrics)
    return torch.from_numpy(emb)


@dataclasses.dataclass
class SASRecStageArguments:
    """How a recipe trains the SASRec whose item table it uses (when no embeddings are given)."""

    sasrec_recipe: str = dataclasses.field(
        default="reference",
        metadata={
            "choices": sorted(SASREC_RECIPES),
            "help": "'reference': the strongest published full-softmax SASRec recipe on Amazon Beauty (query-norm "
            "blocks, dropout 0.6; 100 epochs here, the published runs trained 200); 'basic': the short early-stopped one",
        },
    )
    sasrec_hidden_size: int = 64
    sasrec_epochs: int | None = dataclasses.field(
        default=None, metadata={"help": "default: the recipe's (reference 100, basic 30)"}
    )

    def sasrec_kwargs(self, **run) -> dict:
        """:func:`train_sasrec` keyword arguments: the recipe, these flags, then ``run`` (device, seed, ...)."""
        return sasrec_recipe(self.sasrec_recipe, hidden_size=self.sasrec_hidden_size, num_train_epochs=self.sasrec_epochs) | run


def get_item_tokenizer(
    embeddings: torch.Tensor, path: str | None, work_dir: str, config: RQVAEConfig, epochs: int, **kwargs
) -> RQVAEModel:
    """Load a pre-trained RQ-VAE from ``path`` or pre-train one on ``embeddings``."""
    if path:
        tok = RQVAEModel.from_pretrained(path)
        if tok.config.semantic_dim != embeddings.shape[1]:
            raise ValueError(f"RQ-VAE at {path} expects {tok.config.semantic_dim}-d embeddings, got {embeddings.shape[1]}-d")
        return tok
    tok, stats = pretrain_rqvae(embeddings, os.path.join(work_dir, "rqvae"), config, num_train_epochs=epochs, **kwargs)
    logger.info("RQ-VAE pre-trained: %s", stats)
    return tok


@dataclasses.dataclass
class DropoutArguments:
    """Backbone regularisation flags every LLM recipe takes (saved in the model config)."""

    embedding_dropout: float = dataclasses.field(default=0.0, metadata={"help": "dropout on the backbone's input embeddings"})
    hidden_dropout: float = dataclasses.field(
        default=0.0, metadata={"help": "dropout on each attention / MLP block's output before the residual add"}
    )
    attention_dropout: float = dataclasses.field(default=0.0, metadata={"help": "dropout on the attention probabilities"})

    def dropout_config(self, prefix: str = "") -> dict[str, float]:
        """The config fields these flags set, e.g. ``{"user_hidden_dropout": 0.1, ...}``."""
        return {f"{prefix}{f}": getattr(self, f) for f in ("embedding_dropout", "hidden_dropout", "attention_dropout")}


def build_recommender(
    tokenizer: RQVAEModel,
    embeddings: torch.Tensor,
    model_name_or_path: str | None = None,
    backbone_config: dict | None = None,
    **config_kwargs,
) -> LlamaRecForCodeGeneration:
    """A recommender whose codebooks, code table and dims match ``tokenizer`` / ``embeddings``."""
    tc = tokenizer.config
    shape = dict(
        num_items=embeddings.shape[0],
        num_levels=tc.num_levels,
        codebook_size=tc.codebook_size,
        suffix_size=tc.suffix_size,
        codebook_dim=tc.codebook_dim,
        semantic_dim=embeddings.shape[1],
    )
    if model_name_or_path:
        model = LlamaRecForCodeGeneration.from_backbone(model_name_or_path, **shape, **config_kwargs)
    else:
        model = LlamaRecForCodeGeneration(LlamaRecConfig(backbone_config=backbone_config, **shape, **config_kwargs))
    model.copy_codebooks_from(tokenizer)
    model.set_item_codes(tokenizer.get_codes(embeddings))
    return model


def small_backbone(base: dict, hidden_size: int, num_layers: int, num_heads: int) -> dict:
    """A random-init backbone config dict: ``base`` at the given width (MLP 4x), depth and heads (no GQA)."""
    return dict(
        base,
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
    )


def test_and_save(trainer, model, dsd: GenRecDatasetDict, dataset_dir: str | None, work_dir: str, metric_note: str = "") -> dict:
    """The last stage of every recipe: test metrics (printed, ``test_metrics.json``, the model card)
    and the final checkpoint in ``work_dir/final``. Returns the metrics."""
    # Early stopping watches eval_* metrics; on the test split it would only warn that it found none.
    trainer.remove_callback(EarlyStoppingCallback)
    # Both ranking protocols from the same model: the run's own (unprefixed keys, as before) and the
    # other, as "exclude_seen/..." and "all_items/..." keys.
    chosen, asked = trainer.excludes_history, trainer.args.exclude_history
    report = {}
    try:
        for protocol, exclude in (("exclude_seen", True), ("all_items", False)):
            trainer.args.exclude_history = exclude
            test = trainer.evaluate(dsd["test"], metric_key_prefix="test")
            metrics = {k.removeprefix("test_"): v for k, v in test.items() if "@" in k}
            report.update({f"{protocol}/{k}": v for k, v in metrics.items()})
            if exclude == chosen:
                report.update(metrics)
    finally:
        trainer.args.exclude_history = asked
    dataset = os.path.basename(os.path.normpath(dataset_dir)) if dataset_dir else "generated (embedded default)"
    model.record_evaluation(report, dataset=dataset, split="test", protocol="exclude_seen" if chosen else "all_items")
    final_dir = os.path.join(work_dir, "final")
    trainer.save_model(final_dir)  # weights, item_map.json, the model card (ETEGRec: item_tokenizer/ too)
    if trainer.is_world_process_zero():
        write_json(os.path.join(work_dir, "test_metrics.json"), report)
        seen = "seen items excluded" if chosen else "all items ranked"
        print(f"\nTest metrics (leave-one-out, full ranking, {seen}{metric_note}; the other protocol under its prefix):")
        for name, value in report.items():
            print(f"  {name:>22}: {value:.4f}")
        print(f"Checkpoint saved to {final_dir}  (AutoModel.from_pretrained('{final_dir}') after `import hf_genrec`)")
    return report


STAGE_DONE_FILE = "stage_done.json"
STAGE_FINAL_DIR = "stage_final"


def run_stage(trainer: RecommenderTrainer, resume_from_checkpoint: str | None = None) -> TrainerState:
    """Train one stage so that rerunning the same command after a kill loses nothing.

    A finished stage (``<output_dir>/stage_done.json``) is not trained again: the weights it ended
    with (``<output_dir>/stage_final``) are loaded. An unfinished one resumes from
    ``resume_from_checkpoint`` or else from the last checkpoint in its ``output_dir`` (the Trainer
    restores weights, optimizer, schedules, RNG and the data order). Returns the stage's state
    (best metric and checkpoint, e.g. for ETEGRec's ``keep_better_stage``). Every recipe's training
    stages run through this.
    """
    out = trainer.args.output_dir
    done, final = os.path.join(out, STAGE_DONE_FILE), os.path.join(out, STAGE_FINAL_DIR)
    if os.path.exists(done):
        logger.info("stage in %s already finished: loading %s", out, final)
        trainer.load_saved_model(final)
        with open(done) as f:
            return TrainerState(**json.load(f))
    last = resume_from_checkpoint or last_complete_checkpoint(out)
    if last:
        logger.info("resuming the stage in %s from %s", out, last)
    trainer.train(resume_from_checkpoint=last)
    trainer.save_model(final)  # what the stage ends with (its best checkpoint, when it loads that at the end)
    if trainer.is_world_process_zero():
        state = trainer.state
        write_json(
            done,
            {
                "best_metric": state.best_metric,
                "best_model_checkpoint": state.best_model_checkpoint,
                "global_step": state.global_step,
            },
        )
    trainer.accelerator.wait_for_everyone()
    return trainer.state
