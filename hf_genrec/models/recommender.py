"""The contract every model family implements, and what it gives them for free.

A family implements one method, :meth:`Recommender.top_k_items`: dense histories in, the
best ``k`` dense item ids out. From it the mixin provides

- :meth:`~RecommenderMixin.recommend`: the user's own item ids in and out (strings, ints: whatever
  the training data used), through the model's :class:`~hf_genrec.utils.ItemIdMap`;
- :meth:`~RecommenderMixin.recommend_dense`: the same on dense ids ``1..N``;
- checkpoints that stand alone: ``save_pretrained`` writes ``item_map.json`` and a model card
  (``README.md`` with a ``model-index`` of the recorded test metrics) beside the weights, and
  ``from_pretrained`` (local folder or Hub id) reads the map back;
- the generic evaluation of :class:`hf_genrec.training.RecommenderTrainer`, which only calls
  ``top_k_items``.
"""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from huggingface_hub import HfApi
from transformers.utils import ModelOutput

from ..utils import ITEM_MAP_FILE, EmptyHistoryError, ItemIdMap, UnknownItemError, left_pad
from ..utils.errors import InputError, MissingFileError
from .model_card import add_card_tags, write_model_card
from .saving import StagedSaveMixin, optional_checkpoint_file

UNKNOWN_ITEM_POLICIES = ("error", "drop")


def require_positive(config_name: str, **sizes) -> None:
    """Refuse a size or count below 1 (or not an integer) when a config is built or read, so a crafted
    ``config.json`` fails at load, naming the field, rather than deep in inference."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{config_name}: {name} must be a positive integer, got {value!r}")


def refuse_renamed_fields(config_name: str, given: dict, **renamed: str) -> None:
    """Refuse a field under its name from before a rename (``old=new``): left in ``**kwargs`` it would be
    kept as an unused attribute while the new field silently took its default."""
    for old, new in renamed.items():
        if old in given:
            raise InputError(f"{config_name}: {old!r} is now called {new!r}; rename it in config.json")


def require_count(config_name: str, **counts) -> None:
    """Refuse a count below 0 (or not an integer), e.g. ``num_items`` of a config built before its data."""
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"{config_name}: {name} must be a non-negative integer, got {value!r}")


def require_optional_positive(config_name: str, **sizes) -> None:
    """:func:`require_positive` for sizes that may be ``None`` (meaning "the default")."""
    require_positive(config_name, **{k: v for k, v in sizes.items() if v is not None})


def set_inference_settings(config, max_history: int, exclude_history: bool) -> None:
    """The inference settings every family's config carries (see :class:`RecommenderMixin`)."""
    if max_history < 1:
        raise InputError(f"max_history must be >= 1, got {max_history}")
    config.max_history = int(max_history)
    config.exclude_history = bool(exclude_history)


@dataclass
class RecommendationOutput(ModelOutput):
    """Top-k recommendations per user, best first.

    item_ids: ``[B, k]`` dense item ids; -1 where fewer than k items exist.
    scores: ``[B, k]`` the family's ranking score (higher is better); -inf where item_ids is -1.
    items: ``B`` lists of the user's own item ids (only from :meth:`RecommenderMixin.recommend`).
    codes: ``[B, k, code_length]`` generated code sequences (semantic-ID families only).
    """

    item_ids: torch.Tensor | None = None
    scores: torch.Tensor | None = None
    items: list[list[Any]] | None = None
    codes: torch.Tensor | None = None


class Recommender(Protocol):
    """What a family implements (the rest comes from :class:`RecommenderMixin`)."""

    def top_k_items(
        self, history: torch.Tensor, k: int, exclude_items: torch.Tensor | None = None, **kwargs
    ) -> RecommendationOutput:
        """Best ``k`` items for each history.

        Args:
            history: ``[B, H]`` dense item ids, oldest first, left padded with 0; every row has an item.
            k: items per user.
            exclude_items: ``[B, E]`` dense ids that must not be returned for that user (0 = padding),
                e.g. the whole history under the "seen items excluded" protocol. The search stays
                exact: it returns the best ``k`` items outside the set whenever that many exist.
        Returns: :class:`RecommendationOutput` with ``item_ids`` / ``scores`` ``[B, k]``, best first.
        """
        ...


