"""Configuration of the SASRec baseline / collaborative item-embedding model."""

from __future__ import annotations

from transformers import PretrainedConfig

from ...utils.errors import InputError
from ..recommender import require_count, require_positive


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
        block: ``"pre_norm"`` (a pre-LayerNorm transformer block: attention and feed-forward each
            read a normalised input and add to the un-normalised stream) or ``"query_norm"`` (the
            block of the widely used CE-SCE-LLMRec SASRec code: only the queries are normalised;
            keys, values and the attention residual take the un-normalised stream, and the
            feed-forward reads and adds to the LayerNorm of the stream. The original TensorFlow
            code differs again: its attention residual adds the normalised queries).
        attend_padding: let queries attend to the left padding of a fixed ``max_history`` window
            (zero vectors), as that code does; the padding then acts as a learned "no
            history" sink whose weight depends on how short the history is. ``False`` hides it.
        initialization: ``"normal"`` (N(0, initializer_range) for embeddings and linear layers) or
            ``"xavier"`` (that code's: Xavier-normal embeddings and attention output projection,
            PyTorch's default for the feed-forward, Xavier-uniform attention input projection).
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
        block: str = "pre_norm",
        attend_padding: bool = False,
        initialization: str = "normal",
        **kwargs,
    ):
        require_count("SASRecConfig", num_items=num_items)
        require_positive(
            "SASRecConfig", hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads, max_history=max_history
        )
        if hidden_size % num_heads:
            raise InputError(f"SASRecConfig: hidden_size {hidden_size} is not a multiple of num_heads {num_heads}")
        if block not in ("pre_norm", "query_norm"):
            raise InputError(f"block must be 'pre_norm' or 'query_norm', got {block!r}")
        if initialization not in ("normal", "xavier"):
            raise InputError(f"initialization must be 'normal' or 'xavier', got {initialization!r}")
        self.num_items = num_items
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.dropout = dropout
        self.max_history = max_history
        self.initializer_range = initializer_range
        self.exclude_history = exclude_history
        self.block = block
        self.attend_padding = attend_padding
        self.initialization = initialization
        super().__init__(**kwargs)
