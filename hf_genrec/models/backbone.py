"""The LLM-backbone lifecycle every model family shares: LoRA injection, the fixes needed after
``post_init``, fp32 adapters on a bf16 base, and adapter-only checkpoints that reload the frozen base.

A family model is a ``PreTrainedModel`` holding one or more HF backbones as submodules (ETEGRec:
``backbone``; HLLM: an item LLM and a user LLM). It lists them in ``backbone_slots`` (attribute
name -> prefix of that backbone's config fields) and mixes in :class:`BackboneHolderMixin`.
The config carries, for each prefix ``p``: ``{p}backbone_config``, ``{p}backbone_name_or_path``,
``{p}use_lora``, ``{p}lora_r``, ``{p}lora_alpha``, ``{p}lora_dropout``,
``{p}lora_target_modules`` and ``{p}save_base_weights`` (see :class:`BackboneSettings`), and
optionally the regularisation ``{p}embedding_dropout``, ``{p}hidden_dropout`` and
``{p}attention_dropout`` (0 when the config lacks them, as in checkpoints saved before they existed).
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
from dataclasses import dataclass

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, PretrainedConfig, PreTrainedModel

from ..utils.errors import CheckpointError, InputError
from .saving import optional_checkpoint_file

# peft (with bitsandbytes behind it) takes seconds to import, so it is imported where LoRA is used:
# `import hf_genrec`, `hf-genrec --help` and models without LoRA never pay for it.


def is_lora_layer(module: nn.Module) -> bool:
    """Whether ``module`` is a peft LoRA layer; without peft imported no module can be one."""
    lora = sys.modules.get("peft.tuners.lora")
    return lora is not None and isinstance(module, lora.LoraLayer)

DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
#: peft's file names: an adapter-only backbone is saved as ``<checkpoint>/<slot>/`` in peft's format
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
ADAPTER_CONFIG_NAME = "adapter_config.json"
# peft saves a PeftModel's adapter keys under these wrappers; our backbones hold the adapters directly.
PEFT_KEY_PREFIX = "base_model.model."


@dataclass
class BackboneSettings:
    """One backbone's settings, read from its family config under a field prefix."""

    config: PretrainedConfig
    name_or_path: str | None
    use_lora: bool
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    lora_target_modules: list[str]
    save_base_weights: bool
    embedding_dropout: float = 0.0
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0

    @classmethod
    def from_config(cls, config: PretrainedConfig, prefix: str = "") -> BackboneSettings:
        get = lambda name: getattr(config, f"{prefix}{name}")  # noqa: E731
        return cls(
            config=get("backbone_config"),
            name_or_path=get("backbone_name_or_path"),
            use_lora=bool(get("use_lora")),
            lora_r=get("lora_r"),
            lora_alpha=get("lora_alpha"),
            lora_dropout=get("lora_dropout"),
            lora_target_modules=list(get("lora_target_modules")),
            save_base_weights=bool(get("save_base_weights")),
            **{f: float(getattr(config, f"{prefix}{f}", 0.0) or 0.0) for f in DROPOUT_FIELDS},
        )


#: the regularisation fields a family config may carry per backbone prefix
DROPOUT_FIELDS = ("embedding_dropout", "hidden_dropout", "attention_dropout")


def pretrained(loader, path: str, what: str = "LLM", **kwargs):
    """``loader.from_pretrained(path, **kwargs)`` (``AutoModel``, ``AutoConfig``, ``AutoTokenizer``) for a
    path the user gave: one that is neither a folder nor a Hub model (transformers raises a bare
    ``OSError``) becomes a :class:`~hf_genrec.utils.errors.CheckpointError` naming it."""
    try:
        return loader.from_pretrained(path, **kwargs)
    except OSError as err:
        raise CheckpointError(f"cannot load the {what} {path!r}: {' '.join(str(err).split())}") from err


