"""Padding of rows (item ids, codes, timestamps) into batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def left_pad(
    rows: Sequence[Sequence[int]], pad_value: int | float, length: int | None = None, dtype: torch.dtype = torch.long
) -> torch.Tensor:
    """Stack rows into ``[B, length]`` of ``dtype``, right-aligned (left padding); ``length`` defaults to the longest row."""
    length = length if length is not None else max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), length), pad_value, dtype=dtype)
    for i, r in enumerate(rows):
        if len(r):
            out[i, length - len(r) :] = torch.as_tensor(list(r)[-length:], dtype=dtype)
    return out
