"""``DataCollatorForCodeSeq``: item-id rows in, the left-padded code sequences ``generate()`` reads out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ...utils import EmptyHistoryError, left_pad
from ...utils.errors import InputError

if TYPE_CHECKING:
    from .modeling_llamarec import LlamaRecForCodeGeneration


@dataclass
class DataCollatorForCodeSeq:
    """Batches rows ``{"history": [item ids, oldest first]}`` (optionally ``"target"``) into the code
    layout of an ETEGRec model: ``input_ids`` ``[B, 4 * H]`` codes left padded with -1 and
    ``attention_mask`` ``[B, 4 * H]``, ready for ``model.generate(**batch)``; with targets also
    ``labels`` ``[B, 4]`` (the targets' codes) and ``targets`` ``[B]``.

    The codes are looked up in the model's one code table (``model.item_codes``) at every call, so
    a re-coded model (alternating training re-assigns codes) never meets a stale copy. Histories
    keep their last ``max_history`` items (default: the model's ``config.max_history``), as the
    model does everywhere else. Training goes through
    :class:`~hf_genrec.data.DataCollatorForRecommendation` (item ids; the model builds the same
    layout itself); this collator is for calling ``generate()`` directly.
    """

    model: LlamaRecForCodeGeneration
    max_history: int | None = None

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        limit = self.max_history or self.model.config.max_history
        histories = [list(r["history"])[-limit:] for r in rows]
        if not rows or any(not h for h in histories):
            raise EmptyHistoryError("a row has an empty history; generate() needs at least one item")
        history = left_pad(histories, 0).to(self.model.item_codes.device)
        inputs = self.model.code_inputs(history)
        batch = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
        if any("target" in r for r in rows):
            if not all("target" in r for r in rows):
                raise InputError("some rows have a target and some do not; give all or none")
            targets = torch.tensor([int(r["target"]) for r in rows], device=history.device)
            batch.update(labels=self.model.codes_for_items(targets), targets=targets)
        return batch
