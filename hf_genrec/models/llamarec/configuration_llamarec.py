"""Configuration of the ETEGRec-on-LLaMA recommender."""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig

from ...utils.errors import InputError
from ..backbone import set_dropout_fields, small_llama_config
from ..recommender import refuse_renamed_fields, require_count, require_positive, set_inference_settings

# A small LLaMA for the embedded default and tests; code-only inputs never use its vocabulary.
DEFAULT_BACKBONE = small_llama_config(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, vocab_size=8)


SCORE_MODES = ("generative", "dense", "hybrid")


class LlamaRecConfig(PretrainedConfig):
    """Configuration of :class:`LlamaRecForCodeGeneration`.

    Args:
        backbone_config: config (or dict with ``model_type``) of any decoder-only model that
            accepts ``inputs_embeds`` (LLaMA, Qwen2, Mistral). Defaults to a small LLaMA.
        backbone_name_or_path: where a pretrained backbone came from (informational; the weights
            are saved in this model's own checkpoint).
        num_items: catalogue size N; the item code table holds N + 1 rows (row 0 = padding).
        num_levels: RQ-VAE levels (codebooks); the item id has ``num_levels + 1`` codes with the suffix.
        codebook_size: codes per codebook.
        suffix_size: range of the collision suffix.
        codebook_dim: code vector size (the RQ-VAE latent). semantic_dim: size of the item
            semantic embedding (the PSA target).
        use_lora / lora_*: LoRA injected into the backbone with peft; ``use_lora=False`` trains it in full.
        initializer_range: std of the N(0, std) init of the new layers.
        exclude_history: the default of ``recommend()`` / ``recommend_dense()`` and of
            evaluation: leave the items of the user's history out of the ranking ("seen items excluded").
        max_history: history items the model reads, the most recent; ``recommend()``, the server,
            the collator of :class:`~hf_genrec.training.RecommenderTrainer` and ``top_k_items`` all cut
            longer histories to it (the trainer writes its ``--max_history`` here).
        train_on_all_positions: whole-sequence training: ``forward(history, targets)`` reads
            ``history + [target]`` in one causal pass and every item after the first predicts its codes
            (feed one row per user sequence, :func:`~hf_genrec.data.whole_sequence_rows`); otherwise
            only ``targets`` is predicted (one row per prefix).
        embedding_dropout / hidden_dropout / attention_dropout: regularisation, active in training
            only: dropout on the input embeddings, on each attention / MLP block's output before the
            residual add, and on the attention probabilities.
        save_base_weights: ``False`` saves only what trains (LoRA, projectors, adapters, codebooks,
            code table) and reloads the frozen backbone from ``backbone_name_or_path``: a 7B
            checkpoint then takes megabytes, not 13 GB. Needs ``use_lora`` and that path.
        score_mode: how ``top_k_items`` ranks: ``"generative"`` (constrained beam search over the
            codes, the default), ``"dense"`` (cosine between the PSA head's output and every item's
            dense vector, a full ranking) or ``"hybrid"`` (the beam's candidates re-ranked by
            code log-likelihood + ``dense_score_weight`` x that cosine). The last two need
            ``set_item_dense_vectors``.
        dense_score_weight: the weight of the cosine in ``"hybrid"`` mode.
        has_dense_vectors: set by ``set_item_dense_vectors`` (the buffer is saved with the model).
        default_num_beams / default_num_return_sequences / generation_chunk_size: ``generate()`` defaults
            (not named ``num_beams`` etc.: transformers reserves those for ``GenerationConfig``).
        evaluation_results: ``{"dataset", "split", "metrics"}`` for the model card (set by
            ``record_evaluation``).
    """

    model_type = "genrec_llamarec"
    sub_configs = {"backbone_config": AutoConfig}
    # One name per quantity across the package; configs saved before the rename still load.

    def __init__(
        self,
        backbone_config: dict | PretrainedConfig | None = None,
        backbone_name_or_path: str | None = None,
        num_items: int = 0,
        num_levels: int = 3,
        codebook_size: int = 256,
        suffix_size: int = 256,
        codebook_dim: int = 128,
        semantic_dim: int = 256,
        use_lora: bool = True,
        lora_r: int = 16,
        lora_alpha: int = 32,
        lora_dropout: float = 0.05,
        lora_target_modules: list[str] | None = None,
        initializer_range: float = 0.02,
        exclude_history: bool = False,
        max_history: int = 50,
        train_on_all_positions: bool = False,
        embedding_dropout: float = 0.0,
        hidden_dropout: float = 0.0,
        attention_dropout: float = 0.0,
        score_mode: str = "generative",
        dense_score_weight: float = 1.0,
        has_dense_vectors: bool = False,
        default_num_beams: int = 20,
        default_num_return_sequences: int = 10,
        generation_chunk_size: int = 64,
        save_base_weights: bool = True,
        evaluation_results: dict | None = None,
        **kwargs,
    ):
        refuse_renamed_fields("LlamaRecConfig", kwargs, code_num="codebook_size")
        require_positive(
            "LlamaRecConfig", num_levels=num_levels, codebook_size=codebook_size,
            suffix_size=suffix_size, codebook_dim=codebook_dim, semantic_dim=semantic_dim,
            default_num_beams=default_num_beams, default_num_return_sequences=default_num_return_sequences,
            generation_chunk_size=generation_chunk_size, lora_r=lora_r,
        )
        require_count("LlamaRecConfig", num_items=num_items)
        if backbone_config is None:
            backbone_config = dict(DEFAULT_BACKBONE)
        if isinstance(backbone_config, dict):
            backbone_config = dict(backbone_config)
            model_type = backbone_config.pop("model_type", "llama")
            backbone_config = AutoConfig.for_model(model_type, **backbone_config)
        self.backbone_config = backbone_config
        self.backbone_name_or_path = backbone_name_or_path
        self.num_items = num_items
        self.num_levels = num_levels
        self.codebook_size = codebook_size
        self.suffix_size = suffix_size
        self.codebook_dim = codebook_dim
        self.semantic_dim = semantic_dim
        self.use_lora = use_lora
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.lora_target_modules = list(lora_target_modules or ["q_proj", "k_proj", "v_proj", "o_proj"])
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
        if score_mode not in SCORE_MODES:
            raise InputError(f"score_mode must be one of {SCORE_MODES}, got {score_mode!r}")
        self.score_mode = score_mode
        self.dense_score_weight = float(dense_score_weight)
        self.has_dense_vectors = has_dense_vectors
        self.default_num_beams = default_num_beams
        self.default_num_return_sequences = default_num_return_sequences
        self.generation_chunk_size = generation_chunk_size
        self.save_base_weights = save_base_weights
        self.evaluation_results = evaluation_results
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    @property
    def code_length(self) -> int:
        """Codes per item: the RQ levels plus the suffix."""
        return self.num_levels + 1

    @property
    def code_vocab(self) -> int:
        """Width of the logits: the larger of a codebook and the suffix range."""
        return max(self.codebook_size, self.suffix_size)

    @property
    def hidden_size(self) -> int:
        return self.backbone_config.hidden_size