def small_llama_config(hidden_size: int, num_hidden_layers: int, num_attention_heads: int, vocab_size: int) -> dict:
    """The config dict of a small random-init LLaMA (MLP 4x wide, no GQA, untied embeddings): every
    family's default backbone and the recipes' ``--hidden_size`` / ``--num_hidden_layers`` one."""
    return {
        "model_type": "llama",
        "hidden_size": hidden_size,
        "intermediate_size": 4 * hidden_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": num_attention_heads,
        "num_key_value_heads": num_attention_heads,
        "vocab_size": vocab_size,
        "max_position_embeddings": 512,
        "tie_word_embeddings": False,
    }


def set_dropout_fields(config: PretrainedConfig, prefix: str = "", **values: float) -> None:
    """Set a family config's ``{prefix}embedding_dropout`` / ``hidden_dropout`` / ``attention_dropout``
    (keyword names without the prefix), each checked to lie in [0, 1)."""
    for name, value in values.items():
        if name not in DROPOUT_FIELDS:
            raise TypeError(f"unknown dropout field {name!r}; expected one of {DROPOUT_FIELDS}")
        if not 0.0 <= float(value) < 1.0:
            raise InputError(f"{prefix}{name} must be in [0, 1), got {value}")
        setattr(config, f"{prefix}{name}", float(value))


def _dropout_output(p: float):
    """Forward hook: dropout on a sub-layer's output (the residual branch), in training only."""

    def hook(module: nn.Module, args, output):
        if not module.training:
            return output
        if isinstance(output, tuple):
            return (nn.functional.dropout(output[0], p, training=True), *output[1:])
        return nn.functional.dropout(output, p, training=True)

    return hook


def _dropout_inputs_embeds(p: float):
    """Forward pre-hook of the backbone: dropout on ``inputs_embeds``, in training only."""

    def hook(module: nn.Module, args, kwargs):
        if module.training and kwargs.get("inputs_embeds") is not None:
            kwargs["inputs_embeds"] = nn.functional.dropout(kwargs["inputs_embeds"], p, training=True)
        return args, kwargs

    return hook


def apply_dropout(backbone: nn.Module, settings: BackboneSettings) -> None:
    """Regularise a decoder-only backbone (LLaMA layers have no dropout on the residual path).

    - ``embedding_dropout``: on the ``inputs_embeds`` every family feeds the backbone;
    - ``hidden_dropout``: on the output of every layer's attention and MLP blocks before they join
      the residual stream (GPT-2's ``resid_pdrop``);
    - ``attention_dropout``: on the attention probabilities (the backbone's own
      ``attention_dropout``, also written into its config).

    Hooks, not new modules, so the state-dict keys and checkpoints stay those of the plain
    backbone; they are re-created from the config at every load. All three act in training only.
    """
    for name in DROPOUT_FIELDS:
        value = getattr(settings, name)
        if not 0.0 <= value < 1.0:
            raise InputError(f"{name} must be in [0, 1), got {value}")
    if settings.attention_dropout:
        attention = [m for m in backbone.modules() if isinstance(getattr(m, "attention_dropout", None), float)]
        if not attention:
            raise InputError(f"attention_dropout: {type(backbone).__name__} has no attention module that reads one")
        for m in attention:
            m.attention_dropout = settings.attention_dropout
        backbone.config.attention_dropout = settings.attention_dropout
    if settings.hidden_dropout:
        blocks = [
            getattr(m, n) for m in backbone.modules() for n in ("self_attn", "mlp") if isinstance(getattr(m, n, None), nn.Module)
        ]
        if not blocks:
            raise InputError(f"hidden_dropout: {type(backbone).__name__} has no decoder layers with self_attn / mlp blocks")
        for block in blocks:
            block.register_forward_hook(_dropout_output(settings.hidden_dropout))
    if settings.embedding_dropout:
        backbone.register_forward_pre_hook(_dropout_inputs_embeds(settings.embedding_dropout), with_kwargs=True)


def inject_lora(backbone: nn.Module, settings: BackboneSettings) -> None:
    """Inject LoRA adapters into ``backbone`` in place (a no-op without ``use_lora``).

    In-place injection keeps key paths stable for the outer ``save_pretrained`` /
    ``from_pretrained``; wrapping with ``get_peft_model`` breaks the outer ``post_init`` (tied-weight key paths change).
    """
    if not settings.use_lora:
        return
    from peft import LoraConfig, inject_adapter_in_model

    lora = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=settings.lora_target_modules,
        bias="none",
    )
    inject_adapter_in_model(lora, backbone)


