import pytest
import torch

from hf_genrec import LlamaRecConfig, LlamaRecForCodeGeneration
from hf_genrec.memory import _saved_activation_bytes_per_token, estimate_training_memory

from .conftest import TINY_LLAMA, tiny_config


def config(layers=3, **kw):
    return tiny_config(num_items=50, layers=layers, **kw)


def test_parameter_counts_are_exact():
    cfg = config()
    est = estimate_training_memory(cfg, batch_size=2, seq_len=16, optim="adamw_torch", weight_dtype=torch.float32)
    model = LlamaRecForCodeGeneration(cfg)
    assert est.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert est.frozen_params == sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert est.optimizer_states == 8 * est.trainable_params
    assert est.gradients == est.trainable_weights == 4 * est.trainable_params


def test_activation_extrapolation_matches_a_traced_deeper_longer_run():
    cfg = config(layers=3)
    est = estimate_training_memory(cfg, batch_size=1, seq_len=96, weight_dtype=torch.float32, probe_tokens=32)
    traced = 96 * _saved_activation_bytes_per_token(cfg, 3, 96, torch.float32)
    assert est.activations == pytest.approx(traced, rel=0.1)
    assert est.activations_checkpointed < est.activations


def test_8bit_states_are_smaller_and_checkpointing_lowers_total():
    # Wide enough that LoRA tensors reach 4096 elements (bitsandbytes keeps smaller ones in 32 bit).
    cfg = LlamaRecConfig(
        backbone_config=dict(TINY_LLAMA, hidden_size=128, intermediate_size=256),
        num_items=50,
        codebook_size=4,
        suffix_size=4,
        codebook_dim=8,
        semantic_dim=16,
        lora_r=64,
        lora_alpha=128,
    )
    a = estimate_training_memory(cfg, 4, 32, optim="adamw_bnb_8bit", gradient_checkpointing=True)
    b = estimate_training_memory(cfg, 4, 32, optim="adamw_torch", gradient_checkpointing=False)
    assert a.optimizer_states < b.optimizer_states and a.total < b.total
    assert "total (with checkpointing)" in a.table()


def test_fsdp_sharding_splits_model_state_but_not_activations():
    cfg = config(layers=4)
    one = estimate_training_memory(cfg, 2, 32, optim="adamw_torch", weight_dtype=torch.float32)
    four = estimate_training_memory(cfg, 2, 32, optim="adamw_torch", weight_dtype=torch.float32, shard_over=4)
    for part in ("frozen_weights", "trainable_weights", "gradients", "optimizer_states"):
        assert getattr(four, part) == pytest.approx(getattr(one, part) / 4)
    assert four.activations == one.activations and one.gathered_weights == 0
    model = LlamaRecForCodeGeneration(cfg)
    layer = sum(p.numel() for p in model.backbone.layers[0].parameters())
    everything = sum(p.numel() for p in model.parameters())
    assert four.gathered_weights == 4 * (everything - 4 * layer + 2 * layer)  # fp32: root unit + 2 layers
    with pytest.raises(ValueError, match="shard_over"):
        estimate_training_memory(cfg, 2, 32, shard_over=0)


def itemid_config(layers=3, use_lora=False):
    from hf_genrec import ItemIDLlamaConfig

    return ItemIDLlamaConfig(
        backbone_config=dict(TINY_LLAMA, num_hidden_layers=layers),
        num_items=500,
        item_embedding_dim=16,
        num_clusters=20,
        use_lora=use_lora,
        lora_r=4,
        lora_alpha=8,
    )


@pytest.mark.parametrize("use_lora", [False, True])
def test_item_id_family_counts_are_exact_and_activations_extrapolate(use_lora):
    from hf_genrec import ItemIDLlamaForRecommendation

    cfg = itemid_config(use_lora=use_lora)
    est = estimate_training_memory(
        cfg, batch_size=1, seq_len=96, optim="adamw_torch", weight_dtype=torch.float32, probe_tokens=32
    )
    model = ItemIDLlamaForRecommendation(cfg)
    assert est.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert est.frozen_params == sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert (est.frozen_params > 0) == use_lora
    traced = 96 * _saved_activation_bytes_per_token(cfg, 3, 96, torch.float32)
    assert est.activations == pytest.approx(traced, rel=0.1)


def test_memory_estimate_names_unknown_families():
    from transformers import LlamaConfig

    with pytest.raises(TypeError, match="no memory estimate for LlamaConfig"):
        estimate_training_memory(LlamaConfig(), batch_size=1, seq_len=8)
