"""Collator that turns (history item ids, target item id) rows into code sequences for the recommender."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .collate import left_pad


@dataclass
class DataCollatorForCodeSeq:
    """Builds left-padded code sequences from rows ``{"history": [item ids], "target": item id}``.

    The item code table ``item_codes`` ``[N + 1, L]`` (row = item id) is read at call time, so
    when the training callback re-assigns codes in place the next batch uses the new codes.

    Output (``T = L * len(history) + L - 1`` for the longest row, left padded):
        input_ids ``[B, T]``: history codes then the target's first ``L - 1`` codes (teacher
        forcing); padding -1. attention_mask ``[B, T]``. seq_end_positions ``[B]``: index of the
        last history token (``T - L``). target_positions ``[B, L]``: ``seq_end .. seq_end + L - 1``.
        labels ``[B, L]``: target codes. targets ``[B]``: target item ids.
    ``history_length`` = ``T - (L - 1)``: slicing ``input_ids[:, :history_length]`` gives the
    left-padded history alone, the input of ``generate()``.

    An empty history raises ``ValueError`` (there is nothing to condition on, and silently
    padding it would train on an all-padding row).
    """

    item_codes: torch.Tensor
    max_history: int = 50

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        codes = self.item_codes
        length = codes.shape[1]
        num_items = codes.shape[0] - 1
        histories, target_ids = [], []
        for r in rows:
            hist = list(r["history"])[-self.max_history :]
            if not hist:
                raise ValueError("a row has an empty history; drop it or give it at least one item")
            target = int(r["target"])
            ids = hist + [target]
            if min(ids) < 1 or max(ids) > num_items:
                bad = next(i for i in ids if not 1 <= i <= num_items)
                raise ValueError(f"unknown item id {bad} (the code table has ids 1..{num_items})")
            histories.append(hist)
            target_ids.append(target)
        targets = torch.tensor(target_ids, dtype=torch.long)
        labels = codes[targets]
        seqs = [
            torch.cat([codes[torch.tensor(h)].flatten(), codes[t, : length - 1]]).tolist() for h, t in zip(histories, target_ids)
        ]
        input_ids = left_pad(seqs, -1)
        total = input_ids.shape[1]
        seq_end = total - length
        bsz = len(rows)
        return {
            "input_ids": input_ids,
            "attention_mask": (input_ids >= 0).long(),
            "seq_end_positions": torch.full((bsz,), seq_end, dtype=torch.long),
            "target_positions": (seq_end + torch.arange(length)).expand(bsz, -1).clone(),
            "labels": labels.clone(),
            "targets": targets,
        }