def save_peft_adapter(
    backbone: nn.Module, settings: BackboneSettings, directory: str, state_dict: dict[str, torch.Tensor] | None = None
) -> None:
    """Write ``backbone``'s LoRA adapter in peft's format (``adapter_config.json`` +
    ``adapter_model.safetensors``, keys as ``PeftModel.save_pretrained`` writes them), so that
    ``PeftModel.from_pretrained(AutoModel.from_pretrained(base), directory)`` reads it.
    ``state_dict``: the backbone's full (e.g. gathered from FSDP shards) state, else its own."""
    from peft import get_peft_model_state_dict

    os.makedirs(directory, exist_ok=True)
    state = get_peft_model_state_dict(backbone, state_dict=state_dict)
    tensors = {PEFT_KEY_PREFIX + k: v.detach().contiguous().cpu() for k, v in state.items()}
    save_file(tensors, os.path.join(directory, ADAPTER_WEIGHTS_NAME), metadata={"format": "pt"})
    config = copy.deepcopy(backbone.peft_config["default"])
    config.base_model_name_or_path = settings.name_or_path
    config.save_pretrained(directory)


_LORA_PART = re.compile(r"\.(lora_[A-Za-z_]+)\.")


def peft_file_to_state_dict(weights_file: str, adapter_name: str = "default") -> dict[str, torch.Tensor]:
    """The tensors of a peft adapter file as the injected backbone's own state-dict entries
    (``layers.0.self_attn.q_proj.lora_A.default.weight``), for loaders that take a state dict
    (FSDP's full-state-dict loading among them)."""
    return {
        _LORA_PART.sub(rf".\1.{adapter_name}.", k.removeprefix(PEFT_KEY_PREFIX), count=1): v
        for k, v in load_file(weights_file).items()
    }


def load_peft_adapter(backbone: nn.Module, weights_file: str) -> None:
    """Load an adapter saved by :func:`save_peft_adapter` (or by peft) into ``backbone``, strictly."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    state = {k.removeprefix(PEFT_KEY_PREFIX): v for k, v in load_file(weights_file).items()}
    result = set_peft_model_state_dict(backbone, state)
    wanted = {k for k in get_peft_model_state_dict(backbone)}
    missing = sorted(wanted - set(state))
    if missing or result.unexpected_keys:
        raise InputError(
            f"{weights_file} does not fit this backbone's adapters: "
            f"missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}"
        )


def reset_lora_init(backbone: nn.Module) -> None:
    """Restore peft's LoRA init (B = 0) after the outer ``post_init`` let the backbone's own
    ``_init_weights`` re-draw the injected layers as N(0, std): a pretrained backbone must start
    out computing exactly itself."""
    for module in backbone.modules():
        if is_lora_layer(module):
            module.reset_lora_parameters("default", init_lora_weights=True)


def freeze_base(backbone: nn.Module) -> None:
    """Only the LoRA adapters train, in fp32 (as peft's ``autocast_adapter_dtype`` does; peft casts
    activations at the adapter boundary); the base weights stay frozen in their own dtype."""
    for name, p in backbone.named_parameters():
        is_lora = "lora_" in name
        p.requires_grad_(is_lora)
        if is_lora and p.dtype in (torch.float16, torch.bfloat16):
            p.data = p.data.float()


def restore_base_dtype(backbone: nn.Module, dtype: torch.dtype | str | None) -> None:
    """Cast the frozen base weights back to ``dtype`` (e.g. bf16) after a load made them fp32."""
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    if not isinstance(dtype, torch.dtype):
        return
    for name, p in backbone.named_parameters():
        if "lora_" not in name:
            p.data = p.data.to(dtype)


def base_weight_names(backbone: nn.Module, prefix: str) -> list[str]:
    """State-dict keys (under ``prefix.``) of the frozen base weights: everything but LoRA."""
    return [f"{prefix}.{n}" for n in backbone.state_dict() if "lora_" not in n]


def read_base_state_dict(path: str, local_files_only: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a base checkpoint (local folder or Hub id) in their stored dtype, read straight
    from its safetensors file(s) (no second model is built; a ``.bin``-only checkpoint falls back to
    ``AutoModel``)."""
    find = lambda name: optional_checkpoint_file(path, name, local_files_only=local_files_only)  # noqa: E731
    index = find("model.safetensors.index.json")
    if index is not None and os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        state = {}
        for shard in shards:
            state.update(load_file(find(shard)))
        return state
    single = find("model.safetensors")
    if single is not None and os.path.exists(single):
        return load_file(single)
    return AutoModel.from_pretrained(path, dtype="auto", local_files_only=local_files_only).state_dict()


