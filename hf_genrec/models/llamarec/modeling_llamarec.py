"""ETEGRec's generative recommender on a decoder-only LLM backbone (LLaMA by default).

Input: item histories as code sequences ``[c0 c1 c2 c3 | c0 c1 c2 c3 | ...]`` embedded through the
model's own copy of the RQ-VAE codebooks (levels 0..L-2) or a suffix embedding (last level),
then ``scid_projector`` to the backbone width; fed as ``inputs_embeds`` (no text tokens, no vocab
resize). Output: at each target position, ``output_projector`` back to the codebook width and a
dot product with that level's codebook (weight tying), so the code loss trains the codebooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from ...utils import EmptyHistoryError
from ...utils.errors import InputError
from ..backbone import (
    BackboneFamilyPreTrainedModel,
    BackboneHolderMixin,
    BackboneSettings,
    attention_implementation,
    build_backbone,
    check_positions,
    left_padded_position_ids,
    pretrained,
)
from ..recommender import RecommenderMixin, with_rows_appended
from .configuration_llamarec import LlamaRecConfig
from .generation import CodeBeamSearchMixin
from .item_codes import codes_for_new_items


class HasCodebooks(Protocol):
    """An item tokenizer whose codebooks the recommender copies (e.g. :class:`~hf_genrec.RQVAEModel`)."""

    codebooks: nn.ModuleList
    config: PretrainedConfig

    def get_prefix_codes(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``[K, semantic_dim]`` -> ``[K, num_levels]`` quantiser codes."""
        ...

    def __call__(self, embeddings: torch.Tensor):
        """The forward pass; its output's ``reconstruction`` ``[K, semantic_dim]`` is the PSA target."""
        ...


