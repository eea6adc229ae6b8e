"""RQ-VAE pre-training on a fixed item-embedding table with the HF Trainer.

The kept checkpoint is the one with the lowest collision rate, as in ETEGRec's official code,
not the lowest loss: the codes, not the reconstruction, are what the recommender consumes.
"""

from __future__ import annotations

import json
import logging
import os

import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from ..distributed import without_model_sharding
from ..models.rqvae import RQVAEConfig, RQVAEModel
from ..utils.atomic import staged_folder, write_json
from ..utils.checkpoints import DurableCheckpointCallback, last_complete_checkpoint
from ..utils.errors import InputError

logger = logging.getLogger(__name__)

#: written when pre-training finished: a rerun returns the kept model instead of training again
DONE_FILE = "pretraining_done.json"
#: pre-training epochs of every entry point (the recipes and ``hf-genrec pretrain-rqvae``)
DEFAULT_RQVAE_EPOCHS = 500


class EmbeddingRows(Dataset):
    """Rows ``{"embeddings": [semantic_dim]}`` of an item-embedding table ``[N, semantic_dim]``."""

    def __init__(self, embeddings: torch.Tensor):
        self.embeddings = embeddings

    def __len__(self) -> int:
        return self.embeddings.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"embeddings": self.embeddings[i]}


class KeepLowestCollisionCallback(TrainerCallback):
    """Every ``every`` epochs, measures the collision rate over all items and saves the model
    to ``save_dir`` when it is the lowest so far (ties: the later, better-trained one)."""

    def __init__(self, embeddings: torch.Tensor, save_dir: str, every: int = 10):
        self.embeddings = embeddings
        self.save_dir = save_dir
        self.every = every
        self.best: dict | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        # A resumed run continues against the best checkpoint it had already kept.
        stats = os.path.join(self.save_dir, "code_stats.json")
        if state.global_step > 0 and self.best is None and os.path.exists(stats):
            with open(stats) as f:
                self.best = json.load(f)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        epoch = round(state.epoch or 0)
        if epoch % self.every and epoch < args.num_train_epochs:
            return
        was_training = model.training
        model.eval()
        stats = model.code_statistics(self.embeddings)
        model.train(was_training)
        stats["epoch"] = epoch
        control.should_save = True  # resume from here: after this evaluation and its kept checkpoint
        state.log_history.append({f"rqvae/{k}": v for k, v in stats.items()} | {"step": state.global_step})
        if self.best is None or stats["collision_rate"] <= self.best["collision_rate"]:
            self.best = stats
            if state.is_world_process_zero:
                with staged_folder(self.save_dir) as stage:  # the weights and their statistics, together
                    model.save_pretrained(stage)
                    write_json(os.path.join(stage, "code_stats.json"), stats)
        logger.info(
            "RQ-VAE epoch %d: collision rate %.4f (best %.4f)", epoch, stats["collision_rate"], self.best["collision_rate"]
        )


def pretrain_rqvae(
    embeddings: torch.Tensor,
    output_dir: str,
    config: RQVAEConfig | None = None,
    num_train_epochs: int = DEFAULT_RQVAE_EPOCHS,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    eval_every: int = 10,
    seed: int = 42,
    **training_kwargs,
) -> tuple[RQVAEModel, dict]:
    """Train an RQ-VAE on ``embeddings`` ``[N, semantic_dim]`` (k-means initialised codebooks).

    Saves the lowest-collision checkpoint to ``output_dir`` (with ``code_stats.json``) and
    returns it reloaded, with its statistics. Resumable: a run cut short continues from its last
    trainer checkpoint (one at every collision evaluation, in ``output_dir/trainer``), and a
    finished one (``output_dir/pretraining_done.json``) is returned as it is.
    """
    done = os.path.join(output_dir, DONE_FILE)
    if os.path.exists(done):
        logger.info("RQ-VAE pre-training already finished in %s", output_dir)
        with open(done) as f:
            return RQVAEModel.from_pretrained(output_dir), json.load(f)
    embeddings = torch.as_tensor(embeddings, dtype=torch.float32)
    config = config or RQVAEConfig(semantic_dim=embeddings.shape[1])
    if config.semantic_dim != embeddings.shape[1]:
        raise InputError(f"config.semantic_dim={config.semantic_dim} but the embeddings have dimension {embeddings.shape[1]}")
    torch.manual_seed(seed)
    model = RQVAEModel(config)
    model.kmeans_init(embeddings, seed=seed)
    keep = KeepLowestCollisionCallback(embeddings, output_dir, every=eval_every)
    # A small model: plain data parallel even inside an FSDP / DeepSpeed launch.
    with without_model_sharding():
        args = TrainingArguments(
            output_dir=os.path.join(output_dir, "trainer"),
            num_train_epochs=num_train_epochs,
            per_device_train_batch_size=batch_size,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            lr_scheduler_type="constant",
            # A checkpoint right after every collision evaluation (the callback asks for it), so a
            # killed run resumes where it was without skipping an evaluation.
            save_strategy="no",
            save_total_limit=1,
            report_to=[],
            seed=seed,
            logging_steps=50,
            disable_tqdm=training_kwargs.pop("disable_tqdm", True),
            **training_kwargs,
        )
        trainer = Trainer(
            model=model, args=args, train_dataset=EmbeddingRows(embeddings), callbacks=[keep, DurableCheckpointCallback()]
        )
        last = last_complete_checkpoint(args.output_dir)
        if last:
            logger.info("RQ-VAE pre-training: resuming from %s", last)
        trainer.train(resume_from_checkpoint=last)
        # Only the main process writes the best checkpoint; no rank may read it before that is done.
        trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        write_json(done, keep.best)
    trainer.accelerator.wait_for_everyone()
    best = RQVAEModel.from_pretrained(output_dir)
    return best, keep.best
