"""Collision handling: make every item's code id unique with a suffix code."""

from __future__ import annotations

import torch

from ...utils.errors import InputError


class CodebookCollisionError(InputError):
    """More items share one code prefix than the suffix range can number."""


def assign_suffix(prefix_codes: torch.Tensor, suffix_size: int) -> torch.Tensor:
    """Append a suffix code so that every row is unique.

    Items sharing the same prefix are numbered 0, 1, 2, ... in row order; a unique prefix
    gets suffix 0.

    Args:
        prefix_codes: ``[N, L]`` integer codes.
        suffix_size: number of suffix codes available.
    Returns:
        ``[N, L + 1]`` codes.
    Raises:
        CodebookCollisionError: if some prefix is shared by more than ``suffix_size`` items.
    """
    if prefix_codes.dim() != 2:
        raise InputError(f"prefix_codes must be [N, L], got {tuple(prefix_codes.shape)}")
    n = prefix_codes.shape[0]
    if n == 0:
        return prefix_codes.new_zeros((0, prefix_codes.shape[1] + 1))
    _, inverse, counts = torch.unique(prefix_codes, dim=0, return_inverse=True, return_counts=True)
    worst = int(counts.max())
    if worst > suffix_size:
        group = int(counts.argmax())
        example = prefix_codes[inverse == group][0].tolist()
        raise CodebookCollisionError(
            f"{worst} items share the code prefix {example}, but the suffix range holds only {suffix_size}; "
            "train the RQ-VAE longer, use larger codebooks, or raise suffix_size"
        )
    order = torch.argsort(inverse, stable=True)
    group_start = torch.cumsum(counts, 0) - counts
    suffix = torch.empty(n, dtype=prefix_codes.dtype, device=prefix_codes.device)
    suffix[order] = torch.arange(n, device=prefix_codes.device) - group_start[inverse[order]]
    return torch.cat([prefix_codes, suffix.unsqueeze(1)], dim=1)


def collision_rate(prefix_codes: torch.Tensor) -> float:
    """Share of items whose prefix is not their own: ``1 - #distinct prefixes / N``."""
    if prefix_codes.shape[0] == 0:
        return 0.0
    return 1.0 - torch.unique(prefix_codes, dim=0).shape[0] / prefix_codes.shape[0]
