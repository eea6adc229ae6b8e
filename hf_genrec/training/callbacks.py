"""Callbacks: the one that drives ETEGRec's alternating phases, and a wall-clock training budget."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from transformers import TrainerCallback

from ..utils.errors import InputError
from .arguments import TOKENIZER_PHASE

logger = logging.getLogger(__name__)


class AlternatingTrainingCallback(TrainerCallback):
    """Switches between tokenizer and recommender epochs.

    - ``on_train_begin``: finishes FSDP2 set-up once the Trainer has sharded the model.
    - ``on_epoch_begin``: picks the phase from the epoch index (so a resumed run continues in the
      right phase), freezes the other side and sets the loss weights.
    - ``on_epoch_end`` of a tokenizer epoch: unless ``codebook_sync="none"``, copies tokenizer ->
      recommender codebooks; then re-assigns every item's codes (with the collision suffix).
    - ``on_epoch_end`` of a recommender epoch with ``codebook_sync="both"`` (alternating only):
      copies recommender -> tokenizer codebooks and re-assigns the codes, so the tokenizer always
      reproduces the model's code table (a saved pair stays consistent).
    - Unless ``eval_after_tokenizer_epochs``, evaluation and checkpointing are skipped after tokenizer
      epochs (the official ETEGRec evaluates every ``cycle`` epochs, i.e. after recommender epochs).
    Every rank does the same deterministic work, so ranks stay identical under DDP.
    """

    def __init__(self, trainer):
        self.trainer = trainer  # callbacks never receive the trainer (only model, optimizer, ...), so keep it

    @staticmethod
    def epoch_index(state) -> int:
        # state.epoch is fractional mid-epoch (resume) and may carry float error at a boundary.
        return math.floor((state.epoch or 0.0) + 1e-6)

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer.finish_distributed_setup()

    def on_epoch_begin(self, args, state, control, **kwargs):
        epoch = self.epoch_index(state)
        self.trainer.set_phase(args.phase_of_epoch(epoch), epoch)

    def on_epoch_end(self, args, state, control, **kwargs):
        t = self.trainer
        if t.phase == TOKENIZER_PHASE:
            if args.codebook_sync != "none":
                t.copy_codebooks_to_recommender()
            self._reassign(t, "tokenizer")
            if not args.eval_after_tokenizer_epochs:
                # Runs after DefaultFlowCallback, so this overrides its per-epoch eval/save.
                control.should_evaluate = False
                control.should_save = False
        elif args.codebook_sync == "both" and args.alternating:
            t.copy_codebooks_to_tokenizer()
            self._reassign(t, "recommender")

    @staticmethod
    def _reassign(t, phase: str) -> None:
        stats = t.reassign_item_codes()
        logger.info(
            "epoch %d (%s): re-assigned item codes, collision rate %.4f, prefix changed for %.1f%% of items (%s)",
            t.epoch,
            phase,
            stats["collision_rate"],
            100 * stats["changed_prefix"],
            ", ".join(f"level {k.rsplit('_', 1)[1]} {100 * v:.1f}%" for k, v in stats.items() if k.startswith("changed_level_")),
        )
        t.log({f"codes/{k}": v for k, v in stats.items()})


class TimeBudgetCallback(TrainerCallback):
    """Stops training once ``max_minutes`` of wall-clock time have passed since ``on_train_begin``.

    HF's ``max_steps`` budgets steps, not time; on a lent GPU or a session-limited CPU the budget is
    time. The stop is requested at a step end, so the Trainer still runs its end-of-epoch evaluation
    and save (per the eval/save strategy) and ``load_best_model_at_end`` as usual.
    """

    def __init__(self, max_minutes: float, clock: Callable[[], float] = time.monotonic):
        if not max_minutes > 0:
            raise InputError(f"max_minutes must be > 0, got {max_minutes}")
        self.max_seconds = 60.0 * max_minutes
        self.clock = clock
        self.start: float | None = None
        self.stopped_at_step: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = self.clock()

    def on_step_end(self, args, state, control, **kwargs):
        if self.start is not None and self.clock() - self.start >= self.max_seconds:
            if self.stopped_at_step is None:
                logger.info("time budget of %.1f minutes reached at step %d: stopping", self.max_seconds / 60, state.global_step)
                self.stopped_at_step = state.global_step
            control.should_training_stop = True

