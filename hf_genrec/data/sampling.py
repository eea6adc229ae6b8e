"""Group-by-length sampling from a view's per-row lengths, without a Python list per row."""

from __future__ import annotations

import numpy as np
import torch


def length_grouped_indices(lengths: np.ndarray, batch_size: int, generator: torch.Generator | None = None) -> np.ndarray:
    """A random order in which rows of similar length sit in the same batch: a random permutation cut
    into mega-batches of up to 50 batches, each sorted by length (longest first, ties in permutation
    order), with the longest row of all moved to the very first batch (an out-of-memory error then
    shows at once). The same permutation and the same rule as ``transformers``' ``LengthGroupedSampler``,
    so a run keeps its batches, on ``int64`` arrays instead of Python lists. ``[len(lengths)]``."""
    n = len(lengths)
    perm = torch.randperm(n, generator=generator).numpy()
    mega = max(1, min(n // (batch_size * 4), 50)) * batch_size
    out = np.empty(n, dtype=np.int64)
    first_of = []
    for start in range(0, n, mega):
        chunk = perm[start : start + mega]
        order = chunk[np.argsort(-lengths[chunk], kind="stable")]
        out[start : start + len(order)] = order
        first_of.append(start)
    maxima = np.array([lengths[out[s]] for s in first_of])
    best = first_of[int(np.argmax(maxima))]
    out[0], out[best] = out[best], out[0]
    return out


class LengthGroupedRowSampler(torch.utils.data.Sampler):
    """A sampler over a view with a ``lengths`` array (:class:`~hf_genrec.data.LeaveOneOutRows`):
    :func:`length_grouped_indices` anew each epoch from the global torch generator (so a resumed run,
    whose generator state the Trainer restores, draws the same order)."""

    def __init__(self, lengths: np.ndarray, batch_size: int, generator: torch.Generator | None = None):
        self.lengths, self.batch_size, self.generator = np.asarray(lengths, dtype=np.int64), batch_size, generator

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        order = length_grouped_indices(self.lengths, self.batch_size, self.generator)
        for start in range(0, len(order), 65536):  # Python ints a chunk at a time, not a list of every row
            yield from order[start : start + 65536].tolist()
