"""The shared backbone lifecycle (hf_genrec.models.backbone) on its own, and on a two-backbone
family like HLLM's (item LLM + user LLM), so the next families get it tested."""

import copy

import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

from hf_genrec.models.backbone import (
    BackboneHolderMixin,
    BackboneSettings,
    attention_implementation,
    base_weight_names,
    build_backbone,
    freeze_base,
    reset_lora_init,
)
from hf_genrec.utils.errors import CheckpointError

from .conftest import TINY_LLAMA


def settings(use_lora=True, name_or_path=None, save_base_weights=True):
    cfg = dict(TINY_LLAMA)
    cfg = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    return BackboneSettings(cfg, name_or_path, use_lora, 4, 8, 0.0, ["q_proj", "v_proj"], save_base_weights)


def test_lora_injection_keeps_paths_freezes_base_and_starts_as_the_base():
    torch.manual_seed(0)
    plain = AutoModel.from_config(settings().config)
    lora = build_backbone(settings(), copy.deepcopy(plain))
    with torch.no_grad():  # what an outer post_init does to the injected layers
        for n, p in lora.named_parameters():
            if "lora_" in n:
                p.normal_(std=0.02)
    reset_lora_init(lora)
    freeze_base(lora)
    names = base_weight_names(lora, "backbone")
    assert names and all("lora_" not in n for n in names)
    assert any(".q_proj.base_layer.weight" in n for n in names)
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        assert torch.allclose(plain(inputs_embeds=x).last_hidden_state, lora(inputs_embeds=x).last_hidden_state, atol=1e-6)


def test_adapters_train_in_fp32_on_a_bf16_base():
    backbone = build_backbone(settings(), AutoModel.from_config(settings().config).to(torch.bfloat16))
    freeze_base(backbone)
    dtypes = {("lora_" in n, p.dtype) for n, p in backbone.named_parameters()}
    assert dtypes == {(True, torch.float32), (False, torch.bfloat16)}


class TwoTowerConfig(PretrainedConfig):
    """A family with two LLM backbones (HLLM's shape): fields under the ``item_`` and ``user_`` prefixes."""

    model_type = "test_two_tower"
    sub_configs = {"item_backbone_config": AutoConfig, "user_backbone_config": AutoConfig}

    def __init__(self, item_backbone_config=None, user_backbone_config=None, **kwargs):
        for prefix, cfg in (("item_", item_backbone_config), ("user_", user_backbone_config)):
            if isinstance(cfg, dict):
                cfg = dict(cfg)
                cfg = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
            setattr(self, f"{prefix}backbone_config", cfg)
            setattr(self, f"{prefix}backbone_name_or_path", kwargs.pop(f"{prefix}backbone_name_or_path", None))
            setattr(self, f"{prefix}use_lora", kwargs.pop(f"{prefix}use_lora", True))
            setattr(self, f"{prefix}lora_r", kwargs.pop(f"{prefix}lora_r", 4))
            setattr(self, f"{prefix}lora_alpha", kwargs.pop(f"{prefix}lora_alpha", 8))
            setattr(self, f"{prefix}lora_dropout", kwargs.pop(f"{prefix}lora_dropout", 0.0))
            setattr(self, f"{prefix}lora_target_modules", kwargs.pop(f"{prefix}lora_target_modules", ["q_proj", "v_proj"]))
            setattr(self, f"{prefix}save_base_weights", kwargs.pop(f"{prefix}save_base_weights", True))
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)


class TwoTowerModel(BackboneHolderMixin, PreTrainedModel):
    config_class = TwoTowerConfig
    backbone_slots = {"item_llm": "item_", "user_llm": "user_"}

    def __init__(self, config, item_llm=None, user_llm=None):
        attn = {"item_llm": attention_implementation(item_llm), "user_llm": attention_implementation(user_llm)}
        super().__init__(config)
        self.item_llm = build_backbone(BackboneSettings.from_config(config, "item_"), item_llm)
        self.user_llm = build_backbone(BackboneSettings.from_config(config, "user_"), user_llm)
        self.head = nn.Linear(32, 8)
        self.post_init()
        self.finish_backbones(attn)

    def forward(self, x):
        return self.head(self.user_llm(inputs_embeds=self.item_llm(inputs_embeds=x).last_hidden_state).last_hidden_state)


def test_two_backbone_family_saves_adapters_only_and_reloads_both_bases(tmp_path):
    torch.manual_seed(0)
    paths = {}
    for name in ("item", "user"):
        base = AutoModel.from_config(settings().config)
        base.save_pretrained(tmp_path / f"{name}-base")
        paths[name] = str(tmp_path / f"{name}-base")
    config = TwoTowerConfig(
        TINY_LLAMA,
        TINY_LLAMA,
        item_backbone_name_or_path=paths["item"],
        user_backbone_name_or_path=paths["user"],
        item_save_base_weights=False,
        user_save_base_weights=False,
    )
    model = TwoTowerModel(
        config, AutoModel.from_pretrained(paths["item"]), AutoModel.from_pretrained(paths["user"])
    ).eval()
    assert model.item_llm.config._attn_implementation == "sdpa" and model.user_llm.config._attn_implementation == "sdpa"
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.05)
    model.save_pretrained(tmp_path / "family")
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "family" / "model.safetensors")
    assert "head.weight" in saved
    assert not [k for k in saved if k.split(".")[0] in ("item_llm", "user_llm")]  # adapters: in peft's format
    for slot in ("item_llm", "user_llm"):
        adapter = load_file(tmp_path / "family" / slot / "adapter_model.safetensors")
        assert adapter and all(k.startswith("base_model.model.") and "lora_" in k for k in adapter)
    back = TwoTowerModel.from_pretrained(tmp_path / "family").eval()
    x = torch.randn(2, 3, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), back(x), atol=1e-5)
    assert all(("lora_" in n) == p.requires_grad for n, p in back.named_parameters() if n.split(".")[0] != "head")


def test_adapter_only_reload_fails_loudly_when_the_base_lacks_weights(tmp_path):
    other = dict(TINY_LLAMA, num_hidden_layers=1)
    small = AutoModel.from_config(AutoConfig.for_model(other.pop("model_type"), **other))
    small.save_pretrained(tmp_path / "small")
    config = TwoTowerConfig(
        TINY_LLAMA,
        TINY_LLAMA,
        item_backbone_name_or_path=str(tmp_path / "small"),
        user_backbone_name_or_path=str(tmp_path / "small"),
        item_save_base_weights=False,
    )
    TwoTowerModel(config).save_pretrained(tmp_path / "family")
    with pytest.raises(CheckpointError, match="lacks .* weights this model needs"):
        TwoTowerModel.from_pretrained(tmp_path / "family")


def test_adapter_only_needs_lora_and_a_base_path(tmp_path):
    config = TwoTowerConfig(TINY_LLAMA, TINY_LLAMA, item_save_base_weights=False)
    with pytest.raises(ValueError, match="item_llm: save_base_weights=False needs use_lora=True and a backbone_name_or_path"):
        TwoTowerModel(config).save_pretrained(tmp_path / "x")