def with_rows_appended(tensor: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``[N, ...]`` + ``[K, ...]`` -> ``[N + K, ...]`` on ``tensor``'s device and dtype (for growing a
    per-item table in :meth:`RecommenderMixin.add_items`)."""
    return torch.cat([tensor.detach(), rows.to(tensor.device, tensor.dtype)])


def excluded_items_mask(exclude_items: torch.Tensor | None, num_items: int) -> torch.Tensor | None:
    """``[B, E]`` dense ids (0 = padding) -> ``[B, N + 1]`` bool, True at every listed item (column 0
    stays False: padding is never an item). None stays None."""
    if exclude_items is None:
        return None
    if exclude_items.dim() != 2:
        raise InputError(f"exclude_items must be [B, E] dense item ids, got shape {tuple(exclude_items.shape)}")
    if exclude_items.numel() and (exclude_items.min() < 0 or exclude_items.max() > num_items):
        raise UnknownItemError(f"exclude_items holds ids outside 0..{num_items}")
    mask = torch.zeros(exclude_items.shape[0], num_items + 1, dtype=torch.bool, device=exclude_items.device)
    mask.scatter_(1, exclude_items.long(), True)
    mask[:, 0] = False
    return mask


def top_k_from_scores(scores: torch.Tensor, k: int, exclude_items: torch.Tensor | None = None) -> RecommendationOutput:
    """The top-``k`` of full-catalogue scores ``[B, N + 1]`` (column 0 = padding, never returned),
    with ``exclude_items`` ``[B, E]`` left out. Where fewer than ``k`` items remain, ``item_ids`` is
    padded with -1 and ``scores`` with -inf (also for items whose score is -inf)."""
    if torch.isnan(scores[:, 1:]).any():
        # topk ranks NaN first: a diverged model would "recommend" arbitrary items without a word.
        raise ValueError("the model's scores contain NaN (diverged weights or bad input); nothing to rank")
    scores = scores.clone()
    scores[:, 0] = float("-inf")
    mask = excluded_items_mask(exclude_items, scores.shape[1] - 1)
    if mask is not None:
        scores.masked_fill_(mask, float("-inf"))
    top = scores.topk(min(k, scores.shape[1] - 1), dim=1)
    ids = torch.where(torch.isfinite(top.values), top.indices, torch.full_like(top.indices, -1))
    values = top.values
    if k > ids.shape[1]:
        ids = torch.nn.functional.pad(ids, (0, k - ids.shape[1]), value=-1)
        values = torch.nn.functional.pad(values, (0, k - values.shape[1]), value=float("-inf"))
    return RecommendationOutput(item_ids=ids, scores=values)


class RecommenderMixin(StagedSaveMixin):
    """Mix into a family's ``PreTrainedModel`` (before it in the bases). The config needs
    ``num_items``; the family implements :meth:`Recommender.top_k_items`."""

    _item_map: ItemIdMap | None = None

    # ----------------------------------------------------------------------------- item map
    @property
    def item_map(self) -> ItemIdMap:
        """Original item id <-> dense id. Without one set, the item ids are the dense ids ``1..N``."""
        if self._item_map is None:
            self._item_map = ItemIdMap.identity(self.config.num_items)
        return self._item_map

    def set_item_map(self, item_map: ItemIdMap) -> None:
        if item_map.num_items != self.config.num_items:
            raise InputError(f"the item map has {item_map.num_items} items but this model knows {self.config.num_items}")
        self._item_map = item_map

    def check_item_ids(self, ids: torch.Tensor, allow_padding: bool) -> None:
        """Raise :class:`~hf_genrec.utils.UnknownItemError` for a dense id outside ``1..N`` (or 0 when
        ``allow_padding``): an out-of-range id would otherwise index another item's row, or crash."""
        bad = (ids < (0 if allow_padding else 1)) | (ids > self.config.num_items)
        if bad.any():
            raise UnknownItemError(f"unknown item id {int(ids[bad][0])}: this model knows ids 1..{self.config.num_items}")

    @property
    def required_inputs(self) -> tuple[str, ...]:
        """Side inputs beside the item ids that recommending needs, from the config (e.g.
        ``("history_timestamps",)`` for an HLLM with time features); the server asks for them."""
        return ("history_timestamps",) if getattr(self.config, "num_time_buckets", 0) else ()

    def readable_history(self, history: torch.Tensor, *aligned: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        """The last ``config.max_history`` columns of a left-padded ``history`` ``[B, H]`` (and of any
        tensors aligned with it, e.g. timestamps; None stays None): what the model reads, the same
        cut in training, evaluation and serving."""
        limit = getattr(self.config, "max_history", None)
        if limit is None or history.shape[1] <= limit:
            return (history, *aligned)
        return (history[:, -limit:], *(t[:, -limit:] if t is not None else None for t in aligned))

    # ---------------------------------------------------------------------- new items
    #: the keyword inputs this family's :meth:`add_items` reads (empty: the family cannot add items).
    #: A family that lists any implements ``_append_items(count, **inputs)``: grow every per-item
    #: tensor by ``count`` rows built from the inputs, validating everything before the first write.
    add_item_inputs: tuple[str, ...] = ()

    def add_items(self, ids: Sequence[Any], **inputs) -> list[int]:
        """Add items to a trained model without retraining; returns their dense ids (``N+1 ..``).

        ``ids``: the new items' own ids (the type of the existing ones). ``inputs``: what the family
        builds a new item from (:attr:`add_item_inputs`; ETEGRec: semantic embeddings and the RQ-VAE,
        HLLM: item text and its tokenizer, item-ID: item embeddings). The new ids join the item map
        and every per-item table, so ``recommend()``, ``save_pretrained`` / ``from_pretrained`` and
        the server know them. Everything is checked and computed before anything changes: an id that
        exists or is given twice, inputs of the wrong shape or kind, or a family that cannot take them
        raise and leave the model as it was. Per-item parameters are replaced by larger ones, so an
        optimizer built before does not train the new rows: build a new one to fine-tune after adding.
        """
        ids = list(ids)
        if not ids:
            raise InputError("no item ids given")
        new_map = self.item_map.extended(ids)
        if not self.add_item_inputs:
            raise NotImplementedError(f"{type(self).__name__} cannot add items after training")
        unexpected = sorted(set(inputs) - set(self.add_item_inputs))
        if unexpected:
            raise TypeError(
                f"{type(self).__name__}.add_items builds new items from {', '.join(self.add_item_inputs)}; "
                f"it cannot take {', '.join(unexpected)}"
            )
        first = self.config.num_items + 1
        self._append_items(len(ids), **inputs)
        self.config.num_items += len(ids)
        self._item_map = new_map
        return list(range(first, first + len(ids)))

    # ------------------------------------------------------------------------ recommending
    def recommend_dense(
        self,
        histories: Sequence[Sequence[int]],
        top_k: int = 10,
        exclude_history: bool | None = None,
        history_timestamps: Sequence[Sequence[float]] | None = None,
        **kwargs,
    ) -> RecommendationOutput:
        """Recommend ``top_k`` dense item ids for histories of dense ids (``1..N``, oldest first).

        The model reads the last ``config.max_history`` items of each history; ``exclude_history``
        (default ``config.exclude_history``) leaves every item of each given history, also the older
        ones, out of its recommendations ("seen items excluded"). Other keyword arguments go to the
        family's ``top_k_items``. ``history_timestamps`` (seconds, one per item) go to a family that
        takes them (HLLM); the others ignore them.
        """
        if not len(histories):
            raise InputError("no histories given")
        if top_k < 1:
            raise InputError(f"top_k must be >= 1, got {top_k}")
        for i, h in enumerate(histories):
            if len(h) == 0:
                raise EmptyHistoryError(f"history {i} is empty; at least one item is needed")
        history = left_pad([list(h) for h in histories], 0).to(self.device)
        if getattr(self.config, "exclude_history", False) if exclude_history is None else exclude_history:
            kwargs["exclude_items"] = history
        times = None
        if history_timestamps is not None:
            if len(history_timestamps) != len(histories) or any(
                len(t) != len(h) for t, h in zip(history_timestamps, histories)
            ):
                raise InputError("history_timestamps must give one time per history item")
            times = left_pad([list(t) for t in history_timestamps], 0.0, dtype=torch.float64).to(self.device)
        readable, times = self.readable_history(history, times)
        if times is not None and "history_timestamps" in inspect.signature(self.top_k_items).parameters:
            kwargs["history_timestamps"] = times  # a family without time features ignores them
        return self.top_k_items(readable, top_k, **kwargs)

    def recommend(
        self, histories: Sequence[Sequence[Any]], top_k: int = 10, unknown_items: str = "error", **kwargs
    ) -> RecommendationOutput:
        """Recommend ``top_k`` items for each history of the user's own item ids (oldest first).

        ``unknown_items="error"`` raises :class:`~hf_genrec.utils.UnknownItemError` naming the ids
        the model has never seen; ``"drop"`` skips them (a history left empty still raises).
        Returns ``items`` (the user's ids, best first) beside the dense ``item_ids`` and ``scores``.
        """
        if unknown_items not in UNKNOWN_ITEM_POLICIES:
            raise InputError(f"unknown_items must be one of {UNKNOWN_ITEM_POLICIES}, got {unknown_items!r}")
        if isinstance(histories, (str, bytes)) or not len(histories):
            raise InputError("histories must be a non-empty list of item-id lists")
        times = kwargs.get("history_timestamps")
        if times is not None and unknown_items == "drop":
            # Dropped items take their timestamps with them.
            kept = [[i in self.item_map for i in h] for h in histories]
            kwargs["history_timestamps"] = [[t for t, k in zip(ts, ks) if k] for ts, ks in zip(times, kept)]
        dense = []
        for i, h in enumerate(histories):
            ids, _ = self.item_map.to_dense_many(h, unknown_items)
            if not ids:
                what = "is empty" if not len(h) else "has no item this model knows"
                raise EmptyHistoryError(f"history {i} {what}; at least one known item is needed")
            dense.append(ids)
        out = self.recommend_dense(dense, top_k, **kwargs)
        out.items = [[i for i in self.item_map.to_original_many(row) if i is not None] for row in out.item_ids.tolist()]
        return out

    # ---------------------------------------------------------------------- model card data
    def record_evaluation(
        self, metrics: dict[str, float], dataset: str, split: str = "test", protocol: str | None = None
    ) -> None:
        """Remember evaluation results for the model card (kept in the config, so they round-trip).
        ``protocol``: how the unprefixed metrics ranked (``"exclude_seen"`` or ``"all_items"``)."""
        self.config.evaluation_results = {
            "dataset": dataset,
            "split": split,
            "metrics": {k: float(v) for k, v in metrics.items()},
            **({"protocol": protocol} if protocol else {}),
        }

    # ------------------------------------------------------------------------ save / load
    def checkpoint_extra_files(self) -> list[str]:
        """The item map, and each adapter-only backbone's adapter (see :class:`.saving.StagedSaveMixin`)."""
        adapters = getattr(self, "adapter_files", None)
        return [ITEM_MAP_FILE, *(adapters() if adapters is not None else [])]

    def write_beside_weights(self, folder: str) -> None:
        self.item_map.save(folder)
        write_model_card(self, folder)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | bool | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        max_shard_size: int | str = "50GB",
        commit_description: str | None = None,
        tags: list[str] | None = None,
    ):
        """Upload what :meth:`save_pretrained` writes (weights, config, item map, model card).

        ``PreTrainedModel.push_to_hub`` would replace the saved card with a generic one fetched
        from the Hub, losing the family, backbone and ``model-index`` metrics; this uploads ours.
        The arguments are ``PreTrainedModel.push_to_hub``'s (``tags`` join the card's own tags).
        """
        api = HfApi(token=token)
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, max_shard_size=max_shard_size)
            if tags:
                add_card_tags(tmp, tags)
            return api.upload_folder(
                repo_id=repo_id,
                folder_path=tmp,
                commit_message=commit_message or f"Upload {type(self).__name__}",
                commit_description=commit_description,
                revision=revision,
                create_pr=create_pr,
            )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        wants_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs)
        hub_kwargs = {k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only", "subfolder") if k in kwargs}
        path = optional_checkpoint_file(pretrained_model_name_or_path, ITEM_MAP_FILE, **hub_kwargs)
        if path is None:
            # Every save writes it: a folder without it is incomplete (an interrupted save) or not
            # ours, and the identity map would present dense ids as the user's own.
            raise MissingFileError(
                f"{pretrained_model_name_or_path} has no {ITEM_MAP_FILE}: the checkpoint is incomplete (was its save "
                "interrupted?) or was not written by hf_genrec's save_pretrained"
            )
        item_map = ItemIdMap.load(path)
        if item_map.num_items != model.config.num_items:
            raise InputError(f"{path} maps {item_map.num_items} items but the config says num_items={model.config.num_items}")
        model.set_item_map(item_map)
        return (model, info) if wants_info else model
