"""SASRec: a causal self-attention next-item model whose item table is the collaborative embedding."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from ...utils.errors import InputError
from ...utils.linear_cross_entropy import linear_cross_entropy
from ..recommender import RecommendationOutput, RecommenderMixin, top_k_from_scores
from .configuration_sasrec import SASRecConfig


@dataclass
class SASRecOutput(ModelOutput):
    """loss: scalar CE. logits: ``[B, N+1]`` scores of the next item after each (left-padded) history."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class SASRecModel(RecommenderMixin, PreTrainedModel):
    """SASRec with a tied output layer (scores = hidden · item embedding), on the recommender
    contract: ``recommend()`` with the user's item ids, the item map and model card in the
    checkpoint, ``AutoModel.from_pretrained``, served by ``hf-genrec serve``.

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
        if self.config.initialization == "xavier":
            self._init_xavier(module)
            return
        if isinstance(module, nn.Embedding | nn.Linear):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            module.weight.data[module.padding_idx].zero_()

    @torch.no_grad()
    def _init_xavier(self, module: nn.Module) -> None:
        # The CE-SCE-LLMRec SASRec re-initialises nn.Linear and nn.Embedding with Xavier-normal; its
        # feed-forward layers are 1x1 convolutions it leaves at PyTorch's default, and the attention
        # input projection keeps nn.MultiheadAttention's Xavier-uniform.
        if isinstance(module, nn.Embedding):
            nn.init.xavier_normal_(module.weight)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.MultiheadAttention):
            nn.init.xavier_uniform_(module.in_proj_weight)
            nn.init.zeros_(module.in_proj_bias)
            nn.init.xavier_normal_(module.out_proj.weight)
            nn.init.zeros_(module.out_proj.bias)
        elif isinstance(module, nn.TransformerEncoderLayer):
            module.linear1.reset_parameters()
            module.linear2.reset_parameters()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def _truncate(self, input_ids: torch.Tensor) -> torch.Tensor:
        return input_ids[:, -self.config.max_history :] if input_ids.shape[1] > self.config.max_history else input_ids

    def encode_tokens(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states of the real (non-padding) positions only.

        ``input_ids`` ``[B, L]`` (its last ``max_history`` columns are read). Returns ``(hidden [T, H],
        real [B, L'])``: one row per True entry of ``real`` in row-major order, ``L' = min(L, max_history)``.

        Only attention needs the ``[B, L]`` layout; every other operation (embedding dropout, layer
        norms, projections, feed-forward) runs on the ``T`` real positions. A Beauty batch of 512
        users is ~11% real positions in a window of 50, so this does a ninth of the per-position
        work of the padded computation. Padded keys are hidden from every query, so the result is
        exactly that of the padded computation (``nn.TransformerEncoder`` over the same parameters,
        checked in the tests).
        """
        input_ids = self._window(input_ids)
        batch, length = input_ids.shape
        real = input_ids != 0
        query_norm = self.config.block == "query_norm"
        # Left padding: positions count back from the most recent item (0 = last), so the amount
        # of padding never changes an item's position.
        positions = torch.arange(length - 1, -1, -1, device=input_ids.device).expand(batch, length)[real]
        x = self.item_embedding(input_ids[real]) * self.config.hidden_size**0.5 + self.position_embedding(positions)
        x = self.dropout(x)
        allowed = self._attention_mask(real).unsqueeze(1)  # [B, 1, L, L]
        heads, width = self.config.num_heads, self.config.hidden_size
        for layer in self.encoder.layers:
            attn = layer.self_attn
            if query_norm:  # queries from the normalised stream; keys and values from the stream itself
                qkv = torch.cat([F.linear(layer.norm1(x), attn.in_proj_weight[:width], attn.in_proj_bias[:width]),
                                 F.linear(x, attn.in_proj_weight[width:], attn.in_proj_bias[width:])], -1)
            else:
                qkv = F.linear(layer.norm1(x), attn.in_proj_weight, attn.in_proj_bias)
            # Padding positions hold zero vectors; when they are attended, their keys and values are
            # the projection of one (zero or normalised-zero) row.
            pad_row = F.linear(x.new_zeros(1, width) if query_norm else layer.norm1(x.new_zeros(1, width)),
                               attn.in_proj_weight, attn.in_proj_bias)
            padded = pad_row.expand(batch, length, -1).index_put((real,), qkv)
            q, k, v = padded.view(batch, length, 3, heads, -1).permute(2, 0, 3, 1, 4)  # 3 x [B, heads, L, H/heads]
            a = F.scaled_dot_product_attention(
                q, k, v, attn_mask=allowed, dropout_p=attn.dropout if self.training else 0.0
            )
            a = a.transpose(1, 2).reshape(batch, length, -1)[real]
            if query_norm:
                x = x + attn.out_proj(a)
                x = layer.norm2(x)
                x = x + layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(x)))))
            else:
                x = x + layer.dropout1(attn.out_proj(a))
                x = x + layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm2(x))))))
        return self.final_norm(x), real

    def _window(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The last ``max_history`` columns; with ``attend_padding``, left padded to exactly
        ``max_history`` (the fixed window whose padding the queries see)."""
        input_ids = self._truncate(input_ids)
        if self.config.attend_padding and input_ids.shape[1] < self.config.max_history:
            input_ids = F.pad(input_ids, (self.config.max_history - input_ids.shape[1], 0))
        return input_ids

    def _attention_mask(self, real: torch.Tensor) -> torch.Tensor:
        """``[B, L, L]`` True where query i may attend key j: causal, and (unless
        ``attend_padding``) only real keys."""
        length = real.shape[1]
        causal_ok = torch.tril(torch.ones(length, length, dtype=torch.bool, device=real.device))
        if self.config.attend_padding:
            return causal_ok.expand(real.shape[0], -1, -1)
        eye = torch.eye(length, dtype=torch.bool, device=real.device)
        # A padded query sees only itself, so no softmax row is empty (an empty row gives NaN,
        # which the backward pass would spread to the real keys).
        return causal_ok & (real.unsqueeze(1) | eye)

    def encode_padded(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The same hidden states as :meth:`encode`, ``[B, L', H]``, computed the plain way: every
        position of the padded batch through ``nn.TransformerEncoder``'s own forward (the reference
        the packed computation is checked and timed against). Only for the default structure."""
        if self.config.block != "pre_norm" or self.config.attend_padding:
            raise InputError("encode_padded is the nn.TransformerEncoder reference of block='pre_norm' without attend_padding")
        input_ids = self._truncate(input_ids)
        pad, length = input_ids == 0, input_ids.shape[1]
        positions = torch.arange(length - 1, -1, -1, device=input_ids.device)
        x = self.item_embedding(input_ids) * self.config.hidden_size**0.5 + self.position_embedding(positions)
        x = self.dropout(x) * (~pad).unsqueeze(-1)
        eye = torch.eye(length, dtype=torch.bool, device=x.device)
        allowed = torch.tril(torch.ones(length, length, dtype=torch.bool, device=x.device)) & (~pad.unsqueeze(1) | eye)
        h = self.final_norm(self.encoder(x, mask=(~allowed).repeat_interleave(self.config.num_heads, dim=0)))
        return h * (~pad).unsqueeze(-1)

    def encode(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Hidden state at every position, ``[B, L', H]`` (zeros at padding)."""
        h, real = self.encode_tokens(input_ids)
        return h.new_zeros(*real.shape, h.shape[-1]).index_put((real,), h)

    def forward(
        self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, exclude_history: bool | None = None, **kwargs
    ) -> SASRecOutput:
        """Training (``labels`` ``[B, L]``): mean CE over all items at every labelled position.
        Scoring (``labels`` ``[B]`` or None): ``logits`` ``[B, N+1]`` after the last position; with
        ``exclude_history`` (default: ``config.exclude_history``) every item of ``input_ids`` (all
        columns, also those beyond ``max_history``) scores -inf, as does the padding column 0."""
        table = self.item_embedding.weight
        if labels is not None and labels.dim() == 2:
            h, real = self.encode_tokens(input_ids)
            labels = labels[:, -real.shape[1] :]
            if labels.shape[1] < real.shape[1]:  # the fixed window of attend_padding
                labels = F.pad(labels, (real.shape[1] - labels.shape[1], 0))
            labels = labels[real]
            scored = labels > 0
            if not scored.any():
                raise ValueError("batch has no training targets (all labels are padding)")
            # Column 0 (padding) is never a class: drop its row and shift the targets.
            loss = linear_cross_entropy(h[scored], table[1:], labels[scored] - 1)
            return SASRecOutput(loss=loss, logits=None)
        last = self.encode(input_ids)[:, -1]
        logits = last @ table.t()
        logits[:, 0] = float("-inf")
        # The loss is over the whole catalogue either way (a target the exclusion masks would be inf).
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        if self.config.exclude_history if exclude_history is None else exclude_history:
            logits = logits.scatter(1, input_ids, float("-inf"))
        return SASRecOutput(loss=loss, logits=logits)

    def top_k_items(self, history: torch.Tensor, k: int, exclude_items: torch.Tensor | None = None) -> RecommendationOutput:
        """Best ``k`` items for ``[B, H]`` left-padded histories by the full-catalogue scores, leaving
        out ``exclude_items`` ``[B, E]`` (the last ``max_history`` items are read)."""
        self.check_item_ids(history, allow_padding=True)
        (history,) = self.readable_history(history)
        with torch.no_grad():
            scores = self(input_ids=history, exclude_history=False).logits
        return top_k_from_scores(scores, k, exclude_items)

    def item_embeddings(self) -> torch.Tensor:
        """The collaborative item embeddings ``[N, H]`` (row i = dense item id i + 1)."""
        return self.item_embedding.weight[1:].detach().float().cpu()
