"""Strict weight loading for checkpoints written by ``save_pretrained``."""

from __future__ import annotations

import glob
import os

from safetensors.torch import load_file
from torch import nn


def load_weights_strict(module: nn.Module, folder: str) -> None:
    """Load every ``*.safetensors`` file of ``folder`` into ``module``, failing on any missing or
    unexpected key (ETEGRec's official code loads with ``strict=False`` and silently loads nothing
    when keys differ; we never do that)."""
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise FileNotFoundError(f"no *.safetensors weights in {folder}")
    state = {}
    for f in files:
        state.update(load_file(f))
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(
            f"checkpoint {folder} does not match the model: missing {result.missing_keys[:5]}"
            f"{'...' if len(result.missing_keys) > 5 else ''}, unexpected {result.unexpected_keys[:5]}"
        )
