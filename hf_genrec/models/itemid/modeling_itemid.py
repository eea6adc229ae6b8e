"""Item-ID LLaMA: the LLM reads items as single tokens and predicts the next item through a
hierarchical softmax ("Efficient Item ID Generation for Large-Scale LLM-based Recommendation",
arXiv 2509.03746; public re-implementation github Racro/efficientids_flax).

Input: a left-padded sequence mixing text tokens (``input_ids``, through the backbone's own token
embeddings) and item tokens (``item_ids`` > 0 at item positions: item embedding table ``[N + 1, D]``
-> ``input_adapter`` (D -> hidden)); item-only sequences are just ``history``. Output: the hidden
state at the last position -> ``output_adapter`` (hidden -> D) = the query; items are scored by
dot product with the same item embedding table (tied) through :class:`HierarchicalSoftmax`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
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
from ..recommender import RecommendationOutput, RecommenderMixin, excluded_items_mask, top_k_from_scores
from .configuration_itemid import ItemIDLlamaConfig
from .hierarchical_softmax import HierarchicalSoftmax


def ridge_map(x: torch.Tensor, y: torch.Tensor, new_x: torch.Tensor, ridge: float = 1e-2) -> torch.Tensor:
    """Fit ``y ~ [x, 1] @ W`` by ridge regression (``x`` ``[N, D]``, ``y`` ``[N, E]``; the penalty is
    ``ridge`` times the mean diagonal of the Gram matrix, so it is scale-free) and apply it to
    ``new_x`` ``[K, D]`` -> ``[K, E]``."""
    design = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    gram = design.t() @ design
    gram += ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
    weights = torch.linalg.solve(gram, design.t() @ y.double())
    return (torch.cat([new_x, torch.ones(len(new_x), 1)], 1).double() @ weights).float()


@dataclass
class ItemIDLlamaOutput(ModelOutput):
    """loss: mean negative log-likelihood of the targets (exact, under the configured head).
    query: ``[B, D]`` the next-item query in item-embedding space (after the last position).
    log_probs: ``[B]`` log p(target), or ``[M]`` one per predicted item with ``train_on_all_positions``."""

    loss: torch.Tensor | None = None
    query: torch.Tensor | None = None
    log_probs: torch.Tensor | None = None


class ItemIDLlamaPreTrainedModel(BackboneFamilyPreTrainedModel):
    config_class = ItemIDLlamaConfig
    base_model_prefix = "itemid_llama"


class ItemIDLlamaForRecommendation(RecommenderMixin, BackboneHolderMixin, ItemIDLlamaPreTrainedModel):
    """See the module docstring. Set real item embeddings with :meth:`set_item_embeddings` and
    cluster them with :meth:`recluster` (an explicit step: the clustering is saved with the model
    and never changes behind the user's back). A fresh model has round-robin clusters."""

    backbone_slots = {"backbone": ""}

    def __init__(self, config: ItemIDLlamaConfig, backbone: PreTrainedModel | None = None):
        attn = attention_implementation(backbone)
        super().__init__(config)
        self.backbone = build_backbone(BackboneSettings.from_config(config), backbone)
        dim, hidden = config.item_embedding_dim, config.hidden_size
        self.item_embeddings = nn.Embedding(config.num_items + 1, dim, padding_idx=0)
        self.input_adapter = nn.Linear(dim, hidden)
        self.output_adapter = nn.Linear(hidden, dim)
        capacity = config.cluster_capacity or HierarchicalSoftmax.width_for(config.num_items, config.num_clusters)
        self.head = HierarchicalSoftmax(config.num_items, dim, config.num_clusters, capacity)
        self._new_layers = (self.item_embeddings, self.input_adapter, self.output_adapter, self.head.cluster_embeddings)
        self.post_init()
        self.finish_backbones({"backbone": attn})
        self.check_max_history()
        with torch.no_grad():
            self.item_embeddings.weight[0].zero_()
        if config.num_items and self.head.item_cluster.device.type != "meta":  # from_pretrained loads its own
            self.head.set_clusters(torch.arange(config.num_items) % config.num_clusters)

    def check_max_history(self) -> None:
        """Refuse a ``config.max_history`` the backbone cannot place (one position per item)."""
        check_positions(self.backbone.config, self.config.max_history, f"max_history={self.config.max_history}")

    @classmethod
    def from_backbone(cls, backbone_name_or_path: str, dtype: torch.dtype | str = "auto", **config_kwargs):
        """Wrap a local (or Hub) decoder-only checkpoint with fresh item layers."""
        backbone = pretrained(AutoModel, backbone_name_or_path, "backbone", dtype=dtype)
        config = ItemIDLlamaConfig(backbone_config=backbone.config, backbone_name_or_path=backbone_name_or_path, **config_kwargs)
        config.save_base_weights = not config.use_lora
        return cls(config, backbone=backbone)

    # ------------------------------------------------------------------------ item table
    @torch.no_grad()
    def set_item_embeddings(self, embeddings: torch.Tensor) -> None:
        """Initialise the item table from ``[N, item_embedding_dim]`` (row i = item i + 1), e.g. MiniLM
        text embeddings or SASRec's; rescaled to the init std so adapters start in range."""
        embeddings = torch.as_tensor(embeddings, dtype=torch.float32)
        want = (self.config.num_items, self.config.item_embedding_dim)
        if tuple(embeddings.shape) != want:
            raise InputError(f"item embeddings must be {list(want)} (items x item_embedding_dim), got {list(embeddings.shape)}")
        if not torch.isfinite(embeddings).all():
            raise InputError("item embeddings contain NaN or inf")
        scale = self.config.initializer_range / embeddings.std().clamp_min(1e-8)
        self.item_embeddings.weight[1:] = (embeddings * scale).to(self.item_embeddings.weight)
        self.config.item_embedding_scale = float(scale)  # add_items maps new items the same way

    add_item_inputs = ("item_embeddings", "catalogue_embeddings")

    @torch.no_grad()
    def _append_items(
        self, count: int, item_embeddings: torch.Tensor | None = None, catalogue_embeddings: torch.Tensor | None = None
    ) -> None:
        """New items from embeddings ``[K, item_embedding_dim]`` of the kind the table was initialised
        from (e.g. text embeddings). Without ``catalogue_embeddings``, they go through the table's
        initialisation path (the scale :meth:`set_item_embeddings` used) and get the known items'
        median bias. With ``catalogue_embeddings`` ``[N, item_embedding_dim]`` (the known items' same
        embeddings), a ridge regression from them to the trained rows and biases maps the new items
        into the trained table instead. Each new item joins the nearest cluster with room."""
        if item_embeddings is None:
            raise InputError("the item-ID model adds items from their item_embeddings (the kind its table was initialised from)")
        dim = self.config.item_embedding_dim
        new = torch.as_tensor(item_embeddings, dtype=torch.float32)
        if tuple(new.shape) != (count, dim):
            raise InputError(f"item_embeddings must be [{count}, {dim}] (new items x item_embedding_dim), got {list(new.shape)}")
        if not torch.isfinite(new).all():
            raise InputError("item embeddings contain NaN or inf")
        table = self.item_embeddings.weight.detach().float().cpu()
        biases = self.head.item_bias.detach().float().cpu()
        new = new.cpu()
        if catalogue_embeddings is not None:
            known = torch.as_tensor(catalogue_embeddings, dtype=torch.float32).cpu()
            if tuple(known.shape) != (self.config.num_items, dim):
                raise InputError(f"catalogue_embeddings must be [{self.config.num_items}, {dim}] (the known items, "
                                 f"row i = item i + 1), got {list(known.shape)}")
            rows, bias = ridge_map(known, torch.cat([table[1:], biases[1:, None]], 1), new).split([dim, 1], 1)
            bias = bias.squeeze(1)
        else:
            scale = getattr(self.config, "item_embedding_scale", None)
            if scale is None:
                raise InputError("this model's item table was not initialised from embeddings (set_item_embeddings), so "
                                 "there is no path for new ones: pass catalogue_embeddings to fit one")
            rows, bias = new * scale, biases[1:].median().expand(count)
        grown = nn.Embedding(self.config.num_items + count + 1, dim, padding_idx=0).to(self.item_embeddings.weight)
        grown.weight.copy_(torch.cat([self.item_embeddings.weight, rows.to(self.item_embeddings.weight)]))
        grown.weight.requires_grad_(self.item_embeddings.weight.requires_grad)
        self.head.append_items(rows, bias, self.item_embeddings.weight)  # computes everything, then assigns
        self.item_embeddings = grown
        self._new_layers = (self.item_embeddings, *self._new_layers[1:])
        # The head's width now follows its contents, not the catalogue size: a reload must rebuild it so.
        self.config.cluster_capacity = self.head.cluster_items.shape[1]

    def recluster(self, iters: int = 25, seed: int = 0) -> None:
        """k-means the current item embeddings into the head's clusters (capacity-bounded)."""
        self.head.cluster_from_embeddings(self.item_embeddings.weight[1:], iters=iters, seed=seed)

    def set_backbone_trainable(self, trainable: bool) -> None:
        """The two-stage recipe's switch. ``False`` (stage 1): the whole backbone is frozen and only
        the item table, adapters and head train. ``True`` (stage 2): the LoRA adapters train (or the
        whole backbone without LoRA)."""
        for name, p in self.backbone.named_parameters():
            p.requires_grad_(trainable and (not self.config.use_lora or "lora_" in name))

    # ---------------------------------------------------------------------------- forward
    def embed(self, item_ids: torch.Tensor, input_ids: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T]`` item ids (0 where the token is text or padding) and text token ids -> ``[B, T, hidden]``."""
        items = self.input_adapter(self.item_embeddings(item_ids))
        if input_ids is None:
            return items.to(self.backbone_compute_dtype())
        text = self.backbone.get_input_embeddings()(input_ids.clamp_min(0)).to(items.dtype)
        return torch.where((item_ids > 0).unsqueeze(-1), items, text).to(self.backbone_compute_dtype())

    def query(
        self,
        history: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        item_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The next-item query ``[B, D]`` from the last position of a left-padded sequence: item-only
        ``history`` ``[B, H]``, or mixed ``input_ids`` / ``item_ids`` / ``attention_mask`` ``[B, T]``."""
        if history is not None:
            item_ids, input_ids, attention_mask = history, None, (history > 0).long()
        if item_ids is None or attention_mask is None:
            raise InputError("give history, or item_ids with attention_mask (and input_ids for text positions)")
        if item_ids.dim() != 2 or item_ids.shape[1] == 0 or not (attention_mask > 0).any(1).all():
            raise EmptyHistoryError("a sequence is empty; at least one item or token is needed")
        self.check_item_ids(item_ids, allow_padding=True)
        if input_ids is None and ((item_ids == 0) & (attention_mask > 0)).any():
            raise InputError("text positions (item_ids == 0 under the mask) need input_ids")
        hidden = self.hidden_states(item_ids, input_ids, attention_mask)[:, -1]
        return self.output_adapter(hidden.to(self.output_adapter.weight.dtype))

    def hidden_states(
        self, item_ids: torch.Tensor, input_ids: torch.Tensor | None, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """The backbone's last hidden state at every position of a left-padded sequence, ``[B, T, hidden]``."""
        position_ids = left_padded_position_ids(attention_mask)
        return self.backbone(
            inputs_embeds=self.embed(item_ids, input_ids),
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
        ).last_hidden_state

    def forward(
        self,
        history: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        item_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> ItemIDLlamaOutput:
        """Query for the next item and, with ``targets`` ``[B]``, its exact negative log-likelihood.
        With ``config.train_on_all_positions`` (item-only ``history``) every item of
        ``history + [targets]`` after the first is predicted in one causal pass, and ``loss`` is the
        mean negative log-likelihood over all of them (``log_probs`` ``[M]``)."""
        if targets is not None and self.config.train_on_all_positions:
            if history is None:
                raise InputError("train_on_all_positions trains on item-only histories; mixed text inputs predict one target")
            return self._forward_all_positions(history, targets)
        q = self.query(history, input_ids, item_ids, attention_mask)
        if targets is None:
            return ItemIDLlamaOutput(query=q)
        self.check_item_ids(targets, allow_padding=False)
        log_probs = self.target_log_probs(q, targets)
        return ItemIDLlamaOutput(loss=-log_probs.mean(), query=q, log_probs=log_probs)

    def _forward_all_positions(self, history: torch.Tensor, targets: torch.Tensor) -> ItemIDLlamaOutput:
        if history.dim() != 2 or targets.shape != history.shape[:1]:
            raise InputError(f"expected history [B, H] and targets [B], got {tuple(history.shape)} and {tuple(targets.shape)}")
        self.check_item_ids(targets, allow_padding=False)
        seq = torch.cat([history, targets.unsqueeze(1).to(history)], 1)  # [B, H + 1]
        inputs, labels = seq[:, :-1], seq[:, 1:]
        if not (inputs > 0).any(1).all():
            raise EmptyHistoryError("a history is empty; at least one item is needed")
        self.check_item_ids(inputs, allow_padding=True)
        hidden = self.hidden_states(inputs, None, (inputs > 0).long())
        trained = (inputs > 0) & (labels > 0)  # every real position predicts its successor
        q = self.output_adapter(hidden[trained].to(self.output_adapter.weight.dtype))  # [M, D]
        log_probs = self.target_log_probs(q, labels[trained])
        last = self.output_adapter(hidden[:, -1].to(self.output_adapter.weight.dtype))
        return ItemIDLlamaOutput(loss=-log_probs.mean(), query=last, log_probs=log_probs)

    def target_log_probs(self, query: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target | query) ``[B]`` under the configured head."""
        weight = self.item_embeddings.weight
        if self.config.head == "full":
            return self.head.full_softmax_log_probs(query, weight).gather(1, targets.unsqueeze(1)).squeeze(1)
        return self.head.log_prob(query, targets, weight)

    def all_log_probs(self, query: torch.Tensor) -> torch.Tensor:
        """log p(item | query) of every item ``[B, N + 1]`` (column 0 = padding), under the configured head."""
        weight = self.item_embeddings.weight
        if self.config.head == "full":
            return self.head.full_softmax_log_probs(query, weight)
        return self.head.all_log_probs(query, weight)

    # --------------------------------------------------------------------- the contract
    @torch.no_grad()
    def top_k_items(
        self, history: torch.Tensor, k: int, num_clusters: int | None = None, exclude_items: torch.Tensor | None = None
    ) -> RecommendationOutput:
        """Best ``k`` items for ``[B, H]`` left-padded histories, leaving out ``exclude_items`` ``[B, E]``.
        Hierarchical head: exact (certified best-first cluster search) unless ``num_clusters`` (or
        ``config.fast_top_k_clusters``) asks for the fast path over that many best clusters."""
        (history,) = self.readable_history(history)
        q = self.query(history)
        if self.config.head == "full":
            return top_k_from_scores(self.all_log_probs(q), k, exclude_items)
        m = num_clusters if num_clusters is not None else self.config.fast_top_k_clusters
        excluded = excluded_items_mask(exclude_items, self.config.num_items)
        ids, scores = self.head.top_k(q, k, self.item_embeddings.weight, num_clusters=m, excluded=excluded)
        return RecommendationOutput(item_ids=ids, scores=scores)
