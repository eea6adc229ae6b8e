"""Item semantic embeddings (the RQ-VAE input): collaborative (SASRec), text, or a user .npy;
several sources are concatenated along the feature axis ("DualSCID")."""

from __future__ import annotations

import logging
import os

import numpy as np

from ..data.splits import GenRecDatasetDict
from ..utils.errors import InputError, MissingFileError
from .collaborative import SASREC_RECIPES, SASRecCollator, collaborative_item_embeddings, sasrec_recipe, train_sasrec
from .text import count_missing_text, text_item_embeddings

logger = logging.getLogger(__name__)


def load_item_embeddings(path: str, num_items: int | None = None) -> np.ndarray:
    """Load a user-provided ``[N, d]`` ``.npy`` and check it is finite, 2-D and (with ``num_items``)
    matches the ``N`` items of the data."""
    if not os.path.isfile(path):
        raise MissingFileError(f"item embeddings {path}: no such file")
    try:
        emb = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:  # not an .npy, or a pickled object array
        raise InputError(f"{path}: not a numeric .npy array ({err})") from None
    if emb.ndim != 2:
        raise InputError(f"{path}: item embeddings must be 2-D [num_items, dim], got shape {emb.shape}")
    if num_items is not None and emb.shape[0] != num_items:
        raise InputError(
            f"{path}: has {emb.shape[0]} rows but the dataset has {num_items} items "
            "(row i must be the item with dense id i + 1, see item_map.json)"
        )
    if not np.isfinite(emb).all():
        raise InputError(f"{path}: contains NaN or inf")
    return emb.astype(np.float32)


def build_item_embeddings(
    dsd: GenRecDatasetDict,
    sources: list[str],
    output_dir: str,
    item_text: dict | None = None,
    text_model: str | None = None,
    sasrec_kwargs: dict | None = None,
) -> tuple[np.ndarray, dict]:
    """Build and concatenate item embeddings from ``sources``.

    Each source is ``"collab"`` (train SASRec, export its item table), ``"text"`` (needs
    ``item_text``) or a path to a ``.npy``. Returns ``[N, sum of dims]`` float32 and a report
    (the SASRec metrics when it was trained, the dims of each part).
    """
    if not sources:
        raise InputError("no embedding source given (use 'collab', 'text' or a .npy path)")
    parts, report = [], {"dims": {}}
    for source in sources:
        if source == "collab":
            model, metrics = train_sasrec(dsd, output_dir=f"{output_dir}/sasrec", **(sasrec_kwargs or {}))
            emb = collaborative_item_embeddings(model)
            report["sasrec"] = metrics
        elif source == "text":
            if not item_text:
                raise InputError("'text' embeddings need item text, and this dataset has none")
            emb = text_item_embeddings(item_text, dsd.item_map, text_model)
            report["text_items_without_text"] = count_missing_text(item_text, dsd.item_map)
        else:
            emb = load_item_embeddings(source, dsd.num_items)
        report["dims"][source] = int(emb.shape[1])
        parts.append(emb)
    return np.concatenate(parts, axis=1), report


__all__ = [
    "SASREC_RECIPES",
    "SASRecCollator",
    "build_item_embeddings",
    "collaborative_item_embeddings",
    "load_item_embeddings",
    "sasrec_recipe",
    "text_item_embeddings",
    "train_sasrec",
]
