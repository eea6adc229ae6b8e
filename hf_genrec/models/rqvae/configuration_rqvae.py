"""Configuration of the RQ-VAE item tokenizer."""

from __future__ import annotations

from transformers import PretrainedConfig

from ..recommender import refuse_renamed_fields, require_count, require_positive


class RQVAEConfig(PretrainedConfig):
    """Configuration of :class:`RQVAEModel`, the residual-quantised VAE that turns an item's
    semantic embedding into ``num_levels`` codes (plus a collision suffix, see ``get_codes``).

    Args:
        semantic_dim: dimension of the input item (semantic) embedding (256 collaborative, 768 text,
            1024 both).
        hidden_dims: encoder MLP widths between ``semantic_dim`` and ``codebook_dim``; the decoder mirrors them.
        codebook_dim: dimension of the latent and of every code vector.
        num_levels: number of residual codebooks.
        codebook_size: codes per codebook.
        suffix_size: how many items may share one ``num_levels``-code prefix (range of the suffix code).
        beta: weight of the commitment term.
        dropout: dropout inside the MLPs.
        kmeans_iters: Lloyd iterations of the k-means codebook initialisation.
    """

    model_type = "genrec_rqvae"

    def __init__(
        self,
        semantic_dim: int = 256,
        hidden_dims: list[int] | None = None,
        codebook_dim: int = 128,
        num_levels: int = 3,
        codebook_size: int = 256,
        suffix_size: int = 256,
        beta: float = 0.25,
        dropout: float = 0.0,
        kmeans_iters: int = 50,
        **kwargs,
    ):
        refuse_renamed_fields("RQVAEConfig", kwargs, in_dim="semantic_dim")
        self.semantic_dim = semantic_dim
        self.hidden_dims = list(hidden_dims) if hidden_dims is not None else [512, 256]
        require_positive(
            "RQVAEConfig", semantic_dim=self.semantic_dim, codebook_dim=codebook_dim, num_levels=num_levels,
            codebook_size=codebook_size, suffix_size=suffix_size,
            **{f"hidden_dims[{i}]": d for i, d in enumerate(self.hidden_dims)},
        )
        require_count("RQVAEConfig", kmeans_iters=kmeans_iters)
        self.codebook_dim = codebook_dim
        self.num_levels = num_levels
        self.codebook_size = codebook_size
        self.suffix_size = suffix_size
        self.beta = beta
        self.dropout = dropout
        self.kmeans_iters = kmeans_iters
        super().__init__(**kwargs)

    @property
    def code_length(self) -> int:
        """Codes per item id: the quantiser levels plus the collision suffix."""
        return self.num_levels + 1
