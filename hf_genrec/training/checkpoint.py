"""Strict weight loading for checkpoints written by ``save_pretrained``."""

from __future__ import annotations

import glob
import os
import re

import torch
from safetensors.torch import load_file

from ..utils.errors import CheckpointError, MissingFileError


def read_weights(folder: str) -> dict[str, torch.Tensor]:
    """Every tensor of ``folder``'s ``*.safetensors`` files."""
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise MissingFileError(f"no *.safetensors weights in {folder}")
    state = {}
    for f in files:
        state.update(load_file(f))
    return state


def check_keys(folder: str, loaded: set[str], expected: set[str], may_be_missing: list[str] | None = None) -> None:
    """Fail on any key the checkpoint lacks (other than ``may_be_missing`` regexes) or has in excess.

    ETEGRec's official code loads with ``strict=False`` and silently loads nothing when keys
    differ; we never do that.
    """
    patterns = [re.compile(p) for p in may_be_missing or []]
    missing = sorted(k for k in expected - loaded if not any(p.search(k) for p in patterns))
    unexpected = sorted(loaded - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {folder} does not match the model: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
        )