def load_base_weights(backbone: nn.Module, settings: BackboneSettings, local_files_only: bool = False) -> None:
    """Fill the frozen base weights of a LoRA backbone from ``settings.name_or_path``, strictly:
    a checkpoint lacking any weight the backbone needs raises, naming some of them.
    ``local_files_only``: never download (a local folder or the Hub cache only)."""
    path = settings.name_or_path
    if not path:
        raise InputError("this adapter-only checkpoint names no base model (backbone_name_or_path) to load")
    try:
        base = read_base_state_dict(path, local_files_only)
    except OSError as err:
        rule = " (local files only: a folder or the Hub cache; downloads were not allowed)" if local_files_only else ""
        raise CheckpointError(f"cannot load the base model {path!r} of this adapter-only checkpoint{rule}: {err}") from err
    wanted = {n.removeprefix("x.") for n in base_weight_names(backbone, "x")}
    # A *ForCausalLM checkpoint nests the backbone under its base_model_prefix (e.g. "model.").
    prefix = f"{getattr(backbone, 'base_model_prefix', '')}."
    if prefix != "." and not any(k in wanted for k in base) and any(k.startswith(prefix) for k in base):
        base = {k.removeprefix(prefix): v for k, v in base.items() if k.startswith(prefix)}
    # peft wraps each targeted Linear: the base weight of module `m` lives at `m.base_layer.<leaf>`.
    wrapped = {name for name, module in backbone.named_modules() if is_lora_layer(module)}
    ours = {}
    for key, value in base.items():
        module, _, leaf = key.rpartition(".")
        ours[f"{module}.base_layer.{leaf}" if module in wrapped else key] = value
    missing = sorted(wanted - set(ours))
    if missing:
        raise CheckpointError(f"backbone at {path} lacks {len(missing)} weights this model needs, e.g. {missing[:3]}")
    # assign=True keeps the checkpoint's dtype (bf16 stays bf16) instead of casting into fp32.
    backbone.load_state_dict({k: ours[k] for k in wanted}, strict=False, assign=True)


def build_backbone(settings: BackboneSettings, backbone: PreTrainedModel | None = None) -> PreTrainedModel:
    """The given (pretrained) backbone, or a fresh one from ``settings.config``; LoRA injected,
    dropout hooks installed (:func:`apply_dropout`)."""
    backbone = backbone if backbone is not None else AutoModel.from_config(settings.config)
    inject_lora(backbone, settings)
    apply_dropout(backbone, settings)
    return backbone


