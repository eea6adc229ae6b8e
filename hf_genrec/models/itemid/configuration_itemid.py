"""Configuration of the item-ID LLaMA with a hierarchical softmax ("EfficientIDs")."""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig

from ...utils.errors import InputError
from ..backbone import set_dropout_fields, small_llama_config
from ..recommender import require_count, require_optional_positive, require_positive, set_inference_settings

DEFAULT_BACKBONE = small_llama_config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=32)


class ItemIDLlamaConfig(PretrainedConfig):
    """Configuration of :class:`ItemIDLlamaForRecommendation`.

    Args:
        backbone_config / backbone_name_or_path / use_lora / lora_* / save_base_weights: the LLM
            backbone (any decoder-only model taking ``inputs_embeds``), as in
            :mod:`hf_genrec.models.backbone`.
        num_items: catalogue size N (dense ids 1..N, 0 = padding).
        item_embedding_dim: size of the item embedding table (e.g. 384 for MiniLM text embeddings).
        num_clusters: clusters of the hierarchical softmax (k-means over the item embeddings).
        cluster_capacity: room per cluster (default 1.5 x the balanced size); bounds the head's cost.
            ``add_items`` sets it to the head's width (which it may grow).
        item_embedding_scale: the factor ``set_item_embeddings`` scaled the initial item table by
            (set by it); ``add_items`` maps new items' embeddings with the same factor.
        head: ``"hierarchical"`` (trains with the exact two-level log-likelihood) or ``"full"`` (a
            full softmax over every item, on the same parameters, for comparison).
        fast_top_k_clusters: clusters the fast inference path expands (``None``: exact, certified).
        initializer_range: std of the N(0, std) init of the new layers.
        exclude_history: the default of ``recommend()`` / ``recommend_dense()`` and of
            evaluation: leave the items of the user's history out of the ranking ("seen items excluded").
        max_history: history items the model reads, the most recent; ``recommend()``, the server,
            the collator of :class:`~hf_genrec.training.RecommenderTrainer` and ``top_k_items`` all cut
            longer histories to it (the trainer writes its ``--max_history`` here).
        train_on_all_positions: whole-sequence training: ``forward(history, targets)`` reads
            ``history + [target]`` in one causal pass and every item after the first predicts it
            (feed one row per user sequence, :func:`~hf_genrec.data.whole_sequence_rows`); otherwise
            only ``targets`` is predicted (one row per prefix).
        embedding_dropout / hidden_dropout / attention_dropout: regularisation, active in training
            only: dropout on the input embeddings, on each attention / MLP block's output before the
            residual add, and on the attention probabilities.
        evaluation_results: for the model card.
    """

    model_type = "genrec_itemid_llama"
    sub_configs = {"backbone_config": AutoConfig}

    def __init__(
        self,
        backbone_config: dict | PretrainedConfig | None = None,
        backbone_name_or_path: str | None = None,
        num_items: int = 0,
        item_embedding_dim: int = 384,
        num_clusters: int = 100,
        cluster_capacity: int | None = None,
        head: str = "hierarchical",
        fast_top_k_clusters: int | None = None,
        use_lora: bool = False,
        lora_r: int = 16,
        lora_alpha: int = 32,
        lora_dropout: float = 0.05,
        lora_target_modules: list[str] | None = None,
        save_base_weights: bool = True,
        initializer_range: float = 0.02,
        exclude_history: bool = False,
        max_history: int = 50,
        train_on_all_positions: bool = False,
        embedding_dropout: float = 0.0,
        hidden_dropout: float = 0.0,
        attention_dropout: float = 0.0,
        item_embedding_scale: float | None = None,
        evaluation_results: dict | None = None,
        **kwargs,
    ):
        require_count("ItemIDLlamaConfig", num_items=num_items)
        require_positive("ItemIDLlamaConfig", item_embedding_dim=item_embedding_dim, num_clusters=num_clusters, lora_r=lora_r)
        require_optional_positive(
            "ItemIDLlamaConfig", cluster_capacity=cluster_capacity, fast_top_k_clusters=fast_top_k_clusters
        )
        if backbone_config is None:
            backbone_config = dict(DEFAULT_BACKBONE)
        if isinstance(backbone_config, dict):
            backbone_config = dict(backbone_config)
            backbone_config = AutoConfig.for_model(backbone_config.pop("model_type", "llama"), **backbone_config)
        if head not in ("hierarchical", "full"):
            raise InputError(f"head must be 'hierarchical' or 'full', got {head!r}")
        self.backbone_config = backbone_config
        self.backbone_name_or_path = backbone_name_or_path
        self.num_items = num_items
        self.item_embedding_dim = item_embedding_dim
        self.num_clusters = num_clusters
        self.cluster_capacity = cluster_capacity
        self.head = head
        self.fast_top_k_clusters = fast_top_k_clusters
        self.use_lora = use_lora
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.lora_target_modules = list(lora_target_modules or ["q_proj", "k_proj", "v_proj", "o_proj"])
        self.save_base_weights = save_base_weights
        self.initializer_range = initializer_range
        set_inference_settings(self, max_history, exclude_history)
        self.train_on_all_positions = train_on_all_positions
        set_dropout_fields(
            self,
            "",
            embedding_dropout=embedding_dropout,
            hidden_dropout=hidden_dropout,
            attention_dropout=attention_dropout,
        )
        self.item_embedding_scale = item_embedding_scale
        self.evaluation_results = evaluation_results
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    @property
    def hidden_size(self) -> int:
        return self.backbone_config.hidden_size
