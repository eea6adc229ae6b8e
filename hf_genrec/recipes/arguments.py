"""The argument groups the recipes share, one definition each: the LLM backbone and its LoRA, backbone
dropout, the RQ-VAE item tokenizer, and the SASRec stage that supplies item embeddings.

Each is a dataclass that ``HfArgumentParser`` turns into flags; a recipe lists the groups it takes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field

from ..embeddings import SASREC_RECIPES, sasrec_recipe
from ..models.backbone import DROPOUT_FIELDS, small_llama_config
from ..models.rqvae import RQVAEConfig
from ..training.rqvae_pretraining import DEFAULT_RQVAE_EPOCHS

_RQVAE = RQVAEConfig()  # the defaults below are RQVAEConfig's own


@dataclasses.dataclass
class SmallBackboneArguments:
    """The size of the random-init LLaMA a recipe builds when it is given no pretrained checkpoint."""

    hidden_size: int = field(default=64, metadata={"help": "random-init backbone: hidden size (MLP 4x)"})
    num_hidden_layers: int = field(default=2, metadata={"help": "random-init backbone: layers"})
    num_attention_heads: int = field(default=4, metadata={"help": "random-init backbone: attention heads (no GQA)"})

    def small_backbone(self, vocab_size: int) -> dict:
        """The random-init backbone's config dict at these sizes."""
        return small_llama_config(self.hidden_size, self.num_hidden_layers, self.num_attention_heads, vocab_size)


@dataclasses.dataclass
class LoraArguments:
    """LoRA on the attention projections (q/k/v/o) of a backbone."""

    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input"})

    def lora_config(self, prefix: str = "") -> dict:
        """The model-config fields these flags set, e.g. ``{"user_lora_r": 16, ...}``."""
        values = {"lora_r": self.lora_r, "lora_alpha": self.lora_alpha, "lora_dropout": self.lora_dropout}
        return {f"{prefix}{name}": value for name, value in values.items()}


@dataclasses.dataclass
class BackboneArguments(SmallBackboneArguments, LoraArguments):
    """The recommender's LLM: a pretrained decoder-only checkpoint (LoRA by default) or a small random-init LLaMA."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "local or Hub decoder-only LLM checkpoint; default: a small random-init LLaMA"}
    )
    use_lora: bool | None = field(
        default=None,
        metadata={"help": "train LoRA adapters instead of the LLM (default: on for a pretrained LLM, off for random init)"},
    )

    def lora_enabled(self) -> bool:
        return self.use_lora if self.use_lora is not None else self.model_name_or_path is not None


@dataclasses.dataclass
class DropoutArguments:
    """Backbone regularisation flags every LLM recipe takes (saved in the model config)."""

    embedding_dropout: float = field(default=0.0, metadata={"help": "dropout on the backbone's input embeddings"})
    hidden_dropout: float = field(
        default=0.0, metadata={"help": "dropout on each attention / MLP block's output before the residual add"}
    )
    attention_dropout: float = field(default=0.0, metadata={"help": "dropout on the attention probabilities"})

    def dropout_config(self, prefix: str = "") -> dict[str, float]:
        """The config fields these flags set, e.g. ``{"user_hidden_dropout": 0.1, ...}``."""
        return {f"{prefix}{f}": getattr(self, f) for f in DROPOUT_FIELDS}


@dataclasses.dataclass
class RQVAEShapeArguments:
    """The shape and training length of an RQ-VAE item tokenizer to pre-train; the defaults are
    :class:`~hf_genrec.RQVAEConfig`'s."""

    num_levels: int = field(default=_RQVAE.num_levels, metadata={"help": "code levels before the suffix code"})
    codebook_size: int = field(default=_RQVAE.codebook_size, metadata={"help": "codes per level"})
    codebook_dim: int = field(default=_RQVAE.codebook_dim, metadata={"help": "width of each code vector"})
    suffix_size: int = field(default=_RQVAE.suffix_size, metadata={"help": "range of the collision-breaking suffix code"})
    rqvae_hidden_dims: list[int] = field(
        default_factory=lambda: list(_RQVAE.hidden_dims), metadata={"help": "encoder MLP widths (the decoder mirrors them)"}
    )
    rqvae_epochs: int = field(
        default=DEFAULT_RQVAE_EPOCHS, metadata={"help": "pre-training epochs (the lowest-collision epoch is kept)"}
    )

    def rqvae_config(self, semantic_dim: int) -> RQVAEConfig:
        """The :class:`~hf_genrec.RQVAEConfig` of an RQ-VAE over ``semantic_dim``-d item embeddings."""
        return RQVAEConfig(
            semantic_dim=semantic_dim,
            hidden_dims=self.rqvae_hidden_dims,
            codebook_dim=self.codebook_dim,
            num_levels=self.num_levels,
            codebook_size=self.codebook_size,
            suffix_size=self.suffix_size,
        )


@dataclasses.dataclass
class RQVAEArguments(RQVAEShapeArguments):
    """The RQ-VAE item tokenizer of a recipe: a pre-trained one, or one pre-trained here."""

    rqvae_path: str | None = field(default=None, metadata={"help": "a pre-trained RQ-VAE folder; default: pre-train one"})


@dataclasses.dataclass
class SASRecStageArguments:
    """How a recipe trains the SASRec whose item table it uses (when no embeddings are given)."""

    sasrec_recipe: str = field(
        default="reference",
        metadata={
            "choices": sorted(SASREC_RECIPES),
            "help": "'reference': a full-softmax recipe after the strongest published SASRec (query-norm blocks, "
            "dropout 0.6, 100 epochs); 'basic': a short early-stopped one",
        },
    )
    sasrec_hidden_size: int = 64
    sasrec_epochs: int | None = field(default=None, metadata={"help": "default: the recipe's (reference 100, basic 30)"})

    def sasrec_kwargs(self, **run) -> dict:
        """:func:`train_sasrec` keyword arguments: the recipe, these flags, then ``run`` (device, seed, ...)."""
        return sasrec_recipe(self.sasrec_recipe, hidden_size=self.sasrec_hidden_size, num_train_epochs=self.sasrec_epochs) | run
