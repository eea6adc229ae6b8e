"""RQ-VAE item tokenizer: MLP encoder, residual vector quantiser, mirrored MLP decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from ...utils.errors import InputError
from ...utils.kmeans import kmeans
from ..saving import StagedSaveMixin
from .collisions import assign_suffix, collision_rate
from .configuration_rqvae import RQVAEConfig


def mlp(dims: list[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear layers with ReLU (and dropout) between them, none after the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclass
class QuantizerOutput(ModelOutput):
    """Residual quantisation of latents ``[B, D]``.

    quantized: ``[B, D]`` sum of the chosen code vectors, with a straight-through gradient to the input.
    codes: ``[B, L]`` chosen code per level.
    code_logits: ``[B, L, K]`` negative squared distance of each level's residual to every code.
    loss: scalar, sum over levels of codebook loss + beta * commitment loss.
    """

    quantized: torch.Tensor | None = None
    codes: torch.Tensor | None = None
    code_logits: torch.Tensor | None = None
    loss: torch.Tensor | None = None


@dataclass
class RQVAEOutput(ModelOutput):
    """Output of :meth:`RQVAEModel.forward` for item embeddings ``[B, semantic_dim]``.

    loss: reconstruction MSE + quantisation loss. reconstruction: ``[B, semantic_dim]``.
    latents: encoder output ``[B, D]``. codes: ``[B, L]``. code_logits: ``[B, L, K]``.
    """

    loss: torch.Tensor | None = None
    reconstruction_loss: torch.Tensor | None = None
    quantization_loss: torch.Tensor | None = None
    reconstruction: torch.Tensor | None = None
    latents: torch.Tensor | None = None
    quantized: torch.Tensor | None = None
    codes: torch.Tensor | None = None
    code_logits: torch.Tensor | None = None


class ResidualQuantizer(nn.Module):
    """``num_levels`` codebooks; level l quantises what levels < l left over.

    As the official ETEGRec ``vq.py``: the residual passed to the next level is detached (each
    level's straight-through estimate stops there), so only level 0's commitment term and code
    logits send gradient to the encoder, and the loss is the mean of the per-level losses.
    """

    def __init__(self, num_levels: int, codebook_size: int, dim: int, beta: float):
        super().__init__()
        self.beta = beta
        self.codebooks = nn.ModuleList(nn.Embedding(codebook_size, dim) for _ in range(num_levels))

    @staticmethod
    def level_logits(residual: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``-||r - e||^2`` for residuals ``[B, d]`` and a codebook ``[K, d]`` -> ``[B, K]``.

        The paper's sign: the nearest code gets the largest logit (the official vq.py returns
        ``+||r - e||^2`` as "logit", which makes SIA's softmax favour far codes)."""
        return 2 * residual @ weight.t() - (weight * weight).sum(1) - (residual * residual).sum(1, keepdim=True)

    @torch.no_grad()
    def assign(self, latents: torch.Tensor, previous: torch.Tensor | None = None, margin: float = 0.0) -> torch.Tensor:
        """Codes ``[B, num_levels]`` of ``latents`` ``[B, d]``: the nearest code per level, except that
        with ``previous`` ``[B, num_levels]`` and ``margin > 0`` an item keeps its previous code at a
        level while that code's squared distance is at most ``(1 + margin)`` times the nearest one's
        (hysteresis: parameter noise should not re-code items that sit near a boundary). The next
        level quantises the residual of the code actually kept. ``margin=0`` gives ``forward``'s codes."""
        if margin < 0:
            raise InputError(f"margin must be >= 0, got {margin}")
        if previous is not None and previous.shape != (latents.shape[0], len(self.codebooks)):
            raise ValueError(f"previous codes must be [{latents.shape[0]}, {len(self.codebooks)}], got {tuple(previous.shape)}")
        residual, codes = latents, []
        for level, book in enumerate(self.codebooks):
            logits = self.level_logits(residual, book.weight)
            idx = logits.argmax(-1)
            if previous is not None and margin > 0:
                prev = previous[:, level].to(idx)
                # Distances are -logits; clamp the rounding that can make a tiny distance negative.
                d_prev = (-logits.gather(1, prev[:, None])).squeeze(1).clamp_min(0)
                d_best = (-logits.gather(1, idx[:, None])).squeeze(1).clamp_min(0)
                idx = torch.where(d_prev <= (1 + margin) * d_best, prev, idx)
            residual = residual - book(idx)
            codes.append(idx)
        return torch.stack(codes, 1)

    def forward(self, latents: torch.Tensor) -> QuantizerOutput:
        residual = latents
        quantized = torch.zeros_like(latents)
        codes, logits, losses = [], [], []
        for book in self.codebooks:
            level_logits = self.level_logits(residual, book.weight)
            idx = level_logits.argmax(-1)
            chosen = book(idx)
            losses.append(F.mse_loss(chosen, residual.detach()) + self.beta * F.mse_loss(residual, chosen.detach()))
            quantized = quantized + chosen
            residual = (residual - chosen).detach()
            codes.append(idx)
            logits.append(level_logits)
        # Straight-through: the decoder's gradient reaches the encoder as if quantisation were identity.
        quantized_st = latents + (quantized - latents).detach()
        loss = torch.stack(losses).mean()
        return QuantizerOutput(quantized=quantized_st, codes=torch.stack(codes, 1), code_logits=torch.stack(logits, 1), loss=loss)


class RQVAEPreTrainedModel(PreTrainedModel):
    config_class = RQVAEConfig
    base_model_prefix = "rqvae"
    main_input_name = "embeddings"

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.xavier_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.uniform_(module.weight, -1.0 / module.num_embeddings, 1.0 / module.num_embeddings)


class RQVAEModel(StagedSaveMixin, RQVAEPreTrainedModel):
    """Residual-quantised VAE that tokenizes item embeddings into semantic ids.

    Example::

        model = RQVAEModel(RQVAEConfig(semantic_dim=256))
        model.kmeans_init(item_embeddings)            # [N, 256]
        out = model(item_embeddings[:1024])           # out.loss, out.codes [1024, 3]
        codes = model.get_codes(item_embeddings)      # [N, 4], unique rows (suffix in the last column)
    """

    def __init__(self, config: RQVAEConfig):
        super().__init__(config)
        dims = [config.semantic_dim, *config.hidden_dims, config.codebook_dim]
        self.encoder = mlp(dims, config.dropout)
        self.quantizer = ResidualQuantizer(config.num_levels, config.codebook_size, config.codebook_dim, config.beta)
        self.decoder = mlp(dims[::-1], config.dropout)
        self.post_init()

    @property
    def codebooks(self) -> nn.ModuleList:
        return self.quantizer.codebooks

    def _check_input(self, embeddings: torch.Tensor) -> None:
        if embeddings.dim() != 2 or embeddings.shape[1] != self.config.semantic_dim:
            raise InputError(
                f"RQ-VAE expects item embeddings [N, {self.config.semantic_dim}], got {tuple(embeddings.shape)} "
                "(wrong embedding dimension?)"
            )
        if not torch.isfinite(embeddings).all():
            raise InputError("item embeddings contain NaN or inf")

    def encode(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``[B, semantic_dim]`` -> latents ``[B, codebook_dim]``."""
        return self.encoder(embeddings)

    def forward(self, embeddings: torch.Tensor, **kwargs) -> RQVAEOutput:
        """Reconstruct ``embeddings`` ``[B, semantic_dim]`` through the quantiser; ``loss`` = MSE + quantisation loss."""
        self._check_input(embeddings)
        latents = self.encode(embeddings)
        q = self.quantizer(latents)
        reconstruction = self.decoder(q.quantized)
        recon_loss = F.mse_loss(reconstruction, embeddings)
        return RQVAEOutput(
            loss=recon_loss + q.loss,
            reconstruction_loss=recon_loss,
            quantization_loss=q.loss,
            reconstruction=reconstruction,
            latents=latents,
            quantized=q.quantized,
            codes=q.codes,
            code_logits=q.code_logits,
        )

    @torch.no_grad()
    def kmeans_init(self, embeddings: torch.Tensor, seed: int = 0) -> None:
        """Initialise each level's codebook with k-means over that level's residuals of ``embeddings`` ``[N, semantic_dim]``."""
        self._check_input(embeddings)
        gen = torch.Generator().manual_seed(seed)
        residual = self.encode(embeddings.to(self.device, self.dtype)).float().cpu()
        for book in self.codebooks:
            centroids = kmeans(residual, book.num_embeddings, self.config.kmeans_iters, generator=gen)
            book.weight.copy_(centroids.to(book.weight))
            residual = residual - centroids[torch.cdist(residual, centroids).argmin(1)]

    @torch.no_grad()
    def get_prefix_codes(
        self,
        embeddings: torch.Tensor,
        batch_size: int = 8192,
        previous: torch.Tensor | None = None,
        margin: float = 0.0,
    ) -> torch.Tensor:
        """Quantiser codes without the suffix, ``[N, num_levels]`` (long, on CPU). With ``previous``
        ``[N, num_levels]`` and ``margin > 0``, items keep previous codes within the margin
        (:meth:`ResidualQuantizer.assign`)."""
        self._check_input(embeddings)
        if previous is not None and previous.shape[0] != embeddings.shape[0]:
            raise ValueError(f"previous codes have {previous.shape[0]} rows for {embeddings.shape[0]} items")
        out = []
        for i, chunk in enumerate(embeddings.split(batch_size)):
            prev = None if previous is None else previous[i * batch_size : i * batch_size + chunk.shape[0]].to(self.device)
            out.append(self.quantizer.assign(self.encode(chunk.to(self.device, self.dtype)), prev, margin).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def get_codes(
        self,
        embeddings: torch.Tensor,
        batch_size: int = 8192,
        previous: torch.Tensor | None = None,
        margin: float = 0.0,
    ) -> torch.Tensor:
        """Unique item ids ``[N, num_levels + 1]``: quantiser codes plus a collision suffix.

        Raises :class:`CodebookCollisionError` when more items share a prefix than ``suffix_size``.
        """
        return assign_suffix(self.get_prefix_codes(embeddings, batch_size, previous, margin), self.config.suffix_size)

    @torch.no_grad()
    def code_statistics(self, embeddings: torch.Tensor) -> dict[str, float]:
        """Collision rate of the prefix codes and the share of codes used per level."""
        codes = self.get_prefix_codes(embeddings)
        stats = {"collision_rate": collision_rate(codes)}
        for level in range(codes.shape[1]):
            stats[f"codebook_usage_l{level}"] = codes[:, level].unique().numel() / self.config.codebook_size
        stats["max_items_per_prefix"] = float(torch.unique(codes, dim=0, return_counts=True)[1].max())
        return stats
