"""A small generated interaction dataset with learnable structure (the embedded default).

Items are grouped into clusters; each item has a few preferred successors, mostly inside its
cluster. A user starts at a random item and walks this Markov chain, so the next item is
predictable from the last few and a recommender has something real to learn. No download.
"""

from __future__ import annotations

import numpy as np

from ..utils.errors import InputError


def make_synthetic_sequences(
    num_users: int = 1000,
    num_items: int = 300,
    num_clusters: int = 12,
    min_length: int = 5,
    max_length: int = 20,
    successors_per_item: int = 3,
    follow_prob: float = 0.85,
    seed: int = 0,
) -> dict[str, list[int]]:
    """Return ``{user: [item, ...]}`` with items ``0..num_items-1`` in time order.

    With probability ``follow_prob`` the next item is one of the current item's preferred
    successors (fixed per item), otherwise a uniformly random item.
    """
    if num_items < successors_per_item + 1:
        raise InputError("num_items must exceed successors_per_item")
    rng = np.random.default_rng(seed)
    cluster_of = rng.integers(0, num_clusters, size=num_items)
    members = [np.flatnonzero(cluster_of == c) for c in range(num_clusters)]
    successors = np.empty((num_items, successors_per_item), dtype=np.int64)
    for item in range(num_items):
        pool = members[cluster_of[item]]
        pool = pool[pool != item]
        if len(pool) < successors_per_item:
            pool = np.setdiff1d(np.arange(num_items), [item])
        successors[item] = rng.choice(pool, size=successors_per_item, replace=False)
    # Every item appears at least once as a start so the catalogue is fully covered.
    starts = np.concatenate([np.arange(num_items), rng.integers(0, num_items, size=max(0, num_users - num_items))])
    rng.shuffle(starts)
    sequences: dict[str, list[int]] = {}
    for u in range(num_users):
        length = int(rng.integers(min_length, max_length + 1))
        seq = [int(starts[u % len(starts)])]
        while len(seq) < length:
            if rng.random() < follow_prob:
                seq.append(int(successors[seq[-1], rng.integers(successors_per_item)]))
            else:
                seq.append(int(rng.integers(num_items)))
        sequences[f"u{u}"] = seq
    return sequences


_CATEGORIES = (
    "lipstick", "mascara", "shampoo", "moisturizer", "nail polish", "eyeliner",
    "sunscreen", "perfume", "face mask", "hair oil", "blush", "cleanser",
)
_BRANDS = ("Aurora", "Belle", "Cove", "Dune", "Ember", "Fable", "Glow", "Haven", "Iris", "Juno")


def make_synthetic_item_texts(
    num_items: int = 300, num_clusters: int = 12, seed: int = 0, empty_every: int = 50
) -> dict[int, str]:
    """Item text for :func:`make_synthetic_sequences` with the same ``num_items`` / ``num_clusters`` /
    ``seed``: items of one cluster share a category word (the cluster assignment is the generator's
    first draw, repeated here), so text carries the structure a text-based model can use.

    Every ``empty_every``-th item (ids 7, 7 + empty_every, ...) gets an empty text, as real catalogues
    have (Beauty: 7 empty titles); a model must still embed them.
    """
    cluster_of = np.random.default_rng(seed).integers(0, num_clusters, size=num_items)
    rng = np.random.default_rng(seed + 1)
    texts = {}
    for item in range(num_items):
        if empty_every and item % empty_every == 7:
            texts[item] = ""
            continue
        category = _CATEGORIES[cluster_of[item] % len(_CATEGORIES)]
        brand = _BRANDS[int(rng.integers(len(_BRANDS)))]
        texts[item] = f"title: {brand} {category} no. {item}"
    return texts