class BackboneHolderMixin:
    """For a family ``PreTrainedModel`` whose backbones are listed in ``backbone_slots``.

    In ``__init__``: read each given backbone's :func:`attention_implementation`, build it with
    :func:`build_backbone`, and call :meth:`finish_backbones` right after ``self.post_init()``.
    Then ``save_pretrained`` drops the base weights of every backbone with
    ``save_base_weights=False`` (megabytes instead of 13 GB for a LoRA-tuned 7B) and
    ``from_pretrained`` reloads them, strictly, from its ``backbone_name_or_path``.
    """

    #: attribute name of each backbone -> prefix of its fields in the config
    backbone_slots: dict[str, str] = {"backbone": ""}

    def backbone_settings(self, slot: str) -> BackboneSettings:
        return BackboneSettings.from_config(self.config, self.backbone_slots[slot])

    def finish_backbones(self, attn_implementations: dict[str, str | None]) -> None:
        """Undo what the outer ``post_init`` did to the backbones, then freeze their LoRA bases.

        ``attn_implementations``: slot -> the attention implementation the backbone was built with
        (read before ``super().__init__``). The outer init re-resolves the shared sub-config's
        attention and leaves it ``None``, which silently drops the backbone to a fallback path.
        """
        for slot in self.backbone_slots:
            backbone = getattr(self, slot)
            if backbone.config._attn_implementation is None:
                backbone.config._attn_implementation = attn_implementations.get(slot) or "sdpa"
            if self.backbone_settings(slot).use_lora:
                reset_lora_init(backbone)
        self.freeze_backbone_bases()
        if self.adapter_only_slots():
            # Adapter-only checkpoints hold neither the frozen base (reloaded from backbone_name_or_path)
            # nor, since they are saved in peft's format beside our layers, the adapters in the main
            # file; from_pretrained fills both, and checks that the adapters came from somewhere.
            self._keys_to_ignore_on_load_missing = [rf"^{slot}\." for slot in self.adapter_only_slots()]

    def freeze_backbone_bases(self) -> None:
        for slot in self.backbone_slots:
            if self.backbone_settings(slot).use_lora:
                freeze_base(getattr(self, slot))

    def adapter_only_slots(self) -> list[str]:
        """Backbones saved without their base weights (``save_base_weights=False``)."""
        return [s for s in self.backbone_slots if not self.backbone_settings(s).save_base_weights]

    def adapter_files(self) -> list[str]:
        """The files each adapter-only backbone's adapter is saved in (``<slot>/``, peft's format)."""
        return [f"{slot}/{name}" for slot in self.adapter_only_slots() for name in (ADAPTER_WEIGHTS_NAME, "adapter_config.json")]

    def base_weight_names(self) -> list[str]:
        """State-dict keys of the frozen base weights of every LoRA backbone."""
        return [
            n for s in self.backbone_slots if self.backbone_settings(s).use_lora for n in base_weight_names(getattr(self, s), s)
        ]

    def drop_base_weights(self, state_dict: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
        """``state_dict`` without the adapter-only backbones (base weights and adapters: those go to
        ``<slot>/`` in peft's format), for ``save_pretrained``."""
        slots = self.adapter_only_slots()
        if not slots:
            return state_dict
        base = set()
        for slot in slots:
            settings = self.backbone_settings(slot)
            if not (settings.use_lora and settings.name_or_path):
                raise InputError(
                    f"{slot}: save_base_weights=False needs use_lora=True and a backbone_name_or_path to reload the base from"
                )
            base.update(base_weight_names(getattr(self, slot), slot))
        return {
            k: v
            for k, v in (state_dict or self.state_dict()).items()
            if k not in base and not any(k.startswith(f"{slot}.") and "lora_" in k for slot in slots)
        }

    def load_adapters_from(self, checkpoint: str, check_only: bool = False, **hub_kwargs) -> None:
        """Load every adapter-only backbone's adapter from ``<checkpoint>/<slot>/`` (peft's format).
        ``check_only``: the adapters were loaded already (e.g. with the rest of a trainer checkpoint);
        only check the checkpoint holds them. A checkpoint without them is refused: the model would
        run on the bare base."""
        for slot in self.adapter_only_slots():
            weights = optional_checkpoint_file(checkpoint, f"{slot}/{ADAPTER_WEIGHTS_NAME}", **hub_kwargs)
            if weights is None:
                raise InputError(f"{checkpoint} has no adapter for {slot}: {slot}/{ADAPTER_WEIGHTS_NAME} is missing")
            if not check_only:
                load_peft_adapter(getattr(self, slot), weights)

    def restore_backbones_after_load(self, local_files_only: bool = False) -> None:
        """After ``from_pretrained``: reload adapter-only bases (once, from ``backbone_name_or_path``),
        give a frozen base its own dtype back, and re-freeze (loading materialises fresh parameters
        with ``requires_grad=True``)."""
        for slot in self.backbone_slots:
            settings = self.backbone_settings(slot)
            backbone = getattr(self, slot)
            if not settings.save_base_weights:
                load_base_weights(backbone, settings, local_files_only)
            elif settings.use_lora:
                restore_base_dtype(backbone, getattr(settings.config, "dtype", None))
        self.freeze_backbone_bases()

    def save_pretrained(self, save_directory, *args, state_dict=None, is_main_process: bool = True, **kwargs):
        out = super().save_pretrained(
            save_directory, *args, state_dict=self.drop_base_weights(state_dict), is_main_process=is_main_process, **kwargs
        )
        if is_main_process:
            for slot in self.adapter_only_slots():
                sub = None if state_dict is None else {
                    k.removeprefix(f"{slot}."): v for k, v in state_dict.items() if k.startswith(f"{slot}.")
                }
                save_peft_adapter(getattr(self, slot), self.backbone_settings(slot), os.path.join(save_directory, slot), sub)
        return out

    def adapter_state_from(self, checkpoint: str, **hub_kwargs) -> dict[str, torch.Tensor]:
        """The adapters a checkpoint keeps in peft's format, as this model's state-dict entries
        (``<slot>.<...>.lora_A.default.weight``); empty for a checkpoint without them."""
        state = {}
        for slot in self.adapter_only_slots():
            weights = optional_checkpoint_file(checkpoint, f"{slot}/{ADAPTER_WEIGHTS_NAME}", **hub_kwargs)
            if weights is not None:
                state.update({f"{slot}.{k}": v for k, v in peft_file_to_state_dict(weights).items()})
        return state

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        wants_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs)
        # The base of an adapter-only checkpoint is fetched under the same rule as the checkpoint.
        local = bool(kwargs.get("local_files_only", False))
        model.restore_backbones_after_load(local_files_only=local)
        hub = {k: kwargs[k] for k in ("cache_dir", "revision", "token", "subfolder") if k in kwargs}
        model.load_adapters_from(pretrained_model_name_or_path, local_files_only=local, **hub)
        model.freeze_backbone_bases()
        return (model, info) if wants_info else model

    def backbone_compute_dtype(self, slot: str = "backbone") -> torch.dtype:
        """Dtype a backbone computes in (its input embedding's); ``inputs_embeds`` are cast to it."""
        return getattr(self, slot).get_input_embeddings().weight.dtype


