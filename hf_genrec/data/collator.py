"""The collator every model family trains and evaluates on: item ids in, item ids out."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..utils import EmptyHistoryError, left_pad
from ..utils.errors import InputError


@dataclass
class DataCollatorForRecommendation:
    """Batches rows ``{"history": [item ids, oldest first], "target": item id}``.

    Output:
        history ``[B, H]``: the last ``max_history`` items of each history, left padded with 0
        (``H`` = the longest row of the batch). targets ``[B]``: the next item. When rows carry
        ``history_timestamps``: ``history_timestamps`` ``[B, H]`` (seconds, float64, left padded with 0).
        With ``seen_items=True``: ``seen_items`` ``[B, E]``, every item of each row's history as the
        row stores it (not cut to ``max_history``; left padded with 0), for evaluation that excludes
        seen items. Validation / test rows of a prepared dataset carry the whole history, so every
        seen item is excluded while the model reads its last ``max_history``.

    Item ids stay item ids: a family looks up what it needs (codes, embeddings) in its own
    tables, so re-assigning an ETEGRec model's codes never leaves a stale copy here. Unknown ids
    are rejected by the model, which knows its catalogue. An empty history raises
    :class:`~hf_genrec.utils.EmptyHistoryError` (silently padding it would train on an
    all-padding row).
    """

    max_history: int = 50
    seen_items: bool = False

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        if self.max_history < 1:
            raise InputError(f"max_history must be >= 1, got {self.max_history}")
        histories = []
        for r in rows:
            hist = list(r["history"])[-self.max_history :]
            if not hist:
                raise EmptyHistoryError("a row has an empty history; drop it or give it at least one item")
            histories.append(hist)
        batch = {
            "history": left_pad(histories, 0),
            "targets": torch.tensor([int(r["target"]) for r in rows], dtype=torch.long),
        }
        if rows[0].get("history_timestamps") is not None:
            times = [list(r["history_timestamps"])[-self.max_history :] for r in rows]
            batch["history_timestamps"] = left_pad(times, 0.0, dtype=torch.float64)
        if self.seen_items:
            batch["seen_items"] = left_pad([list(r["history"]) for r in rows], 0)
        return batch
