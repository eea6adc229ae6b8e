"""Estimate the GPU memory a training configuration needs, before running it (ETEGRec's LlamaRec and
the item-ID LLaMA; for the item-ID model: its stage 2, where the backbone or its LoRA trains too).

Parameter counts are exact: the model is built on the meta device (no memory). Activation
memory is measured, not guessed: one forward + loss of 1- and 2-layer copies of the backbone
at the real width runs on CPU with a short sequence, and every tensor autograd saves for
backward is counted (parameters and shared storages once). The 2-minus-1 difference is the
per-layer cost; both scale linearly with tokens under SDPA attention (no T x T matrix saved).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .models.itemid import ItemIDLlamaConfig, ItemIDLlamaForRecommendation
from .models.llamarec import LlamaRecConfig, LlamaRecForCodeGeneration
from .utils.errors import InputError

GB = 2**30


@dataclass
class MemoryEstimate:
    """Bytes, split by what holds them. ``total`` uses ``activations_checkpointed`` when
    ``gradient_checkpointing`` is on, else ``activations``."""

    frozen_weights: float
    trainable_weights: float
    gradients: float
    optimizer_states: float
    activations: float
    activations_checkpointed: float
    gathered_weights: float
    gradient_checkpointing: bool
    trainable_params: int
    frozen_params: int
    tokens_per_step: int

    @property
    def total(self) -> float:
        act = self.activations_checkpointed if self.gradient_checkpointing else self.activations
        return self.frozen_weights + self.trainable_weights + self.gradients + self.optimizer_states + self.gathered_weights + act

    def table(self) -> str:
        rows = [
            ("frozen weights", self.frozen_weights),
            ("trainable weights (fp32)", self.trainable_weights),
            ("gradients (fp32)", self.gradients),
            ("optimizer states", self.optimizer_states),
            ("gathered FSDP units (root + 2 layers)", self.gathered_weights),
            ("activations, no checkpointing", self.activations),
            ("activations, checkpointing", self.activations_checkpointed),
            (f"total ({'with' if self.gradient_checkpointing else 'without'} checkpointing)", self.total),
        ]
        head = f"{self.trainable_params / 1e6:.1f}M trainable / {self.frozen_params / 1e6:.1f}M frozen params, "
        head += f"{self.tokens_per_step} tokens per step (framework/allocator overhead not included)"
        return head + "\n" + "\n".join(f"  {name:<42}{b / GB:>9.2f} GB" for name, b in rows)

    def to_dict(self) -> dict:
        return asdict(self) | {"total": self.total}


def _llamarec_probe(cfg: LlamaRecConfig, tokens: int) -> tuple[nn.Module, dict, int]:
    """A LlamaRec model, a batch of about ``tokens`` code tokens, and its exact token count."""
    cfg.backbone_config.vocab_size = 8  # the token embedding is never used by code inputs
    items = max(tokens // cfg.code_length, 1)
    cfg.num_items = items + 1
    model = LlamaRecForCodeGeneration(cfg)
    # Random codes, written straight into the table: the probe needs the layout, not unique items.
    gen = torch.Generator().manual_seed(0)
    model.item_codes[1:] = torch.randint(0, min(cfg.codebook_size, cfg.suffix_size), (items + 1, cfg.code_length), generator=gen)
    batch = {"history": torch.arange(1, items + 1).unsqueeze(0), "targets": torch.tensor([items + 1])}
    return model, batch, items * cfg.code_length + cfg.code_length - 1


def _itemid_probe(cfg: ItemIDLlamaConfig, tokens: int) -> tuple[nn.Module, dict, int]:
    """An item-ID model over ``tokens + 1`` items, one history of ``tokens`` item tokens."""
    cfg.backbone_config.vocab_size = 8
    cfg.num_items = tokens + 1
    cfg.num_clusters = min(cfg.num_clusters, cfg.num_items)
    cfg.cluster_capacity = None
    model = ItemIDLlamaForRecommendation(cfg)
    return model, {"history": torch.arange(1, tokens + 1).unsqueeze(0), "targets": torch.tensor([tokens + 1])}, tokens


FAMILIES = {
    LlamaRecConfig: (LlamaRecForCodeGeneration, _llamarec_probe),
    ItemIDLlamaConfig: (ItemIDLlamaForRecommendation, _itemid_probe),
}


def _family(config) -> tuple[type, object]:
    for cls, family in FAMILIES.items():
        if isinstance(config, cls):
            return family
    raise TypeError(f"no memory estimate for {type(config).__name__}; known: {[c.__name__ for c in FAMILIES]}")


def _saved_activation_bytes_per_token(config, num_layers: int, tokens: int, dtype: torch.dtype) -> float:
    """Bytes per token autograd saves for backward in one forward + loss over about ``tokens`` tokens."""
    cfg = copy.deepcopy(config)
    cfg.backbone_config.num_hidden_layers = num_layers
    torch.manual_seed(0)
    model, batch, actual_tokens = _family(cfg)[1](cfg, tokens)
    model.backbone.to(dtype)
    model.train()
    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    total = 0

    def pack(t: torch.Tensor):
        nonlocal total
        ptr = t.untyped_storage().data_ptr()
        if ptr not in param_ptrs and ptr not in seen:
            seen.add(ptr)
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(**batch)
        extra = [out[k].sum() for k in ("seq_project_latents", "dec_latents") if out.get(k) is not None]  # ETEGRec's SIA/PSA
        (out.loss + sum(extra)).backward()
    return total / actual_tokens


def estimate_training_memory(
    config: LlamaRecConfig | ItemIDLlamaConfig,
    batch_size: int,
    seq_len: int,
    optim: str = "adamw_bnb_8bit",
    gradient_checkpointing: bool = True,
    weight_dtype: torch.dtype = torch.bfloat16,
    probe_tokens: int = 64,
    shard_over: int = 1,
) -> MemoryEstimate:
    """Estimate training memory per device for ``config`` at ``batch_size`` sequences of ``seq_len`` tokens.

    Args:
        optim: ``adamw_bnb_8bit`` (2 bytes of state per parameter, 32-bit for tensors under 4096
            elements as bitsandbytes does) or any 32-bit AdamW (8 bytes per parameter).
        weight_dtype: dtype of the frozen backbone (and of activations).
        shard_over: FSDP processes (``examples/accelerate/fsdp2.yaml``): weights, gradients and
            optimizer states are split over them; each device also holds the root unit and up
            to two decoder layers (the running one and the prefetched one) gathered in ``weight_dtype``.
    """
    if shard_over < 1:
        raise InputError(f"shard_over must be >= 1, got {shard_over}")
    with torch.device("meta"):
        model = _family(config)[0](config)
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    n_train = sum(p.numel() for p in trainable)
    n_frozen = sum(p.numel() for p in frozen)
    wbytes = torch.finfo(weight_dtype).bits // 8
    if "8bit" in optim:
        opt = sum(2 * p.numel() if p.numel() >= 4096 else 8 * p.numel() for p in trainable)
    else:
        opt = 8 * n_train
    one = _saved_activation_bytes_per_token(config, 1, probe_tokens, weight_dtype)
    two = _saved_activation_bytes_per_token(config, 2, probe_tokens, weight_dtype)
    per_layer_token = max(two - one, 0)
    fixed_token = max(one - (two - one), 0)
    tokens = batch_size * seq_len
    layers = config.backbone_config.num_hidden_layers
    full = tokens * (layers * per_layer_token + fixed_token)
    # Checkpointing keeps each layer's input (hidden states) and recomputes one layer at a time.
    ckpt = tokens * (layers * config.hidden_size * wbytes + per_layer_token + fixed_token)
    gathered = 0.0
    if shard_over > 1:
        layer_params = sum(p.numel() for p in model.backbone.layers[0].parameters())
        root_params = n_train + n_frozen - layers * layer_params
        gathered = (root_params + 2 * layer_params) * wbytes
    return MemoryEstimate(
        frozen_weights=n_frozen * wbytes / shard_over,
        trainable_weights=4 * n_train / shard_over,
        gradients=4 * n_train / shard_over,
        optimizer_states=opt / shard_over,
        activations=full,
        activations_checkpointed=ckpt,
        gathered_weights=gathered,
        gradient_checkpointing=gradient_checkpointing,
        trainable_params=n_train,
        frozen_params=n_frozen,
        tokens_per_step=tokens,
    )