class BackboneFamilyPreTrainedModel(PreTrainedModel):
    """Base of a family's ``PreTrainedModel`` around LLM backbones: ``post_init`` initialises only the
    layers the family adds (listed in ``self._new_layers``, N(0, ``config.initializer_range``), zero
    bias); the backbones (pretrained or not) and peft's LoRA layers keep their own init."""

    main_input_name = "history"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    # forward() averages the loss itself; Trainer must not pass num_items_in_batch.
    accepts_loss_kwargs = False

    def _init_weights(self, module: nn.Module) -> None:
        if module in getattr(self, "_new_layers", ()):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)


def left_padded_position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids ``[B, T]`` for left-padded rows: real tokens count 0, 1, ... from the first one
    (LlamaModel's default ``arange`` would count the padding). Padding gets 0."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


def check_positions(backbone_config: PretrainedConfig | dict | None, needed: int, what: str) -> None:
    """Refuse a model whose backbone cannot place ``needed`` positions (``max_position_embeddings``)."""
    if backbone_config is None:
        return
    limit = (
        backbone_config.get("max_position_embeddings")
        if isinstance(backbone_config, dict)
        else getattr(backbone_config, "max_position_embeddings", None)
    )
    if limit is not None and needed > limit:
        raise InputError(f"{what} needs {needed} positions but the backbone has max_position_embeddings={limit}")


def attention_implementation(backbone: PreTrainedModel | None) -> str | None:
    """The attention implementation a given backbone was built with (``None`` for a fresh one)."""
    return backbone.config._attn_implementation if backbone is not None else None
