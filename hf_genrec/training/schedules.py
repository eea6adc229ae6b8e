"""Per-side learning-rate schedules for ETEGRec's alternating training.

The official ETEGRec keeps two optimizers and two schedulers, each stepping only in its own phase,
so the recommender's warm-up and decay run over recommender steps only and the tokenizer's over
tokenizer steps only. The HF ``Trainer`` drives one optimizer and one scheduler; this scheduler
gives each parameter group (tagged ``side``) the schedule of its side, advanced only while that
side trains. (With one AdamW, a side without gradients is skipped entirely, so its moments and
weight decay also stand still outside its phase, as with two optimizers.)
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ..utils.errors import InputError
from .arguments import RECOMMENDER_PHASE, TOKENIZER_PHASE

SUPPORTED_SCHEDULES = ("linear", "cosine", "constant", "constant_with_warmup")


def schedule_factor(name: str, step: int, warmup: int, total: int) -> float:
    """The lr multiplier after ``step`` steps of a schedule with ``warmup`` linear warm-up steps over
    ``total`` steps (the formulas of ``transformers.get_scheduler``)."""
    if step < warmup:
        return step / max(1, warmup)
    if name in ("constant", "constant_with_warmup"):
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if name == "linear":
        return max(0.0, 1.0 - progress)
    if name == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    raise InputError(f"lr_scheduler_type {name!r} is not supported by ETEGRec's per-side schedules: {SUPPORTED_SCHEDULES}")


class PhaseLRScheduler(LRScheduler):
    """One schedule per side (``param_group["side"]``: ``"recommender"`` / ``"tokenizer"``); ``step()``
    advances only the side returned by ``current_phase()``.

    Args:
        optimizer: its groups carry ``side``.
        name: schedule name (see :data:`SUPPORTED_SCHEDULES`).
        warmup / total: steps per side.
        current_phase: returns the phase now training (read at every ``step()``).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        name: str,
        warmup: dict[str, int],
        total: dict[str, int],
        current_phase: Callable[[], str],
    ):
        if name not in SUPPORTED_SCHEDULES:
            schedule_factor(name, 1, 0, 1)  # raises the explanatory error
        for group in optimizer.param_groups:
            if group.get("side") not in (RECOMMENDER_PHASE, TOKENIZER_PHASE):
                raise InputError("every parameter group needs side='recommender' or side='tokenizer'")
        self.name = name
        self.warmup = dict(warmup)
        self.total = dict(total)
        self.current_phase = current_phase
        self.side_steps = {RECOMMENDER_PHASE: 0, TOKENIZER_PHASE: 0}
        self._counting = False  # LRScheduler.__init__ calls step() once to set the initial lr
        super().__init__(optimizer)
        self._counting = True

    def step(self, epoch=None):
        if self._counting:
            self.side_steps[self.current_phase()] += 1
        super().step()

    def get_lr(self) -> list[float]:
        return [
            group["initial_lr"]
            * schedule_factor(self.name, self.side_steps[group["side"]], self.warmup[group["side"]], self.total[group["side"]])
            for group in self.optimizer.param_groups
        ]

    def state_dict(self) -> dict:
        # The phase getter is a closure over the trainer: not state, and not picklable.
        return {k: v for k, v in super().state_dict().items() if k != "current_phase"}
