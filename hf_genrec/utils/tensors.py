"""Tensor helpers that models and training both need."""

from __future__ import annotations

import torch


def is_sharded(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is a ``DTensor`` (e.g. an FSDP2 shard outside its unit's forward)."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # a torch build without distributed support
        return False
    return isinstance(tensor, DTensor)