@dataclass
class LlamaRecOutput(ModelOutput):
    """Output of :meth:`LlamaRecForCodeGeneration.forward`.

    loss: code cross-entropy (mean over every predicted code) when targets are given.
    logits: ``[B, code_length, code_vocab]`` scores of each target code (prefix mode only).
    seq_latents: ``[M, hidden]`` hidden state before each predicted item: ``M = B`` (the last
        history token) in prefix mode; with ``train_on_all_positions``, one row per item boundary.
    seq_project_latents: ``[M, codebook_dim]`` ``enc_adapter(seq_latents)``, the SIA input.
    dec_latents: ``[M, semantic_dim]`` ``dec_adapter(seq_latents)``, the PSA input.
    predicted_items: ``[M]`` the item each row of ``seq_latents`` predicts (whole-sequence mode).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    seq_latents: torch.Tensor | None = None
    seq_project_latents: torch.Tensor | None = None
    dec_latents: torch.Tensor | None = None
    predicted_items: torch.Tensor | None = None


class LlamaRecPreTrainedModel(BackboneFamilyPreTrainedModel):
    config_class = LlamaRecConfig
    base_model_prefix = "llamarec"


class LlamaRecForCodeGeneration(RecommenderMixin, BackboneHolderMixin, CodeBeamSearchMixin, LlamaRecPreTrainedModel):
    """ETEGRec recommender. See the module docstring; ``generate()`` is in :class:`CodeBeamSearchMixin`.

    Build with a random backbone from ``config.backbone_config``, or around a pretrained one with
    :meth:`from_backbone`. ``item_codes`` (buffer ``[N + 1, code_length]``, row 0 = padding) is the
    one item -> codes table: ``forward`` and ``generate`` look codes up in it (the collator passes
    item ids), and the beam-search trie is derived from it. It is saved with the model, beside the
    item map, so a reloaded model recommends the user's own item ids.
    """

    backbone_slots = {"backbone": ""}

    def __init__(self, config: LlamaRecConfig, backbone: PreTrainedModel | None = None):
        attn = attention_implementation(backbone)
        super().__init__(config)
        self.backbone = build_backbone(BackboneSettings.from_config(config), backbone)
        hidden, dim = config.hidden_size, config.codebook_dim
        self.codebooks = nn.ModuleList(nn.Embedding(config.codebook_size, dim) for _ in range(config.num_levels))
        self.suffix_embedding = nn.Embedding(config.suffix_size, dim)
        self.scid_projector = nn.Linear(dim, hidden, bias=False)
        self.output_projector = nn.Linear(hidden, dim, bias=False)
        self.enc_adapter = nn.Linear(hidden, dim)
        self.dec_adapter = nn.Linear(hidden, config.semantic_dim)
        self._new_layers = (
            *self.codebooks,
            self.suffix_embedding,
            self.scid_projector,
            self.output_projector,
            self.enc_adapter,
            self.dec_adapter,
        )
        self.register_buffer("item_codes", torch.full((config.num_items + 1, config.code_length), -1, dtype=torch.long))
        # Saved only once set (set_item_dense_vectors), so checkpoints without it load without a gap.
        dense_rows = config.num_items + 1 if config.has_dense_vectors else 0
        self.register_buffer(
            "item_dense_vectors", torch.zeros(dense_rows, config.semantic_dim), persistent=config.has_dense_vectors
        )
        self._trie, self._trie_key = None, None  # the beam-search trie, derived from item_codes on use
        self.post_init()
        self.finish_backbones({"backbone": attn})
        self.check_max_history()

    def check_max_history(self) -> None:
        """Refuse a ``config.max_history`` the backbone cannot place: a history of that many items
        plus the target's first codes (training), or the beams' codes (generation)."""
        c = self.config
        needed = c.max_history * c.code_length + c.code_length - 1
        check_positions(self.backbone.config, needed, f"max_history={c.max_history} x {c.code_length} codes")

    @classmethod
    def from_backbone(cls, backbone_name_or_path: str, dtype: torch.dtype | str = "auto", **config_kwargs):
        """Wrap a local (or hub) decoder-only checkpoint, e.g. Llama-2-7b-hf, with fresh ETEGRec layers."""
        backbone = pretrained(AutoModel, backbone_name_or_path, "backbone", dtype=dtype)
        config = LlamaRecConfig(backbone_config=backbone.config, backbone_name_or_path=backbone_name_or_path, **config_kwargs)
        # The backbone keeps its (e.g. bf16) dtype; the new, trainable layers stay fp32 so the
        # optimizer never holds bf16 master weights. Values are cast where the two meet.
        config.save_base_weights = not config.use_lora
        return cls(config, backbone=backbone)

    # ------------------------------------------------------------------- item code table
    def set_item_codes(self, codes: torch.Tensor) -> None:
        """Install the item code table: ``[N, code_length]`` (row i = item i + 1) or ``[N + 1, code_length]``."""
        codes = torch.as_tensor(codes, dtype=torch.long)
        n = self.config.num_items
        if codes.shape == (n, self.config.code_length):
            codes = torch.cat([codes.new_full((1, self.config.code_length), -1), codes])
        if codes.shape != (n + 1, self.config.code_length):
            raise InputError(
                f"item codes must be [{n}, {self.config.code_length}] (or with a padding row), got {tuple(codes.shape)}"
            )
        body = codes[1:]
        out_of_range = (body[:, :-1] >= self.config.codebook_size).any() or (body[:, -1] >= self.config.suffix_size).any()
        if (body < 0).any() or out_of_range:
            raise InputError("item codes out of range for this model's codebooks / suffix range")
        if torch.unique(body, dim=0).shape[0] != n:
            raise InputError("item codes are not unique; add the collision suffix (RQVAEModel.get_codes)")
        codes[0] = -1
        self.item_codes.copy_(codes.to(self.item_codes.device))

    @torch.no_grad()
    def set_item_dense_vectors(self, vectors: torch.Tensor) -> None:
        """Every item's vector in the PSA head's space, ``[N, semantic_dim]`` (row i = item i + 1): the
        item tokenizer's reconstruction of its semantic embedding (what PSA aligns the head with,
        e.g. ``rqvae(item_embeddings).reconstruction``). Enables ``score_mode`` "dense" / "hybrid"."""
        vectors = torch.as_tensor(vectors, dtype=torch.float32)
        want = (self.config.num_items, self.config.semantic_dim)
        if tuple(vectors.shape) != want:
            raise InputError(f"dense vectors must be {list(want)} (items x semantic_dim), got {list(vectors.shape)}")
        if not torch.isfinite(vectors).all():
            raise InputError("dense vectors contain NaN or inf")
        table = torch.cat([vectors.new_zeros(1, want[1]), vectors]).to(self.item_codes.device)
        self.register_buffer("item_dense_vectors", table, persistent=True)
        self.config.has_dense_vectors = True

    def dense_scores(self, history: torch.Tensor) -> torch.Tensor:
        """Cosine between the PSA head's output after each history and every item's dense vector:
        ``[B, H]`` item ids -> ``[B, N + 1]`` (column 0 = -inf)."""
        if not self.config.has_dense_vectors:
            raise InputError("dense scoring needs the items' dense vectors: call set_item_dense_vectors first")
        query = F.normalize(self.forward_codes(**self.code_inputs(history)).dec_latents.float(), dim=-1)
        scores = query @ F.normalize(self.item_dense_vectors, dim=-1).t()
        scores[:, 0] = float("-inf")
        return scores

    add_item_inputs = ("item_embeddings", "item_tokenizer", "codes", "dense_vectors")

    @torch.no_grad()
    def _append_items(
        self,
        count: int,
        item_embeddings: torch.Tensor | None = None,
        item_tokenizer: HasCodebooks | None = None,
        codes: torch.Tensor | None = None,
        dense_vectors: torch.Tensor | None = None,
    ) -> None:
        """New items' codes: from their semantic embeddings ``[K, semantic_dim]`` (the kind the
        catalogue was coded from, e.g. text embeddings, or ``[collaborative ; text]`` for text-aware
        codes) through ``item_tokenizer`` (the RQ-VAE saved beside the model, in
        ``<checkpoint>/item_tokenizer``), or given as ``codes`` ``[K, num_levels]`` (a suffix is
        added) / ``[K, code_length]``. A collision takes the first free suffix of its prefix; the
        code table and so the beam-search trie grow, the known items keep their codes. Only the
        codebook shapes can be checked: pass the tokenizer saved with this model (after alternating
        training its codebooks differ from the pre-trained RQ-VAE's)."""
        if (item_embeddings is None) == (codes is None):
            raise InputError(
                "give either the new items' semantic embeddings (item_embeddings, with item_tokenizer) or their codes"
            )
        if codes is None:
            if item_tokenizer is None:
                raise InputError(
                    "coding new items from semantic embeddings needs the RQ-VAE that coded the catalogue: pass "
                    "item_tokenizer=RQVAEModel.from_pretrained('<checkpoint>/item_tokenizer')"
                )
            self._check_codebooks(item_tokenizer)
            item_embeddings = torch.as_tensor(item_embeddings, dtype=torch.float32)
            if item_embeddings.dim() != 2 or item_embeddings.shape[0] != count:
                raise InputError(f"item_embeddings must be [{count}, semantic_dim], one row per new item, "
                                 f"got {tuple(item_embeddings.shape)}")
            was_training = item_tokenizer.training
            item_tokenizer.eval()  # no dropout in the encoder: the codes the catalogue got
            try:
                codes = item_tokenizer.get_prefix_codes(item_embeddings)  # checks the width and NaN
            finally:
                item_tokenizer.train(was_training)
        codes = torch.as_tensor(codes, dtype=torch.long)
        if codes.dim() != 2 or codes.shape[0] != count:
            raise InputError(f"codes must have one row per new item ({count}), got shape {tuple(codes.shape)}")
        new = codes_for_new_items(self.item_codes[1:], codes, self.config.suffix_size)
        prefix, suffix = new[:, :-1], new[:, -1]
        if (new < 0).any() or (prefix >= self.config.codebook_size).any() or (suffix >= self.config.suffix_size).any():
            raise InputError(
                f"new item codes out of range: codes must be in 0..{self.config.codebook_size - 1}, "
                f"suffixes in 0..{self.config.suffix_size - 1}"
            )
        dense = None
        if self.config.has_dense_vectors:  # the new items need vectors of the dense score too
            if dense_vectors is None and item_embeddings is not None:
                was_training = item_tokenizer.training
                item_tokenizer.eval()
                try:
                    dense_vectors = item_tokenizer(item_embeddings).reconstruction
                finally:
                    item_tokenizer.train(was_training)
            if dense_vectors is None:
                raise InputError("this model scores items densely too: give dense_vectors [K, semantic_dim] with the codes")
            dense = torch.as_tensor(dense_vectors, dtype=torch.float32)
            if tuple(dense.shape) != (count, self.config.semantic_dim) or not torch.isfinite(dense).all():
                raise InputError(f"dense_vectors must be [{count}, {self.config.semantic_dim}] finite values")
        elif dense_vectors is not None:
            raise InputError("this model has no dense vectors (set_item_dense_vectors) to add to")
        self.item_codes = with_rows_appended(self.item_codes, new)
        if dense is not None:
            self.item_dense_vectors = with_rows_appended(self.item_dense_vectors, dense)
        self._trie = None  # derived from the table; rebuilt on the next search

    def codes_for_items(self, item_ids: torch.Tensor, allow_padding: bool = False) -> torch.Tensor:
        """``[...]`` item ids -> ``[..., code_length]`` codes from the one code table; unknown ids raise.

        ``allow_padding``: id 0 (left padding of a history) maps to a row of -1 codes.
        """
        item_ids = torch.as_tensor(item_ids, device=self.item_codes.device)
        self.check_item_ids(item_ids, allow_padding)
        return self.item_codes[item_ids]

    def code_inputs(self, history: torch.Tensor, targets: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The code sequence the backbone reads, built from item ids with the model's code table.

        Args:
            history: ``[B, H]`` item ids, oldest first, left padded with 0.
            targets: ``[B]`` next items; when given, their first ``code_length - 1`` codes follow the
                history (teacher forcing) and ``labels`` holds all their codes.
        Returns (``T = L * H`` without targets, ``L * H + L - 1`` with them, ``L = code_length``):
            input_ids ``[B, T]`` codes, left padded with -1; attention_mask ``[B, T]``;
            seq_end_positions ``[B]`` index of the last history token; and with targets
            target_positions ``[B, L]`` (``seq_end .. seq_end + L - 1``: position p predicts p + 1)
            and labels ``[B, L]``.
        """
        if history.dim() != 2:
            raise InputError(f"history must be [batch, items], got shape {tuple(history.shape)}")
        if history.shape[1] == 0 or (history.shape[0] and not (history > 0).any(1).all()):
            raise EmptyHistoryError("a history is empty; at least one item is needed")
        length = self.config.code_length
        input_ids = self.codes_for_items(history, allow_padding=True).flatten(1)
        bsz = history.shape[0]
        out = {}
        if targets is not None:
            labels = self.codes_for_items(targets)
            input_ids = torch.cat([input_ids, labels[:, : length - 1]], 1)
            out["labels"] = labels
        seq_end = history.shape[1] * length - 1
        out.update(
            input_ids=input_ids,
            attention_mask=(input_ids >= 0).long(),
            seq_end_positions=torch.full((bsz,), seq_end, dtype=torch.long, device=input_ids.device),
        )
        if targets is not None:
            out["target_positions"] = (seq_end + torch.arange(length, device=input_ids.device)).expand(bsz, -1)
        return out

    # ----------------------------------------------------------------- codebook copies
    def copy_codebooks_from(self, rqvae: HasCodebooks) -> None:
        """Overwrite this model's codebooks with the tokenizer's (after a tokenizer phase)."""
        self._check_codebooks(rqvae)
        with torch.no_grad():
            for mine, theirs in zip(self.codebooks, rqvae.codebooks):
                mine.weight.copy_(theirs.weight.to(mine.weight))

    def copy_codebooks_to(self, rqvae: HasCodebooks) -> None:
        """Overwrite the tokenizer's codebooks with this model's (after a recommender phase)."""
        self._check_codebooks(rqvae)
        with torch.no_grad():
            for mine, theirs in zip(self.codebooks, rqvae.codebooks):
                theirs.weight.copy_(mine.weight.to(theirs.weight))

    def _check_codebooks(self, rqvae: HasCodebooks) -> None:
        c = rqvae.config
        if (c.num_levels, c.codebook_size, c.codebook_dim) != (
            self.config.num_levels,
            self.config.codebook_size,
            self.config.codebook_dim,
        ):
            raise InputError(
                f"RQ-VAE codebooks ({c.num_levels} x {c.codebook_size} x {c.codebook_dim}) do not match the "
                f"recommender ({self.config.num_levels} x {self.config.codebook_size} x {self.config.codebook_dim})"
            )

    # ---------------------------------------------------------------------- embeddings
    position_ids_from_mask = staticmethod(left_padded_position_ids)

    def embed_codes(self, codes: torch.Tensor, levels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Soft embedding of codes ``[B, T]`` at levels ``[B, T]`` -> ``[B, T, hidden]`` (masked entries -> 0)."""
        n, k = self.config.num_levels, self.config.codebook_size
        table = torch.cat([*(b.weight for b in self.codebooks), self.suffix_embedding.weight])
        flat = torch.where(levels < n, levels * k + codes, n * k + codes).clamp_min(0)
        emb = self.scid_projector(F.embedding(flat, table).to(self.scid_projector.weight.dtype))
        if mask is not None:
            emb = emb * mask.unsqueeze(-1).to(emb.dtype)
        return emb.to(self.backbone_dtype)

    @property
    def backbone_dtype(self) -> torch.dtype:
        """Dtype the backbone computes in (its input embedding's); ``inputs_embeds`` are cast to it."""
        return self.backbone_compute_dtype("backbone")

    @property
    def dtype(self) -> torch.dtype:
        # The dtype of what trains (the heads; also what save_pretrained records), not of a frozen bf16
        # backbone whose first weight would otherwise make from_pretrained load the fp32 layers as bf16.
        return self.output_projector.weight.dtype

    def level_logits(self, hidden: torch.Tensor, level: int) -> torch.Tensor:
        """Scores of every code of ``level`` from hidden states ``[..., hidden]`` -> ``[..., code_vocab]``."""
        query = self.output_projector(hidden.to(self.dtype))
        book = self.codebooks[level] if level < self.config.num_levels else self.suffix_embedding
        logits = query @ book.weight.to(query.dtype).t()
        pad = self.config.code_vocab - logits.shape[-1]
        return F.pad(logits, (0, pad), value=float("-inf")) if pad else logits

    # -------------------------------------------------------------------------- forward
    def forward(self, history: torch.Tensor, targets: torch.Tensor | None = None, **kwargs) -> LlamaRecOutput:
        """Teacher-forced pass over a batch of histories (item ids; codes come from ``item_codes``).

        Args:
            history: ``[B, H]`` item ids, oldest first, left padded with 0 (what
                :class:`~hf_genrec.data.DataCollatorForRecommendation` builds).
            targets: ``[B]`` next items. With them, ``loss`` is the code cross-entropy (mean over
                users and levels) and ``logits`` scores each target code; without them only the
                sequence latents are returned.
        """
        if targets is not None and self.config.train_on_all_positions:
            return self.forward_all_positions(history, targets)
        return self.forward_codes(**self.code_inputs(history, targets))

    def forward_all_positions(self, history: torch.Tensor, targets: torch.Tensor) -> LlamaRecOutput:
        """Whole-sequence training: one causal pass over the codes of ``history + [targets]`` (``[B, H]``
        item ids left padded with 0, ``[B]``); every item after a row's first is predicted, code by
        code, from everything before it (the next-token objective of a decoder-only LM).

        Returns ``loss`` (mean over every predicted code) and, per item boundary, ``seq_latents`` /
        ``seq_project_latents`` / ``dec_latents`` ``[M, ...]`` with ``predicted_items`` ``[M]``.
        """
        if history.dim() != 2 or targets.shape != history.shape[:1]:
            raise InputError(f"expected history [B, H] and targets [B], got {tuple(history.shape)} and {tuple(targets.shape)}")
        self.check_item_ids(targets, allow_padding=False)
        seq = torch.cat([history, targets.unsqueeze(1).to(history)], 1)  # [B, S]
        length = self.config.code_length
        codes = self.codes_for_items(seq, allow_padding=True).flatten(1)  # [B, S * L]
        input_ids, labels = codes[:, :-1], codes[:, 1:]
        attention_mask = (input_ids >= 0).long()
        if not attention_mask.any(1).all():
            raise EmptyHistoryError("a history is empty; at least one item is needed")
        position_ids = self.position_ids_from_mask(attention_mask)
        embeds = self.embed_codes(input_ids, position_ids % length, attention_mask)
        hidden = self.backbone(
            inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state  # [B, S * L - 1, H]
        # Label token q + 1 belongs to item (q + 1) // L; it is predicted when that item and the one
        # before it are real (the first item of a row has no history to be predicted from).
        item_of_label = torch.arange(1, codes.shape[1], device=codes.device) // length
        real = seq > 0
        predicted = real[:, item_of_label] & real[:, (item_of_label - 1).clamp_min(0)] & (item_of_label > 0)
        level_of_label = torch.arange(1, codes.shape[1], device=codes.device) % length
        total = predicted.sum()
        if total == 0:
            raise InputError("no row has two items: nothing to predict (whole-sequence rows need a history)")
        loss = hidden.new_zeros((), dtype=torch.float32)
        for lvl in range(length):
            at = predicted & (level_of_label == lvl)
            if at.any():
                logits = self.level_logits(hidden[at], lvl).float()
                loss = loss + F.cross_entropy(logits, labels[at], reduction="sum")
        boundary = predicted & (level_of_label == 0)  # the last code of an item, before the next one
        seq_latents = hidden[boundary].to(self.dtype)
        rows, cols = boundary.nonzero(as_tuple=True)
        return LlamaRecOutput(
            loss=loss / total,
            seq_latents=seq_latents,
            seq_project_latents=self.enc_adapter(seq_latents),
            dec_latents=self.dec_adapter(seq_latents),
            predicted_items=seq[rows, item_of_label[cols]],
        )

    def forward_codes(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        seq_end_positions: torch.Tensor,
        target_positions: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> LlamaRecOutput:
        """The same pass on code sequences laid out by :meth:`code_inputs` (shapes there)."""
        if input_ids.shape != attention_mask.shape:
            raise ValueError(f"input_ids {tuple(input_ids.shape)} and attention_mask {tuple(attention_mask.shape)} differ")
        position_ids = self.position_ids_from_mask(attention_mask)
        levels = position_ids % self.config.code_length
        embeds = self.embed_codes(input_ids, levels, attention_mask)
        hidden = self.backbone(
            inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        seq_latents = hidden[rows, seq_end_positions].to(self.dtype)
        logits = loss = None
        if target_positions is not None:
            target_hidden = hidden[rows.unsqueeze(1), target_positions]  # [B, L, H]
            logits = torch.stack(
                [self.level_logits(target_hidden[:, lvl], lvl) for lvl in range(self.config.code_length)], 1
            )
            if labels is not None:
                loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten())
        return LlamaRecOutput(
            loss=loss,
            logits=logits,
            seq_latents=seq_latents,
            seq_project_latents=self.enc_adapter(seq_latents),
            dec_latents=self.dec_adapter(seq_latents),
        )
