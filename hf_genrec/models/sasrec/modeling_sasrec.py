"""SASRec: a causal self-attention next-item model whose item table is the collaborative embedding."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_sasrec import SASRecConfig


@dataclass
class SASRecOutput(ModelOutput):
    """loss: scalar CE. logits: ``[B, N+1]`` scores of the next item after each (left-padded) history."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class SASRecModel(PreTrainedModel):
    """SASRec with a tied output layer (scores = hidden · item embedding).

    ``input_ids`` ``[B, L]`` are dense item ids, left padded with 0. ``labels``:
    ``[B, L]`` next item at every position (0 = ignore; whole-sequence training), or ``[B]``
    the item after the last position (evaluation).
    """

    config_class = SASRecConfig
    main_input_name = "input_ids"

    def __init__(self, config: SASRecConfig):
        super().__init__(config)
        self.item_embedding = nn.Embedding(config.num_items + 1, config.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_history, config.hidden_size)
        layer = nn.TransformerEncoderLayer(
            config.hidden_size, config.num_heads, config.hidden_size, config.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        self.dropout = nn.Dropout(config.dropout)
        self.final_norm = nn.LayerNorm(config.hidden_size)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Embedding | nn.Linear):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            module.weight.data[module.padding_idx].zero_()

    def encode(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Hidden state at every position, ``[B, L, H]``."""
        length = input_ids.shape[1]
        if length > self.config.max_history:
            input_ids = input_ids[:, -self.config.max_history :]
            length = self.config.max_history
        pad = input_ids == 0
        # Left padding: positions count back from the most recent item (0 = last), so the amount
        # of padding never changes an item's position.
        positions = torch.arange(length - 1, -1, -1, device=input_ids.device)
        x = self.item_embedding(input_ids) * self.config.hidden_size**0.5 + self.position_embedding(positions)
        x = self.dropout(x) * (~pad).unsqueeze(-1)
        eye = torch.eye(length, dtype=torch.bool, device=x.device)
        causal_ok = torch.tril(torch.ones(length, length, dtype=torch.bool, device=x.device))
        # Padded keys are hidden from every query; a padded query sees only itself, so no softmax
        # row is empty (an empty row gives NaN, and 0 * NaN would leak it into real positions).
        allowed = causal_ok & (~pad.unsqueeze(1) | eye)
        mask = (~allowed).repeat_interleave(self.config.num_heads, dim=0)
        h = self.encoder(x, mask=mask)
        return self.final_norm(h)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, **kwargs) -> SASRecOutput:
        h = self.encode(input_ids)
        table = self.item_embedding.weight
        if labels is not None and labels.dim() == 2:
            labels = labels[:, -h.shape[1] :]
            valid = labels > 0
            if not valid.any():
                raise ValueError("batch has no training targets (all labels are padding)")
            logits = h[valid] @ table.t()
            logits[:, 0] = float("-inf")
            return SASRecOutput(loss=F.cross_entropy(logits, labels[valid]), logits=None)
        logits = h[:, -1] @ table.t()
        logits[:, 0] = float("-inf")
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SASRecOutput(loss=loss, logits=logits)

    def item_embeddings(self) -> torch.Tensor:
        """The collaborative item embeddings ``[N, H]`` (row i = dense item id i + 1)."""
        return self.item_embedding.weight[1:].detach().float().cpu()
