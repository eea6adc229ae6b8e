"""Configuration of HLLM, the hierarchical LLM recommender (ByteDance, arXiv 2409.12740)."""

from __future__ import annotations

import math

from transformers import AutoConfig, PretrainedConfig

from ...utils.errors import InputError
from ..backbone import set_dropout_fields, small_llama_config
from ..recommender import require_count, require_optional_positive, require_positive, set_inference_settings

#: the item LLM's instruction, as in the official code (``item_prompt``)
DEFAULT_ITEM_PROMPT = "Compress the following sentence into embedding: "

#: a small random-init LLaMA (the embedded default's item and user models)
DEFAULT_BACKBONE = small_llama_config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=1024)

#: bidirectional encoders: mean pooling as item model, refused as user model (no causal mask)
ENCODER_MODEL_TYPES = frozenset(
    {"bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "electra", "deberta", "deberta-v2", "albert", "modernbert"}
)

MODES = ("light", "end_to_end")
LOSSES = ("nce", "ce")
POOLINGS = ("item_token", "mean")


def _as_config(cfg: dict | PretrainedConfig | None) -> PretrainedConfig | None:
    if isinstance(cfg, dict):
        cfg = dict(cfg)
        return AutoConfig.for_model(cfg.pop("model_type", "llama"), **cfg)
    return cfg


class HLLMConfig(PretrainedConfig):
    """Configuration of :class:`HLLMForRecommendation`.

    Two backbones, each configured as in :mod:`hf_genrec.models.backbone` under a prefix:
    ``item_*`` (the item LLM: item text -> item embedding) and ``user_*`` (the user LLM: item
    embeddings of a history -> the next item's embedding), e.g. ``item_backbone_config``,
    ``item_backbone_name_or_path``, ``item_use_lora``, ``user_lora_r``.

    Args:
        num_items: catalogue size N (dense ids 1..N, 0 = padding).
        item_backbone_config: the item LLM (any ``AutoModel``: a decoder pools the hidden state of
            an appended learnable item token, an encoder such as MiniLM mean-pools). ``None`` with
            no ``item_backbone_name_or_path``: no item LLM, the model scores precomputed item
            embeddings given with ``set_item_embeddings`` (light mode only).
        user_backbone_config: the user LLM, a causal decoder taking ``inputs_embeds``.
        item_embedding_dim: size of an item embedding (the item LLM's hidden size; needed only
            without an item LLM). When it differs from the user LLM's hidden size a linear
            projection maps item embeddings into the user LLM's space.
        mode: ``"light"``: item embeddings are computed once (batched), cached and frozen; only the
            user side (and the projection) trains. ``"end_to_end"``: the item LLM trains too and the
            cache of every item's embedding is recomputed before evaluation.
        item_pooling: ``"item_token"`` | ``"mean"`` | ``None`` (decoder: item token, encoder: mean).
        item_prompt: text put before every item's fields.
        max_text_length: tokens per item text (item token included).
        exclude_history: the default of ``recommend()`` / ``recommend_dense()`` and of
            evaluation: leave the items of the user's history out of the ranking ("seen items excluded").
        max_history: history items the model reads, the most recent; ``recommend()``, the server,
            the collator of :class:`~hf_genrec.training.RecommenderTrainer` and ``top_k_items`` all cut
            longer histories to it (the trainer writes its ``--max_history`` here).
        user_embedding_dropout / user_hidden_dropout / user_attention_dropout: the user LLM's regularisation, active in training
            only: dropout on the input embeddings, on each attention / MLP block's output before the
            residual add, and on the attention probabilities.
        loss: ``"nce"`` (cosine logits, learnable scale, sampled + in-batch negatives, likely false
            negatives masked) or ``"ce"`` (full softmax over every item; light mode only).
        num_negatives: items sampled uniformly per batch as NCE negatives (shared by the batch).
        in_batch_negatives: also use the batch's other target items as NCE negatives.
        nce_threshold: a negative whose cosine to the target exceeds this is masked (the official 0.99).
        logit_scale_init: initial log of the logit scale (official ``log(1/0.07)``).
        logit_scale_max: the scale is clamped to at most this (official 100).
        train_on_all_positions: the loss covers every position of the sequence (official; train on
            whole user sequences) instead of only the last one.
        item_encode_batch_size: items per item-LLM batch when (re)computing the cache.
        num_time_buckets: > 0 adds a learned embedding of the log2-bucketed gap (in minutes) since the
            previous interaction to every user-LLM input (needs ``history_timestamps``); 0 = off.
        item_id_embeddings: add a learned per-item embedding (user-LLM width) to each item's text
            vector, on the input and the scoring side: what the text does not say about an item
            (its collaborative signal) can be learnt per id. Items added after training get a zero
            id embedding, so they are scored by their text alone.
        evaluation_results: for the model card.
    """

    model_type = "genrec_hllm"
    sub_configs = {"item_backbone_config": AutoConfig, "user_backbone_config": AutoConfig}

    def __init__(
        self,
        num_items: int = 0,
        item_backbone_config: dict | PretrainedConfig | None = None,
        item_backbone_name_or_path: str | None = None,
        user_backbone_config: dict | PretrainedConfig | None = None,
        user_backbone_name_or_path: str | None = None,
        item_embedding_dim: int | None = None,
        mode: str = "light",
        item_pooling: str | None = None,
        item_prompt: str = DEFAULT_ITEM_PROMPT,
        max_text_length: int = 64,
        loss: str = "nce",
        num_negatives: int = 512,
        in_batch_negatives: bool = True,
        nce_threshold: float = 0.99,
        logit_scale_init: float = math.log(1 / 0.07),
        logit_scale_max: float = 100.0,
        train_on_all_positions: bool = True,
        item_encode_batch_size: int = 256,
        num_time_buckets: int = 0,
        item_id_embeddings: bool = False,
        item_use_lora: bool = False,
        item_lora_r: int = 16,
        item_lora_alpha: int = 32,
        item_lora_dropout: float = 0.05,
        item_lora_target_modules: list[str] | None = None,
        item_save_base_weights: bool = True,
        user_use_lora: bool = False,
        user_lora_r: int = 16,
        user_lora_alpha: int = 32,
        user_lora_dropout: float = 0.05,
        user_lora_target_modules: list[str] | None = None,
        user_save_base_weights: bool = True,
        initializer_range: float = 0.02,
        exclude_history: bool = False,
        max_history: int = 50,
        user_embedding_dropout: float = 0.0,
        user_hidden_dropout: float = 0.0,
        user_attention_dropout: float = 0.0,
        evaluation_results: dict | None = None,
        **kwargs,
    ):
        require_count("HLLMConfig", num_items=num_items, num_time_buckets=num_time_buckets, num_negatives=num_negatives)
        require_positive(
            "HLLMConfig", item_encode_batch_size=item_encode_batch_size, item_lora_r=item_lora_r, user_lora_r=user_lora_r
        )
        if loss == "nce" and not num_negatives and not in_batch_negatives:
            raise InputError("HLLMConfig: NCE needs negatives: set num_negatives > 0 or in_batch_negatives=True")
        require_optional_positive("HLLMConfig", item_embedding_dim=item_embedding_dim)
        self.item_backbone_config = _as_config(item_backbone_config)
        self.user_backbone_config = _as_config(user_backbone_config if user_backbone_config is not None else DEFAULT_BACKBONE)
        if mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {mode!r}")
        if loss not in LOSSES:
            raise InputError(f"loss must be one of {LOSSES}, got {loss!r}")
        if item_pooling is not None and item_pooling not in POOLINGS:
            raise InputError(f"item_pooling must be one of {POOLINGS} or None, got {item_pooling!r}")
        if getattr(self.user_backbone_config, "model_type", None) in ENCODER_MODEL_TYPES:
            raise InputError(
                f"the user model must be a causal decoder; {self.user_backbone_config.model_type!r} is a bidirectional "
                "encoder and would see the items it has to predict"
            )
        has_item_llm = self.item_backbone_config is not None
        if not has_item_llm and item_embedding_dim is None and num_items:
            raise InputError("without an item LLM (item_backbone_config=None) give item_embedding_dim")
        if not has_item_llm and mode == "end_to_end":
            raise InputError("mode='end_to_end' trains the item LLM; give item_backbone_config or item_backbone_name_or_path")
        if loss == "ce" and mode == "end_to_end":
            raise InputError(
                "loss='ce' scores every item at every step, which in end-to-end mode means running the item LLM over "
                "the whole catalogue per step; use loss='nce' (or mode='light')"
            )
        if has_item_llm:
            item_embedding_dim = self.item_backbone_config.hidden_size
            if item_pooling is None:
                item_pooling = "mean" if self.item_backbone_config.model_type in ENCODER_MODEL_TYPES else "item_token"
        if max_text_length < 2:
            raise InputError(f"max_text_length must be at least 2 (a token and the item token), got {max_text_length}")
        if not 0 < nce_threshold <= 1.0 + 1e-6:
            raise InputError(f"nce_threshold is a cosine similarity in (0, 1], got {nce_threshold}")
        self.item_backbone_name_or_path = item_backbone_name_or_path
        self.user_backbone_name_or_path = user_backbone_name_or_path
        self.num_items = num_items
        self.item_embedding_dim = item_embedding_dim
        self.mode = mode
        self.item_pooling = item_pooling
        self.item_prompt = item_prompt
        self.max_text_length = max_text_length
        self.loss = loss
        self.num_negatives = num_negatives
        self.in_batch_negatives = in_batch_negatives
        self.nce_threshold = nce_threshold
        self.logit_scale_init = logit_scale_init
        self.logit_scale_max = logit_scale_max
        self.train_on_all_positions = train_on_all_positions
        self.item_encode_batch_size = item_encode_batch_size
        if num_time_buckets < 0:
            raise InputError(f"num_time_buckets must be >= 0 (0 = no time features), got {num_time_buckets}")
        self.num_time_buckets = num_time_buckets
        self.item_id_embeddings = item_id_embeddings
        lora = {
            "item": (item_use_lora, item_lora_r, item_lora_alpha, item_lora_dropout, item_lora_target_modules),
            "user": (user_use_lora, user_lora_r, user_lora_alpha, user_lora_dropout, user_lora_target_modules),
        }
        for side, (use_lora, r, alpha, dropout, targets) in lora.items():
            setattr(self, f"{side}_use_lora", use_lora)
            setattr(self, f"{side}_lora_r", r)
            setattr(self, f"{side}_lora_alpha", alpha)
            setattr(self, f"{side}_lora_dropout", dropout)
            setattr(self, f"{side}_lora_target_modules", list(targets or ["q_proj", "k_proj", "v_proj", "o_proj"]))
        self.item_save_base_weights = item_save_base_weights
        self.user_save_base_weights = user_save_base_weights
        self.initializer_range = initializer_range
        set_inference_settings(self, max_history, exclude_history)
        set_dropout_fields(
            self,
            "user_",
            embedding_dropout=user_embedding_dropout,
            hidden_dropout=user_hidden_dropout,
            attention_dropout=user_attention_dropout,
        )
        self.evaluation_results = evaluation_results
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    @property
    def has_item_llm(self) -> bool:
        return self.item_backbone_config is not None

    @property
    def user_hidden_size(self) -> int:
        return self.user_backbone_config.hidden_size
