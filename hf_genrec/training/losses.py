"""ETEGRec's alignment losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def first_occurrence(ids: torch.Tensor) -> torch.Tensor:
    """Indices of the first row of every distinct id in ``ids`` ``[B]`` (so a target repeated in a
    batch is neither over-weighted nor its own in-batch negative)."""
    _, inverse = torch.unique(ids, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), ids.numel(), dtype=torch.long, device=ids.device)
    first.scatter_reduce_(0, inverse, torch.arange(ids.numel(), device=ids.device), reduce="amin")
    return first


def sia_loss(seq_code_logits: torch.Tensor, target_code_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Sequence-Item Alignment: symmetric KL between per-level code distributions.

    Args:
        seq_code_logits: ``[B, L, K]`` quantiser logits of the sequence latent.
        target_code_logits: ``[B, L, K]`` quantiser logits of the target item's latent.
    Returns: scalar, mean over rows and levels of KL(p||q) + KL(q||p).
    """
    p = F.log_softmax(seq_code_logits.float() / temperature, -1).flatten(0, 1)
    q = F.log_softmax(target_code_logits.float() / temperature, -1).flatten(0, 1)
    kl_pq = F.kl_div(q, p, log_target=True, reduction="batchmean")
    kl_qp = F.kl_div(p, q, log_target=True, reduction="batchmean")
    return kl_pq + kl_qp


def psa_loss(dec_latents: torch.Tensor, target_reconstruction: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Preference-Semantic Alignment: InfoNCE in both directions (summed, as the official code),
    cosine similarity, in-batch negatives.

    Args:
        dec_latents: ``[B, D]`` decoder-side sequence representation.
        target_reconstruction: ``[B, D]`` RQ-VAE reconstruction of each target's semantic embedding.
            Rows must belong to distinct targets (see :func:`first_occurrence`).
    """
    a = F.normalize(dec_latents.float(), dim=-1)
    b = F.normalize(target_reconstruction.float(), dim=-1)
    logits = a @ b.t() / temperature
    labels = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)
