"""One training stage that a rerun after a kill resumes, or reuses when it had finished: every
recipe's training stages and the SASRec stage run through :func:`run_stage`."""

from __future__ import annotations

import json
import logging
import os

from transformers import TrainerState

from ..utils.atomic import write_json
from ..utils.checkpoints import last_complete_checkpoint
from .recommender_trainer import RecommenderTrainer

logger = logging.getLogger(__name__)

STAGE_DONE_FILE = "stage_done.json"
STAGE_FINAL_DIR = "stage_final"


def run_stage(trainer: RecommenderTrainer, resume_from_checkpoint: str | None = None) -> TrainerState:
    """Train one stage so that rerunning the same command after a kill loses nothing.

    A finished stage (``<output_dir>/stage_done.json``) is not trained again: the weights it ended
    with (``<output_dir>/stage_final``) are loaded. An unfinished one resumes from
    ``resume_from_checkpoint`` or else from the last checkpoint in its ``output_dir`` (the Trainer
    restores weights, optimizer, schedules, RNG and the data order). Returns the stage's state
    (best metric and checkpoint, e.g. for ETEGRec's ``keep_better_stage``). Every recipe's training
    stages, and SASRec's, run through this.
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
