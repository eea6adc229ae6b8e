"""HLLM: an item LLM turns each item's text into an embedding, a user LLM reads a history of item
embeddings and predicts the next one (ByteDance, "HLLM: Enhancing Sequential Recommendations via
Hierarchical Large Language Models for Item and User Modeling", arXiv 2409.12740; official code
github bytedance/HLLM).

Item LLM: ``item_prompt + "title: ...description: ..."`` -> the last hidden state of an appended
learnable item token (decoders) or the mean over the tokens (encoders such as MiniLM). User LLM:
a causal decoder over the item embeddings (``inputs_embeds``). Items are scored by the cosine
between the user LLM's output and each item's embedding; training uses NCE with a learnable
logit scale (or a full-catalogue softmax). ``mode="light"`` freezes the item side and reads a cache
of every item's embedding; ``mode="end_to_end"`` trains the item LLM on the batch's items and
refreshes the cache before each evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from ...compat import tensor_version
from ...utils import EmptyHistoryError
from ...utils.errors import InputError
from ..backbone import (
    BackboneFamilyPreTrainedModel,
    BackboneHolderMixin,
    attention_implementation,
    build_backbone,
    check_positions,
    left_padded_position_ids,
    pretrained,
)
from ..recommender import RecommendationOutput, RecommenderMixin, top_k_from_scores, with_rows_appended
from .configuration_hllm import HLLMConfig
from .tokenization_hllm import tokenize_item_texts


@dataclass
class HLLMOutput(ModelOutput):
    """loss: NCE or CE over the trained positions. user_embeddings: ``[B, D]`` the user LLM's output
    at the last position (the next-item query, unnormalised). nce_negatives: mean negatives kept per
    position after the false-negative mask (a diagnostic, as the official ``nce_samples``)."""

    loss: torch.Tensor | None = None
    user_embeddings: torch.Tensor | None = None
    nce_negatives: torch.Tensor | None = None


class HLLMPreTrainedModel(BackboneFamilyPreTrainedModel):
    config_class = HLLMConfig
    base_model_prefix = "hllm"


class HLLMForRecommendation(RecommenderMixin, BackboneHolderMixin, HLLMPreTrainedModel):
    """See the module docstring. Give the catalogue's text with :meth:`set_item_texts` (or, in light
    mode, precomputed item embeddings with :meth:`set_item_embeddings`); both are saved with the
    model, so a reloaded model recommends by itself."""

    def __init__(self, config: HLLMConfig, item_llm: PreTrainedModel | None = None, user_llm: PreTrainedModel | None = None):
        attn = {"item_llm": attention_implementation(item_llm), "user_llm": attention_implementation(user_llm)}
        super().__init__(config)
        self.backbone_slots = {"user_llm": "user_"} | ({"item_llm": "item_"} if config.has_item_llm else {})
        if config.has_item_llm:
            self.item_llm = build_backbone(self.backbone_settings("item_llm"), item_llm)
            self.item_llm.config.use_cache = False
        self.user_llm = build_backbone(self.backbone_settings("user_llm"), user_llm)
        d_item, d_user = config.item_embedding_dim, config.user_hidden_size
        uses_item_token = config.item_pooling == "item_token"
        self.item_emb_token = nn.Parameter(torch.zeros(1, d_item)) if uses_item_token else None
        self.item_projection = nn.Linear(d_item, d_user) if d_item != d_user else None
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init)))
        # Bucket 0: no gap known (first item of a history, padding).
        self.time_embedding = nn.Embedding(config.num_time_buckets + 1, d_user) if config.num_time_buckets else None
        self.item_id_embedding = (
            nn.Embedding(config.num_items + 1, d_user, padding_idx=0) if config.item_id_embeddings else None
        )
        text_width = config.max_text_length - (1 if uses_item_token else 0)
        n = config.num_items + 1
        self.register_buffer("item_input_ids", torch.zeros(n, text_width, dtype=torch.long))
        self.register_buffer("item_text_lengths", torch.zeros(n, dtype=torch.long))
        self.register_buffer("item_embedding_cache", torch.zeros(n, d_item))
        self.register_buffer("item_cache_valid", torch.tensor(False))
        self._new_layers = tuple(
            m for m in (self.item_projection, self.time_embedding, self.item_id_embedding) if m is not None
        )
        self.post_init()
        with torch.no_grad():
            if self.item_emb_token is not None and self.item_emb_token.device.type != "meta":
                self.item_emb_token.normal_(0.0, config.initializer_range)
        self.finish_backbones(attn)
        self.check_max_history()
        # The item-side weights the cache was computed from (see item_side_fingerprint).
        self._cached_item_version: tuple | None = None
        self._cached_item_key: tuple | None = None

    @classmethod
    def from_backbones(
        cls,
        item_model_name_or_path: str | None = None,
        user_model_name_or_path: str | None = None,
        dtype: torch.dtype | str = "auto",
        **config_kwargs,
    ) -> HLLMForRecommendation:
        """Wrap local (or Hub) checkpoints: the item LLM and/or the user LLM (any ``AutoModel``)."""
        item = pretrained(AutoModel, item_model_name_or_path, "item LLM", dtype=dtype) if item_model_name_or_path else None
        user = pretrained(AutoModel, user_model_name_or_path, "user LLM", dtype=dtype) if user_model_name_or_path else None
        if item is not None:
            config_kwargs.update(item_backbone_config=item.config, item_backbone_name_or_path=item_model_name_or_path)
        if user is not None:
            config_kwargs.update(user_backbone_config=user.config, user_backbone_name_or_path=user_model_name_or_path)
        config = HLLMConfig(**config_kwargs)
        config.item_save_base_weights = not config.item_use_lora or item is None
        config.user_save_base_weights = not config.user_use_lora or user is None
        return cls(config, item_llm=item, user_llm=user)

    # ------------------------------------------------------------------- what trains when
    def freeze_backbone_bases(self) -> None:
        super().freeze_backbone_bases()
        if self.config.mode == "light" and self.config.has_item_llm:
            self.item_llm.requires_grad_(False)
            if self.item_emb_token is not None:
                self.item_emb_token.requires_grad_(False)

    def check_max_history(self) -> None:
        """Refuse a ``config.max_history`` the user LLM cannot place (one position per item)."""
        check_positions(self.user_llm.config, self.config.max_history, f"max_history={self.config.max_history}")

    def _item_side_tensors(self) -> list[torch.Tensor]:
        """What the item embeddings depend on: item texts, item-LLM weights, the item token."""
        tensors = [self.item_input_ids, self.item_text_lengths]
        if self.config.has_item_llm:
            tensors += list(self.item_llm.parameters())
        if self.item_emb_token is not None:
            tensors.append(self.item_emb_token)
        return tensors

    def _item_side_storage_key(self) -> tuple:
        # Unchanged storage and version counters mean nothing was written (any in-place write, an
        # optimizer step or load_state_dict, bumps the counter): the cheap check of every call.
        return tuple((t.data_ptr(), tensor_version(t)) for t in self._item_side_tensors())

    @torch.no_grad()
    def item_side_fingerprint(self) -> tuple:
        """A fingerprint of what the item embeddings depend on (item texts, item-LLM weights, the item
        token), by content: a float64 sum of up to 4,096 evenly spaced entries of each tensor. An
        optimizer step or a loaded checkpoint changes it; moving the model to another device keeps it
        (up to float64 rounding of the sums: at worst one recomputation)."""
        tensors = self._item_side_tensors()
        sums = [t.detach().flatten()[:: max(1, t.numel() // 4096)].double().sum().cpu() for t in tensors]
        return tuple(torch.stack(sums).tolist()) if sums else ()

    def _mark_item_cache_current(self) -> None:
        self._cached_item_version = self.item_side_fingerprint()
        self._cached_item_key = self._item_side_storage_key()

    def item_cache_outdated(self) -> bool:
        """Whether the cached item embeddings predate the current item LLM weights or item texts.
        Costs one pass over the tensors' version counters unless something was written since."""
        if not bool(self.item_cache_valid):
            return True
        if not (self.config.has_item_llm and self.has_item_texts):
            return False  # precomputed embeddings: nothing to recompute them from
        key = self._item_side_storage_key()
        if key == self._cached_item_key:
            return False
        if self._cached_item_version != self.item_side_fingerprint():
            return True
        self._cached_item_key = key  # moved or rewritten with the same content: the cache still holds
        return False

    # ---------------------------------------------------------------------- item side
    @property
    def has_item_texts(self) -> bool:
        return bool((self.item_text_lengths[1:] > 0).all())

    def set_item_texts(self, texts: Sequence[str], tokenizer) -> None:
        """Tokenise the catalogue's text with the item LLM's ``tokenizer`` and keep the token ids.

        ``texts``: ``N`` strings, text i for dense item i + 1 (``""`` for an item without text; it
        still gets an embedding). Build one item's text from fields with
        :func:`hf_genrec.data.format_item_fields`. Invalidates the cache.
        """
        if not self.config.has_item_llm:
            raise InputError("this HLLM has no item LLM (item_backbone_config=None); use set_item_embeddings")
        if len(texts) != self.config.num_items:
            raise InputError(f"got {len(texts)} item texts for a catalogue of {self.config.num_items} items")
        ids, lengths = tokenize_item_texts(texts, tokenizer, self.config.item_prompt, self.item_input_ids.shape[1])
        vocab = self.item_llm.get_input_embeddings().num_embeddings
        if int(ids.max()) >= vocab:
            raise InputError(f"the tokenizer produced token id {int(ids.max())} but the item LLM has a vocabulary of {vocab}")
        self.item_input_ids.copy_(ids.to(self.item_input_ids.device))
        self.item_text_lengths.copy_(lengths.to(self.item_text_lengths.device))
        self.item_cache_valid.fill_(False)

    @torch.no_grad()
    def set_item_embeddings(self, embeddings: torch.Tensor) -> None:
        """Use precomputed item embeddings ``[N, item_embedding_dim]`` (row i = dense item i + 1) as the
        cache, e.g. an ``.npy`` of sentence embeddings. In light mode they are what the model scores."""
        embeddings = torch.as_tensor(embeddings, dtype=torch.float32)
        want = (self.config.num_items, self.config.item_embedding_dim)
        if tuple(embeddings.shape) != want:
            raise InputError(f"item embeddings must be {list(want)} (items x item_embedding_dim), got {list(embeddings.shape)}")
        if not torch.isfinite(embeddings).all():
            raise InputError("item embeddings contain NaN or inf")
        self.item_embedding_cache[1:] = embeddings.to(self.item_embedding_cache.device)
        self.item_cache_valid.fill_(True)
        self._mark_item_cache_current()

    add_item_inputs = ("texts", "tokenizer", "item_embeddings")

    @torch.no_grad()
    def _append_items(
        self, count: int, texts: Sequence[str] | None = None, tokenizer=None, item_embeddings: torch.Tensor | None = None
    ) -> None:
        """New items from their text (``texts``: one string per new item, tokenised with the item
        LLM's ``tokenizer``, saved beside a trained checkpoint) and embedded by the item LLM; a model
        without an item LLM takes precomputed ``item_embeddings`` ``[K, item_embedding_dim]``. The
        known items' cached embeddings are kept (refreshed first if the item LLM changed)."""
        if self.config.has_item_llm:
            if item_embeddings is not None:
                raise InputError("this HLLM embeds items with its item LLM: give the new items' texts and tokenizer, "
                                 "not item_embeddings")
            if texts is None or tokenizer is None:
                raise InputError("new items need their texts and the item LLM's tokenizer (saved beside the checkpoint)")
            if isinstance(texts, str) or len(texts) != count:
                raise InputError(f"texts must be a list of {count} strings, one per new item")
            ids, lengths = tokenize_item_texts(texts, tokenizer, self.config.item_prompt, self.item_input_ids.shape[1])
            vocab = self.item_llm.get_input_embeddings().num_embeddings
            if int(ids.max()) >= vocab:
                raise InputError(f"the tokenizer produced token id {int(ids.max())} but the item LLM has a vocabulary "
                                 f"of {vocab}: is it the item LLM's tokenizer?")
            self.ensure_item_cache()
            ids, lengths = ids[1:].to(self.item_input_ids.device), lengths[1:].to(self.item_input_ids.device)
            was_training = self.item_llm.training
            self.item_llm.eval()
            try:  # embedded before any buffer grows, so a failure here leaves the model as it was
                step = self.config.item_encode_batch_size
                rows = torch.cat([self.encode_token_rows(ids[i : i + step], lengths[i : i + step])
                                  for i in range(0, count, step)])
            finally:
                self.item_llm.train(was_training)
            self.item_input_ids = with_rows_appended(self.item_input_ids, ids)
            self.item_text_lengths = with_rows_appended(self.item_text_lengths, lengths)
        else:
            if texts is not None or tokenizer is not None:
                raise InputError("this HLLM has no item LLM (precomputed item embeddings): give item_embeddings, not texts")
            if item_embeddings is None:
                raise InputError("this HLLM has no item LLM: give the new items' item_embeddings")
            if not bool(self.item_cache_valid):
                raise InputError("this HLLM has no item embeddings yet: set the catalogue's with set_item_embeddings first")
            rows = torch.as_tensor(item_embeddings, dtype=torch.float32)
            if tuple(rows.shape) != (count, self.config.item_embedding_dim):
                raise InputError(f"item_embeddings must be [{count}, {self.config.item_embedding_dim}] (new items x "
                                 f"item_embedding_dim), got {list(rows.shape)}")
            if not torch.isfinite(rows).all():
                raise InputError("item embeddings contain NaN or inf")
            width = self.item_input_ids.shape[1]
            self.item_input_ids = with_rows_appended(self.item_input_ids, self.item_input_ids.new_zeros(count, width))
            self.item_text_lengths = with_rows_appended(self.item_text_lengths, self.item_text_lengths.new_zeros(count))
        if self.item_id_embedding is not None:  # nothing is known of a new item but its content
            grown = nn.Embedding(self.config.num_items + count + 1, self.config.user_hidden_size, padding_idx=0)
            grown = grown.to(self.item_id_embedding.weight)
            grown.weight.copy_(torch.cat([self.item_id_embedding.weight, grown.weight.new_zeros(count, grown.weight.shape[1])]))
            grown.weight.requires_grad_(self.item_id_embedding.weight.requires_grad)
            self.item_id_embedding = grown
            self._new_layers = tuple(
                m for m in (self.item_projection, self.time_embedding, self.item_id_embedding) if m is not None
            )
        self.item_embedding_cache = with_rows_appended(self.item_embedding_cache, rows)
        self._mark_item_cache_current()

    def encode_items(self, item_ids: torch.Tensor) -> torch.Tensor:
        """Run the item LLM: ``[M]`` dense ids (>= 1) -> ``[M, item_embedding_dim]`` fp32 embeddings
        (with gradients when the item side trains)."""
        lengths = self.item_text_lengths[item_ids]
        if (lengths == 0).any():
            raise InputError(f"item {int(item_ids[lengths == 0][0])} has no tokenized text; call set_item_texts first")
        return self.encode_token_rows(self.item_input_ids[item_ids], lengths)

    def encode_token_rows(self, token_rows: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The item LLM over left-padded token rows ``[M, max_text_length']`` with ``lengths`` ``[M]``
        real tokens each (>= 1) -> ``[M, item_embedding_dim]`` fp32 (what :meth:`encode_items` runs on
        the stored rows)."""
        width = int(lengths.max())
        ids = token_rows[:, -width:]
        mask = torch.arange(width, device=ids.device) >= (width - lengths).unsqueeze(1)  # [M, T] left padded
        embeds = self.item_llm.get_input_embeddings()(ids)
        if self.item_emb_token is not None:
            token = self.item_emb_token.to(embeds.dtype).expand(len(ids), 1, -1)
            embeds = torch.cat([embeds, token], dim=1)
            mask = F.pad(mask, (0, 1), value=True)
        # Positions count from each text's first real token, so an item's embedding does not
        # depend on how much padding its batch needed.
        position_ids = left_padded_position_ids(mask)
        hidden = self.item_llm(inputs_embeds=embeds, attention_mask=mask.long(), position_ids=position_ids).last_hidden_state
        hidden = hidden.float()
        if self.item_emb_token is not None:
            return hidden[:, -1]
        weights = mask.unsqueeze(-1).float()
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    @torch.no_grad()
    def compute_item_embeddings(self, batch_size: int | None = None, progress: bool = False) -> torch.Tensor:
        """Every item's embedding ``[N + 1, item_embedding_dim]`` (row 0 = zeros), batched over items of
        similar text length, in eval mode (no dropout)."""
        if not self.config.has_item_llm or not self.has_item_texts:
            raise InputError("computing item embeddings needs an item LLM and the items' text (set_item_texts)")
        batch_size = batch_size or self.config.item_encode_batch_size
        order = torch.argsort(self.item_text_lengths[1:], stable=True) + 1
        out = torch.zeros(self.config.num_items + 1, self.config.item_embedding_dim, device=self.item_input_ids.device)
        was_training = self.item_llm.training
        self.item_llm.eval()
        try:
            for chunk in tqdm(order.split(batch_size), desc="item embeddings", disable=not progress):
                out[chunk] = self.encode_items(chunk)
        finally:
            self.item_llm.train(was_training)
        return out

    def refresh_item_cache(self, batch_size: int | None = None, progress: bool = False) -> None:
        """Recompute the cache of every item's embedding with the current item LLM."""
        self.item_embedding_cache.copy_(self.compute_item_embeddings(batch_size, progress))
        self.item_cache_valid.fill_(True)
        self._mark_item_cache_current()

    def ensure_item_cache(self, progress: bool = False) -> None:
        """Fill (or, after the item LLM changed, refresh) the cache when it is out of date."""
        if not self.item_cache_outdated():
            return
        if self.config.has_item_llm and self.has_item_texts:
            self.refresh_item_cache(progress=progress)
        elif not bool(self.item_cache_valid):
            raise InputError("this HLLM has no item embeddings: call set_item_texts(texts, tokenizer) or set_item_embeddings()")

    def project(self, item_embeddings: torch.Tensor, item_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Item embeddings ``[..., item_embedding_dim]`` -> the user LLM's space ``[..., hidden]``; with
        ``item_id_embeddings``, plus the id embedding of ``item_ids`` ``[...]`` (the items' dense ids)."""
        out = self.item_projection(item_embeddings) if self.item_projection is not None else item_embeddings
        if self.item_id_embedding is not None:
            if item_ids is None:
                raise InputError("this HLLM adds per-item id embeddings: project() needs the items' ids")
            out = out + self.item_id_embedding(item_ids)
        return out

    def item_vectors(self, item_ids: torch.Tensor) -> torch.Tensor:
        """``[U]`` dense ids (0 = padding allowed) -> ``[U, hidden]``: freshly encoded while the item
        LLM trains (end to end, training), else read from the cache."""
        if self.config.mode == "end_to_end" and self.training:
            real = item_ids > 0
            raw = torch.zeros(len(item_ids), self.config.item_embedding_dim, device=item_ids.device)
            raw = raw.index_put((real.nonzero(as_tuple=True)[0],), self.encode_items(item_ids[real]))
        else:
            self.ensure_item_cache()
            raw = self.item_embedding_cache[item_ids]
        return self.project(raw, item_ids)

    # ---------------------------------------------------------------------- user side
    def time_buckets(self, timestamps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` timestamps (seconds) -> ``[B, L]`` bucket of the gap since the previous item:
        ``1 + floor(log2(1 + minutes))`` capped at ``num_time_buckets``; 0 for a first item or padding."""
        gap = (timestamps[:, 1:] - timestamps[:, :-1]).clamp_min(0) / 60.0
        buckets = 1 + torch.floor(torch.log2(1 + gap)).long().clamp(0, self.config.num_time_buckets - 1)
        known = mask[:, 1:] & mask[:, :-1]
        return F.pad(torch.where(known, buckets, torch.zeros_like(buckets)), (1, 0))

    def _time_input(self, history_timestamps: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor | None:
        if self.time_embedding is None:
            return None
        if history_timestamps is None:
            raise InputError("this HLLM uses time features (num_time_buckets > 0): pass history_timestamps [B, H]")
        if history_timestamps.shape != mask.shape:
            raise InputError(f"history_timestamps {tuple(history_timestamps.shape)} must match history {tuple(mask.shape)}")
        return self.time_embedding(self.time_buckets(history_timestamps.to(torch.float64), mask))

    def user_states(
        self, item_vectors: torch.Tensor, mask: torch.Tensor, time_vectors: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The user LLM over a left-padded sequence of item vectors ``[B, L, hidden]`` (``mask`` ``[B, L]``;
        ``time_vectors`` ``[B, L, hidden]`` added when time features are on) -> ``[B, L, hidden]`` fp32
        (position t predicts the item after t)."""
        if time_vectors is not None:
            item_vectors = item_vectors + time_vectors
        position_ids = left_padded_position_ids(mask)
        out = self.user_llm(
            inputs_embeds=item_vectors.to(self.backbone_compute_dtype("user_llm")),
            attention_mask=mask.long(),
            position_ids=position_ids,
            use_cache=False,
        )
        return out.last_hidden_state.float()

    def _check_history(self, history: torch.Tensor) -> None:
        if history.dim() != 2 or history.shape[1] == 0 or not (history > 0).any(1).all():
            raise EmptyHistoryError("a history is empty; at least one item is needed")
        self.check_item_ids(history, allow_padding=True)

    def user_embedding(self, history: torch.Tensor, history_timestamps: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, H]`` left-padded histories -> the next-item query ``[B, hidden]`` (unnormalised)."""
        self._check_history(history)
        uniq, inverse = torch.unique(history, return_inverse=True)
        vectors = self.item_vectors(uniq)[inverse]
        mask = history > 0
        return self.user_states(vectors, mask, self._time_input(history_timestamps, mask))[:, -1]

    def logit_scale_value(self) -> torch.Tensor:
        """exp(logit_scale), the log clamped in place to [0, log(logit_scale_max)] as the official code does."""
        with torch.no_grad():
            self.logit_scale.clamp_(0.0, math.log(self.config.logit_scale_max))
        return self.logit_scale.exp()

    def forward(
        self,
        history: torch.Tensor,
        targets: torch.Tensor | None = None,
        history_timestamps: torch.Tensor | None = None,
        **kwargs,
    ) -> HLLMOutput:
        """``history`` ``[B, H]`` (dense ids, left padded with 0), ``targets`` ``[B]`` the next item,
        ``history_timestamps`` ``[B, H]`` (seconds; needed with time features).

        With ``train_on_all_positions`` (the official objective; feed whole training sequences:
        history = sequence[:-1], target = sequence[-1]) every position predicts its successor;
        otherwise only the last position predicts ``targets``.
        """
        self._check_history(history)
        if targets is None:
            return HLLMOutput(user_embeddings=self.user_embedding(history, history_timestamps))
        self.check_item_ids(targets, allow_padding=False)
        seq = torch.cat([history, targets.unsqueeze(1)], dim=1)  # [B, H + 1]
        inputs, labels = seq[:, :-1], seq[:, 1:]
        if self.config.train_on_all_positions:
            trained = (inputs > 0) & (labels > 0)
        else:
            trained = torch.zeros_like(labels, dtype=torch.bool)
            trained[:, -1] = True
        sampled = torch.empty(0, dtype=torch.long, device=seq.device)
        if self.config.loss == "nce" and self.config.num_negatives > 0:
            sampled = torch.randint(1, self.config.num_items + 1, (self.config.num_negatives,), device=seq.device)
        uniq, inverse = torch.unique(torch.cat([seq.flatten(), sampled]), return_inverse=True)
        vectors = self.item_vectors(uniq)  # [U, hidden]
        seq_index = inverse[: seq.numel()].view_as(seq)
        states = self.user_states(vectors[seq_index[:, :-1]], inputs > 0, self._time_input(history_timestamps, inputs > 0))
        query = F.normalize(states[trained], dim=-1)  # [M, hidden]
        scale = self.logit_scale_value()
        if self.config.loss == "ce":
            table = F.normalize(self.item_vectors(torch.arange(self.config.num_items + 1, device=seq.device)), dim=-1)
            logits = (query @ table.t()) * scale
            logits[:, 0] = float("-inf")
            loss = F.cross_entropy(logits, labels[trained])
            return HLLMOutput(loss=loss, user_embeddings=states[:, -1])
        target_index = seq_index[:, 1:][trained]  # rows of `vectors`
        negative_index = inverse[seq.numel() :]
        if self.config.in_batch_negatives:
            negative_index = torch.cat([negative_index, torch.unique(target_index)])
        if negative_index.numel() == 0:
            raise InputError("NCE needs negatives: set num_negatives > 0 or in_batch_negatives=True")
        positives = F.normalize(vectors[target_index], dim=-1)
        negatives = F.normalize(vectors[negative_index], dim=-1)
        pos_logits = (query * positives).sum(-1, keepdim=True)
        neg_logits = query @ negatives.t()
        # A negative (nearly) identical to the target is likely the target itself or a duplicate
        # item; scoring it as wrong would punish the right answer.
        with torch.no_grad():
            false_negative = (positives @ negatives.t()) > self.config.nce_threshold
        if false_negative.all():
            raise InputError(
                f"every NCE negative is within cosine {self.config.nce_threshold} of its target, so the loss is 0 and "
                "nothing learns: the item embeddings are (nearly) identical (a random-init item LLM in light mode?)"
            )
        neg_logits = neg_logits.masked_fill(false_negative, torch.finfo(neg_logits.dtype).min)
        logits = torch.cat([pos_logits, neg_logits], dim=1) * scale
        loss = F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))
        kept = (~false_negative).sum(1).float().mean()
        return HLLMOutput(loss=loss, user_embeddings=states[:, -1], nce_negatives=kept)

    # --------------------------------------------------------------------- the contract
    @torch.no_grad()
    def all_item_scores(self, history: torch.Tensor, history_timestamps: torch.Tensor | None = None) -> torch.Tensor:
        """Cosine between each user's query and every item, ``[B, N + 1]`` (column 0 = -inf)."""
        self.ensure_item_cache()
        query = F.normalize(self.user_embedding(history, history_timestamps), dim=-1)
        every_item = torch.arange(self.item_embedding_cache.shape[0], device=self.item_embedding_cache.device)
        table = F.normalize(self.project(self.item_embedding_cache, every_item), dim=-1)
        scores = query @ table.t()
        scores[:, 0] = float("-inf")
        return scores

    @torch.no_grad()
    def top_k_items(
        self,
        history: torch.Tensor,
        k: int,
        history_timestamps: torch.Tensor | None = None,
        exclude_items: torch.Tensor | None = None,
    ) -> RecommendationOutput:
        """Best ``k`` items (full ranking by cosine) for ``[B, H]`` left-padded histories (and their
        ``history_timestamps`` when the model uses time features), leaving out ``exclude_items`` ``[B, E]``.
        The model reads the last ``config.max_history`` items."""
        history, history_timestamps = self.readable_history(history, history_timestamps)
        return top_k_from_scores(self.all_item_scores(history, history_timestamps), k, exclude_items)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        model = super().from_pretrained(*args, **kwargs)
        if bool(model.item_cache_valid):
            # save_pretrained refreshed the cache from the saved weights: it matches what was loaded.
            model._mark_item_cache_current()
        return model

    def save_pretrained(self, save_directory, *args, **kwargs):
        # The saved cache must match the saved item LLM, so a reloaded model recommends as this one.
        if self.config.has_item_llm and self.has_item_texts and self.item_cache_outdated():
            self.refresh_item_cache()
        return super().save_pretrained(save_directory, *args, **kwargs)
