"""Codes for items added to a trained model: the quantiser's prefix plus the first free suffix."""

from __future__ import annotations

import torch

from ...utils.errors import InputError


def codes_for_new_items(existing: torch.Tensor, new: torch.Tensor, suffix_size: int) -> torch.Tensor:
    """Unique code sequences for new items, next to the ones the model already has.

    Args:
        existing: ``[N, L]`` the codes of the known items (prefix, then suffix; unique rows).
        new: ``[K, L - 1]`` the new items' quantiser codes (a suffix is chosen for each) or ``[K, L]``
            full codes (kept as given, and checked).
        suffix_size: the suffix range.
    Returns: ``[K, L]`` long. Each new item takes the smallest suffix that no item, old or new,
    with the same prefix uses yet, so the known items keep their codes.
    Raises ``ValueError`` when a prefix already holds ``suffix_size`` items, or when full codes
    repeat a known or another new item's codes.
    """
    length = existing.shape[1]
    new = new.long().cpu()
    existing = existing.long().cpu()
    if new.dim() != 2 or new.shape[1] not in (length - 1, length):
        raise InputError(f"new item codes must be [K, {length - 1}] (prefixes) or [K, {length}], got {tuple(new.shape)}")
    if new.shape[1] == length:
        taken = {tuple(row) for row in existing.tolist()}
        for i, row in enumerate(new.tolist()):
            if tuple(row) in taken:
                raise InputError(f"new item {i} has the codes {row}, which another item already has; codes must be unique")
            taken.add(tuple(row))
        return new
    used: dict[tuple, set[int]] = {}
    for row in existing.tolist():
        used.setdefault(tuple(row[:-1]), set()).add(row[-1])
    suffixes = []
    for prefix in map(tuple, new.tolist()):
        taken = used.setdefault(prefix, set())
        free = next((s for s in range(suffix_size) if s not in taken), None)
        if free is None:
            raise InputError(
                f"the code prefix {list(prefix)} already holds {suffix_size} items, the whole suffix range: "
                "a model with a larger suffix_size is needed for this item"
            )
        taken.add(free)
        suffixes.append(free)
    return torch.cat([new, torch.tensor(suffixes, dtype=torch.long).unsqueeze(1)], 1)
