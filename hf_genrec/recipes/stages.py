"""Stages the recipes share: load data, get item embeddings, get a tokenizer, build the recommender around it."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os

import torch
from accelerate import PartialState
from transformers import EarlyStoppingCallback, set_seed

from ..data import (
    GenRecDatasetDict,
    dataset_file_in,
    leave_one_out,
    load_genrec_dataset,
    load_interactions,
    make_synthetic_sequences,
)
from ..data.table import DATASET_INFO_FILE
from ..embeddings import collaborative_item_embeddings, load_item_embeddings, train_sasrec
from ..models.llamarec import LlamaRecConfig, LlamaRecForCodeGeneration
from ..models.rqvae import RQVAEConfig, RQVAEModel
from ..training.rqvae_pretraining import pretrain_rqvae
from ..utils.atomic import save_npy, write_json
from ..utils.errors import InputError

logger = logging.getLogger(__name__)


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


def load_dataset(dataset_dir: str | None, max_history: int = 50, seed: int = 0) -> GenRecDatasetDict:
    """A prepared folder (``hf-genrec prepare`` output), an interaction file / folder, or — with
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


def get_item_tokenizer(
    embeddings: torch.Tensor, path: str | None, work_dir: str, config: RQVAEConfig, epochs: int, **kwargs
) -> RQVAEModel:
    """Load a pre-trained RQ-VAE from ``path`` or pre-train one on ``embeddings``."""
    if path:
        tok = RQVAEModel.from_pretrained(path)
        if tok.config.semantic_dim != embeddings.shape[1]:
            raise InputError(f"RQ-VAE at {path} expects {tok.config.semantic_dim}-d embeddings, got {embeddings.shape[1]}-d")
        return tok
    tok, stats = pretrain_rqvae(embeddings, os.path.join(work_dir, "rqvae"), config, num_train_epochs=epochs, **kwargs)
    logger.info("RQ-VAE pre-trained: %s", stats)
    return tok


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


def dataset_label(dataset_dir: str | None) -> str:
    """How the model card names the data a recipe trained on."""
    return os.path.basename(os.path.normpath(dataset_dir)) if dataset_dir else "generated (embedded default)"


def test_and_save(trainer, model, dsd: GenRecDatasetDict, dataset_dir: str | None, work_dir: str, metric_note: str = "") -> dict:
    """The last stage of every recipe: test metrics (printed, ``test_metrics.json``, the model card)
    and the final checkpoint in ``work_dir/final``. Returns the metrics."""
    # Early stopping watches eval_* metrics; on the test split it would only warn that it found none.
    trainer.remove_callback(EarlyStoppingCallback)
    chosen = trainer.excludes_history
    report = trainer.evaluate_protocols(dsd["test"])  # both protocols from the same model
    dataset = dataset_label(dataset_dir)
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


