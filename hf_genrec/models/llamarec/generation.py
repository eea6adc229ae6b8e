"""Constrained beam search over item codes with a shared-prefix KV cache.

The history is prefilled once per user. The beams of a user do not copy that prefix: their
new tokens are appended to the *same* cache row, and a 4-D attention mask lets each beam token
see the history plus its own ancestors only (tree attention). So a user's cache holds
``T + (L - 1) * K`` tokens instead of ``K * (T + L - 1)``, and nothing is re-run. A prefix trie
keeps every beam on the code sequence of a real item.
"""

from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache

from ...compat import tensor_version
from ...utils import is_sharded
from ...utils.errors import InputError
from ..recommender import RecommendationOutput, top_k_from_scores
from .trie import CodeTrie


class CodeBeamSearchMixin:
    """``generate()`` and the family's ``top_k_items()`` for :class:`LlamaRecForCodeGeneration`.

    Scores are the sum over levels of log p(code | history, previous codes).
    """

    @property
    def trie(self) -> CodeTrie:
        """The prefix trie of ``item_codes``, rebuilt whenever the table changed (any in-place write,
        e.g. ``set_item_codes`` or a checkpoint load, bumps the tensor's version) or moved."""
        key = (tensor_version(self.item_codes), self.item_codes.data_ptr(), self.item_codes.device)
        if self._trie is None or self._trie_key != key:
            self._trie = CodeTrie(self.item_codes, self.config.code_vocab).to(self.item_codes.device)
            self._trie_key = key
        return self._trie

    def can_generate(self) -> bool:  # our generate() is not GenerationMixin's
        return False

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        num_beams: int | None = None,
        num_return_sequences: int | None = None,
        chunk_size: int | None = None,
        exclude_items: torch.Tensor | None = None,
    ) -> RecommendationOutput:
        """Recommend items for left-padded history codes.

        Args:
            input_ids: ``[B, T]`` history codes (whole items, ``code_length`` codes each), left padded with -1.
            attention_mask: ``[B, T]``.
            num_beams: beams kept per level (default ``config.default_num_beams``).
            num_return_sequences: items returned per user (default ``config.default_num_return_sequences``; at most num_beams).
            chunk_size: users per backbone call (default ``config.generation_chunk_size``), bounding memory.
            exclude_items: ``[B, E]`` dense item ids never to return for that user (0 = padding). Beams
                are pruned at every level to prefixes that still hold an item outside the set, so
                ``num_return_sequences`` items come back whenever that many exist.
        """
        if is_sharded(self.codebooks[0].weight):
            raise RuntimeError(
                "this model's parameters are FSDP shards: call generate() on every rank inside "
                "hf_genrec.distributed.gathered_root_parameters(trainer.model), or reload a saved checkpoint"
            )
        num_beams = num_beams or self.config.default_num_beams
        k = num_return_sequences or self.config.default_num_return_sequences
        if k > num_beams:
            raise InputError(f"num_return_sequences ({k}) cannot exceed num_beams ({num_beams})")
        if (attention_mask.sum(1) == 0).any():
            raise InputError("a user has an empty history; generate() needs at least one item")
        if (attention_mask.sum(1) % self.config.code_length).any():
            raise InputError(f"histories must hold whole items ({self.config.code_length} codes each)")
        chunk = chunk_size or self.config.generation_chunk_size
        if exclude_items is not None and exclude_items.shape[0] != input_ids.shape[0]:
            raise InputError(f"exclude_items has {exclude_items.shape[0]} rows for {input_ids.shape[0]} users")
        if exclude_items is not None:
            self.check_item_ids(exclude_items, allow_padding=True)
        outs = [
            self._beam_search(
                input_ids[i : i + chunk],
                attention_mask[i : i + chunk],
                num_beams,
                k,
                None if exclude_items is None else exclude_items[i : i + chunk].to(input_ids.device),
            )
            for i in range(0, input_ids.shape[0], chunk)
        ]
        return RecommendationOutput(**{f: torch.cat([o[f] for o in outs]) for f in ("item_ids", "scores", "codes")})

    def top_k_items(
        self,
        history: torch.Tensor,
        k: int,
        num_beams: int | None = None,
        chunk_size: int | None = None,
        exclude_items: torch.Tensor | None = None,
    ) -> RecommendationOutput:
        """Best ``k`` items for ``[B, H]`` left-padded histories of item ids (the recommender contract):
        constrained beam search with ``max(k, num_beams or config.default_num_beams)`` beams, never
        returning ``exclude_items`` ``[B, E]``. The model reads the last ``config.max_history`` items.
        ``config.score_mode`` "dense" ranks every item by the PSA head's cosine instead, "hybrid"
        re-ranks the beam's candidates by code log-likelihood + ``dense_score_weight`` x cosine."""
        (history,) = self.readable_history(history)
        mode = self.config.score_mode
        if mode == "dense":
            return top_k_from_scores(self.dense_scores(history), k, exclude_items)
        inputs = self.code_inputs(history)
        beams = max(k, num_beams or self.config.default_num_beams)
        out = self.generate(
            inputs["input_ids"],
            inputs["attention_mask"],
            num_beams=beams,
            num_return_sequences=beams if mode == "hybrid" else k,
            chunk_size=chunk_size,
            exclude_items=exclude_items,
        )
        if mode == "hybrid":  # the beam's candidates, re-ranked by code log-likelihood + weight x cosine
            cosine = self.dense_scores(history).gather(1, out.item_ids.clamp_min(0))
            score = torch.where(out.item_ids > 0, out.scores + self.config.dense_score_weight * cosine, float("-inf"))
            top = score.topk(k, dim=1)
            out = RecommendationOutput(item_ids=out.item_ids.gather(1, top.indices), scores=top.values,
                                       codes=out.codes.gather(1, top.indices.unsqueeze(-1).expand(-1, -1, out.codes.shape[2])))
        return out

    def _cache_kwarg(self) -> str:
        # transformers >= 5.2x renamed LlamaModel's `past_key_values` argument to `cache`.
        params = inspect.signature(self.backbone.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    def _beam_search(self, input_ids, attention_mask, num_beams: int, k: int, exclude_items=None) -> dict[str, torch.Tensor]:
        cfg, trie = self.config, self.trie
        excluded = None if exclude_items is None else trie.excluded_counts(exclude_items)
        bsz, past = input_ids.shape
        device = input_ids.device
        cache_kw = self._cache_kwarg()
        position_ids = self.position_ids_from_mask(attention_mask)
        embeds = self.embed_codes(input_ids, position_ids % cfg.code_length, attention_mask)
        cache = DynamicCache(config=self.backbone.config)  # filled in place by every call below
        out = self.backbone(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            **{cache_kw: cache},
        )
        next_pos = position_ids[:, -1:] + 1  # [B, 1]
        neg_inf = torch.tensor(float("-inf"), device=device)
        mask_min = torch.finfo(embeds.dtype).min
        # Which cache slots hold history (True) rather than padding or beam tokens: [B, 1, past].
        history_slots = attention_mask.bool().unsqueeze(1)

        # Level 0: one root per user.
        logp = torch.log_softmax(self.level_logits(out.last_hidden_state[:, -1], 0).float(), -1)  # [B, V]
        child = trie.children[0][0].expand(bsz, -1)
        cand = torch.where(trie.has_items_left(0, child, excluded), logp, neg_inf)
        beam_scores, beam_codes = cand.topk(min(num_beams, cand.shape[1]), dim=1)  # [B, K]
        nodes = child.gather(1, beam_codes)
        codes = beam_codes.unsqueeze(-1)  # [B, K, 1]
        ancestors = torch.empty(bsz, codes.shape[1], 0, dtype=torch.long, device=device)

        for level in range(1, cfg.code_length):
            beams = codes.shape[1]
            # Feed each beam's last code; the new tokens take cache slots [past, past + beams) of the
            # user's own row, and see the history, their ancestors and themselves (tree attention).
            tokens = self.embed_codes(codes[:, :, -1], torch.full_like(codes[:, :, -1], level - 1))
            visible = torch.zeros(bsz, beams, past + beams, dtype=torch.bool, device=device)
            visible[:, :, : history_slots.shape[2]] = history_slots
            visible.scatter_(2, ancestors, True)
            visible[:, torch.arange(beams), past + torch.arange(beams)] = True
            mask4d = torch.zeros(visible.shape, dtype=embeds.dtype, device=device).masked_fill_(~visible, mask_min)
            h = self.backbone(
                inputs_embeds=tokens,
                attention_mask=mask4d.unsqueeze(1),
                position_ids=next_pos.expand(bsz, beams),
                use_cache=True,
                **{cache_kw: cache},
            ).last_hidden_state  # [B, K, H]
            logp = torch.log_softmax(self.level_logits(h, level).float(), -1)  # [B, K, V]
            child = trie.children[level][nodes.clamp_min(0)]  # [B, K, V]
            open_ = trie.has_items_left(level, child, excluded) & (nodes >= 0).unsqueeze(-1)
            cand = torch.where(open_, beam_scores.unsqueeze(-1) + logp, neg_inf)
            vocab = cand.shape[-1]
            beam_scores, flat = cand.flatten(1).topk(min(num_beams, beams * vocab), dim=1)
            parent, code = flat // vocab, flat % vocab
            nodes = child.flatten(1).gather(1, flat)
            ancestors = torch.cat(
                [ancestors.gather(1, parent.unsqueeze(-1).expand(-1, -1, ancestors.shape[2])), (past + parent).unsqueeze(-1)], 2
            )
            codes = torch.cat([codes.gather(1, parent.unsqueeze(-1).expand(-1, -1, codes.shape[2])), code.unsqueeze(-1)], 2)
            past += beams
            next_pos = next_pos + 1
        alive = torch.isfinite(beam_scores)
        item_ids = torch.where(alive, nodes, torch.full_like(nodes, -1))
        codes = torch.where(alive.unsqueeze(-1), codes, torch.full_like(codes, -1))
        beams = item_ids.shape[1]
        if beams < k:  # fewer candidate sequences than asked for
            fill = k - beams
            item_ids = torch.cat([item_ids, item_ids.new_full((bsz, fill), -1)], 1)
            beam_scores = torch.cat([beam_scores, beam_scores.new_full((bsz, fill), float("-inf"))], 1)
            codes = torch.cat([codes, codes.new_full((bsz, fill, codes.shape[2]), -1)], 1)
        return {"item_ids": item_ids[:, :k], "scores": beam_scores[:, :k], "codes": codes[:, :k]}
