"""Padding of integer rows (item ids, codes) into batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def left_pad(rows: Sequence[Sequence[int]], pad_value: int, length: int | None = None) -> torch.Tensor:
    """Stack integer rows into ``[B, length]``, right-aligned (left padding); ``length`` defaults to the longest row."""
    length = length if length is not None else max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), length), pad_value, dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            out[i, length - len(r) :] = torch.as_tensor(list(r)[-length:], dtype=torch.long)
    return out
