"""Configuration of the SASRec baseline / collaborative item-embedding model."""

from __future__ import annotations

from transformers import PretrainedConfig


class SASRecConfig(PretrainedConfig):
    """SASRec (Kang & McAuley, 2018) trained with full-softmax cross-entropy.

    Args:
        num_items: catalogue size N (ids 1..N, 0 = padding).
        hidden_size: item embedding size; this is the exported collaborative embedding dim.
        num_layers / num_heads / dropout: the causal transformer.
        max_history: longest history the position embedding covers; longer inputs keep their
            most recent ``max_history`` items.
        exclude_history: the default of ``forward(exclude_history=)``: score the items of the
            history -inf (the "seen items excluded" ranking protocol).
    """

    model_type = "genrec_sasrec"

    def __init__(
        self,
        num_items: int = 100,
        hidden_size: int = 256,
        num_layers: int = 2,
        num_heads: int = 2,
        dropout: float = 0.5,
        max_history: int = 50,
        initializer_range: float = 0.02,
        exclude_history: bool = False,
        **kwargs,
    ):
        self.num_items = num_items
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.dropout = dropout
        self.max_history = max_history
        self.initializer_range = initializer_range
        self.exclude_history = exclude_history
        super().__init__(**kwargs)
