import pytest
import torch
from transformers import AutoConfig, AutoModel

from hf_genrec import DataCollatorForRecommendation, LlamaRecConfig, LlamaRecForCodeGeneration, RQVAEConfig, RQVAEModel
from hf_genrec.utils import EmptyHistoryError, UnknownItemError

from .conftest import TINY_LLAMA, tiny_config, tiny_recommender

ROWS = [{"history": [1, 2, 3], "target": 4}, {"history": [5], "target": 6}, {"history": [7, 8, 9, 10, 11], "target": 12}]


def batch(model, rows=ROWS):
    """What the Trainer feeds the model: item ids (the model looks codes up in its own table)."""
    return DataCollatorForRecommendation(max_history=10)(rows)


def brute_force_scores(model, rows):
    """Score every item by teacher-forced log-likelihood of its 4 codes: ``[B, N + 1]`` (col 0 = -inf)."""
    scores = torch.full((len(rows), model.config.num_items + 1), float("-inf"))
    with torch.no_grad():
        for item in range(1, model.config.num_items + 1):
            b = batch(model, [{"history": r["history"], "target": item} for r in rows])
            logp = model(**b).logits.float().log_softmax(-1)
            labels = model.codes_for_items(b["targets"])
            scores[:, item] = logp.gather(2, labels.unsqueeze(-1)).squeeze(-1).sum(1)
    return scores


def history_part(model, b):
    """The left-padded history codes ``generate()`` reads."""
    inputs = model.code_inputs(b["history"])
    return inputs["input_ids"], inputs["attention_mask"]


def test_collator_passes_left_padded_item_ids():
    b = batch(None)
    assert b["history"].tolist() == [[0, 0, 1, 2, 3], [0, 0, 0, 0, 5], [7, 8, 9, 10, 11]]
    assert b["targets"].tolist() == [4, 6, 12]
    assert DataCollatorForRecommendation(max_history=2)(ROWS[:1])["history"].tolist() == [[2, 3]]


def test_code_layout_has_no_target_leak():
    model = tiny_recommender()
    ids = batch(model)
    b = model.code_inputs(ids["history"], ids["targets"])
    codes = model.item_codes
    assert b["input_ids"].shape == (3, 5 * 4 + 3)
    assert b["seq_end_positions"].tolist() == [19, 19, 19]
    assert b["target_positions"][0].tolist() == [19, 20, 21, 22]
    # Row 1 is left padded: 4 history codes + 3 target codes at the end.
    assert (b["input_ids"][1, :16] == -1).all() and b["attention_mask"][1].sum() == 7
    assert b["input_ids"][1, 16:20].tolist() == codes[5].tolist()
    assert b["input_ids"][1, 20:].tolist() == codes[6, :3].tolist()
    assert torch.equal(b["labels"], codes[torch.tensor([4, 6, 12])])
    # The hidden state predicting target code l sits before that code: position p reads tokens <= p,
    # and the target's code l is at p + 1.
    for lvl in range(4):
        pos = b["target_positions"][0, lvl]
        if pos + 1 < b["input_ids"].shape[1]:
            assert b["input_ids"][0, pos + 1] == b["labels"][0, lvl]


def test_collator_and_model_reject_empty_history_and_unknown_items():
    model = tiny_recommender()
    with pytest.raises(EmptyHistoryError, match="empty history"):
        batch(model, [{"history": [], "target": 3}])
    with pytest.raises(UnknownItemError, match="unknown item id 99"):
        model(**batch(model, [{"history": [99], "target": 3}]))
    with pytest.raises(UnknownItemError, match="unknown item id 31"):
        model(**batch(model, [{"history": [1], "target": 31}]))
    with pytest.raises(EmptyHistoryError):
        model(history=torch.zeros(1, 3, dtype=torch.long), targets=torch.tensor([1]))


def test_forward_shapes_and_finite_loss():
    model = tiny_recommender()
    out = model(**batch(model))
    assert out.logits.shape == (3, 4, 4)
    assert out.seq_latents.shape == (3, 32)
    assert out.seq_project_latents.shape == (3, 8)
    assert out.dec_latents.shape == (3, 16)
    assert torch.isfinite(out.loss)


def test_left_padding_does_not_change_outputs():
    model = tiny_recommender(use_lora=False).eval()
    alone = model(**batch(model, ROWS[1:2]))
    padded = model(**batch(model, ROWS[1:3]))
    assert torch.allclose(alone.logits[0], padded.logits[0], atol=1e-5)
    assert torch.allclose(alone.dec_latents[0], padded.dec_latents[0], atol=1e-5)


def test_gradients_reach_codebooks_projectors_adapters_and_lora_only():
    model = tiny_recommender(use_lora=True)
    out = model(**batch(model))
    (out.loss + out.seq_project_latents.sum() + out.dec_latents.sum()).backward()
    named = dict(model.named_parameters())
    for name in [
        "codebooks.0.weight",
        "codebooks.1.weight",
        "codebooks.2.weight",
        "suffix_embedding.weight",
        "scid_projector.weight",
        "output_projector.weight",
        "enc_adapter.weight",
        "dec_adapter.weight",
    ]:
        assert named[name].grad is not None and named[name].grad.abs().sum() > 0, name
    lora = [n for n in named if "lora_" in n]
    assert lora and all(named[n].grad is not None for n in lora)
    frozen = [n for n, p in named.items() if n.startswith("backbone.") and "lora_" not in n]
    assert frozen and all(not named[n].requires_grad and named[n].grad is None for n in frozen)


def test_frozen_weights_do_not_move_under_an_optimizer_step():
    model = tiny_recommender(use_lora=True)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(**batch(model)).loss.backward()
    opt.step()
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters() if n in before)


def test_new_layers_initialised_normal_002():
    model = tiny_recommender(use_lora=False, num_items=10)
    w = torch.cat([model.scid_projector.weight.flatten(), model.output_projector.weight.flatten()])
    assert abs(w.std().item() - 0.02) < 0.005 and model.enc_adapter.bias.abs().sum() == 0


@pytest.mark.parametrize("use_lora", [True, False])
def test_generate_equals_brute_force_ranking(use_lora):
    model = tiny_recommender(use_lora=use_lora, num_items=30).eval()
    b = batch(model)
    out = model.generate(*history_part(model, b), num_beams=30, num_return_sequences=30)
    scores = brute_force_scores(model, ROWS)
    expected = scores[:, 1:].argsort(1, descending=True) + 1
    assert torch.equal(out.item_ids, expected)
    assert torch.allclose(out.scores, scores.gather(1, out.item_ids), atol=1e-4)
    assert torch.equal(out.codes, model.item_codes[out.item_ids])


def test_generate_returns_valid_distinct_items_with_few_beams_and_chunks():
    model = tiny_recommender(num_items=40).eval()
    b = batch(model)
    out = model.generate(*history_part(model, b), num_beams=6, num_return_sequences=5, chunk_size=1)
    assert out.item_ids.shape == (3, 5)
    for row in out.item_ids:
        assert len(set(row.tolist())) == 5 and all(1 <= i <= 40 for i in row.tolist())
    assert (out.scores[:, :-1] >= out.scores[:, 1:]).all()
    again = model.generate(*history_part(model, b), num_beams=6, num_return_sequences=5, chunk_size=64)
    assert torch.equal(out.item_ids, again.item_ids)


def test_generate_pads_when_catalogue_is_smaller_than_k():
    model = tiny_recommender(num_items=3).eval()
    out = model.recommend([[1, 2]], top_k=5, num_beams=5)
    assert sorted(out.item_ids[0, :3].tolist()) == [1, 2, 3] and out.item_ids[0, 3:].tolist() == [-1, -1]
    assert torch.isinf(out.scores[0, 3:]).all()


def test_recommend_validates_input():
    model = tiny_recommender().eval()
    with pytest.raises(ValueError, match="history 1 is empty"):
        model.recommend([[1], []])
    with pytest.raises(UnknownItemError, match="unknown item id.* 31"):
        model.recommend([[31]])


def test_item_code_table_validation():
    model = tiny_recommender(num_items=5)
    with pytest.raises(ValueError, match="not unique"):
        model.set_item_codes(torch.zeros(5, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="must be"):
        model.set_item_codes(torch.zeros(4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="out of range"):
        model.set_item_codes(torch.full((5, 4), 9))


def test_codebook_copies_both_ways():
    model = tiny_recommender()
    tok = RQVAEModel(RQVAEConfig(semantic_dim=16, hidden_dims=[16], codebook_dim=8, codebook_size=4))
    model.copy_codebooks_from(tok)
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(model.codebooks, tok.codebooks))
    with torch.no_grad():
        model.codebooks[0].weight.add_(1)
    model.copy_codebooks_to(tok)
    assert torch.equal(model.codebooks[0].weight, tok.codebooks[0].weight)
    assert model.codebooks[0].weight.data_ptr() != tok.codebooks[0].weight.data_ptr()
    with pytest.raises(ValueError, match="do not match"):
        model.copy_codebooks_from(RQVAEModel(RQVAEConfig(semantic_dim=16, codebook_dim=8, codebook_size=5)))


def assert_same_model(a, b, rows=ROWS):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [n for n, p in a.named_parameters() if p.requires_grad] == [n for n, p in b.named_parameters() if p.requires_grad]
    x = batch(a, rows)
    ga = a.eval().generate(*history_part(a, x), num_beams=8, num_return_sequences=5)
    gb = b.eval().generate(*history_part(b, x), num_beams=8, num_return_sequences=5)
    assert torch.equal(ga.item_ids, gb.item_ids) and torch.allclose(ga.scores, gb.scores)


@pytest.mark.parametrize("use_lora", [True, False])
def test_save_and_from_pretrained_round_trip(tmp_path, use_lora):
    model = tiny_recommender(use_lora=use_lora)
    model.save_pretrained(tmp_path)
    back = LlamaRecForCodeGeneration.from_pretrained(tmp_path)
    assert_same_model(model, back)
    assert back.config.num_items == 30 and back.config.backbone_config.hidden_size == 32


def test_auto_classes_load_it(tmp_path):
    model = tiny_recommender()
    model.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), LlamaRecConfig)
    back = AutoModel.from_pretrained(tmp_path)
    assert isinstance(back, LlamaRecForCodeGeneration)
    assert_same_model(model, back)


def test_push_to_hub_round_trip_through_a_local_folder(tmp_path, monkeypatch):
    """push_to_hub with the hub upload routed to a folder, then from_pretrained on that folder."""
    import shutil
    from types import SimpleNamespace

    from huggingface_hub import HfApi

    from hf_genrec import ItemIdMap

    remote = tmp_path / "remote"
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: SimpleNamespace(repo_id=repo_id))
    monkeypatch.setattr(
        HfApi, "upload_folder", lambda self, repo_id, folder_path, **kw: shutil.copytree(folder_path, remote / repo_id)
    )
    model = tiny_recommender()
    model.set_item_map(ItemIdMap([f"i{n}" for n in range(30)]))
    model.push_to_hub("me/llamarec-tiny")
    assert (remote / "me/llamarec-tiny" / "config.json").exists()
    back = LlamaRecForCodeGeneration.from_pretrained(remote / "me/llamarec-tiny")
    assert_same_model(model, back)
    assert back.item_map == model.item_map


def test_gradient_checkpointing_gives_same_gradients():
    model = tiny_recommender(use_lora=False)
    b = batch(model)
    model.train()
    model(**b).loss.backward()
    ref = model.scid_projector.weight.grad.clone()
    model.zero_grad()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert model.backbone.gradient_checkpointing
    model(**b).loss.backward()
    assert torch.allclose(ref, model.scid_projector.weight.grad, atol=1e-6)


def test_bf16_forward_and_generate():
    model = tiny_recommender(use_lora=False).to(torch.bfloat16).eval()
    out = model(**batch(model))
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.loss)
    assert (model.recommend([[1, 2]], top_k=3).item_ids > 0).all()


def test_bf16_backbone_with_fp32_new_layers(tmp_path):
    """What from_backbone builds for a 7B: a bf16 backbone, fp32 trainable layers; both paths run."""
    model = tiny_recommender(use_lora=True)
    model.backbone.to(torch.bfloat16)
    assert model.scid_projector.weight.dtype == torch.float32 and model.backbone_dtype == torch.bfloat16
    out = model(**batch(model))
    assert out.logits.dtype == torch.float32 and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.codebooks[0].weight.grad.dtype == torch.float32
    assert (model.eval().recommend([[1, 2]], top_k=3).item_ids > 0).all()


def test_from_backbone_wraps_a_local_checkpoint(tmp_path):
    from transformers import LlamaConfig, LlamaModel

    cfg = {k: v for k, v in TINY_LLAMA.items() if k != "model_type"}
    LlamaModel(LlamaConfig(**cfg)).to(torch.bfloat16).save_pretrained(tmp_path / "llama")
    model = LlamaRecForCodeGeneration.from_backbone(
        str(tmp_path / "llama"), num_items=5, codebook_size=4, suffix_size=4, codebook_dim=8, semantic_dim=16,
        lora_r=4, lora_alpha=8,
    )
    assert model.backbone_dtype == torch.bfloat16 and model.scid_projector.weight.dtype == torch.float32
    assert model.config.backbone_name_or_path == str(tmp_path / "llama")
    # Wrapping must not change what the backbone computes.
    alone = LlamaModel.from_pretrained(tmp_path / "llama", dtype=torch.bfloat16)
    x = torch.randn(2, 5, 32, dtype=torch.bfloat16)
    assert torch.equal(alone(inputs_embeds=x).last_hidden_state, model.backbone(inputs_embeds=x).last_hidden_state)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad and n.startswith("backbone.")]
    assert trainable and all("lora_" in n for n in trainable)


def test_adapter_only_checkpoint_of_a_pretrained_backbone(tmp_path):
    import os

    from transformers import LlamaConfig, LlamaModel

    cfg = {k: v for k, v in TINY_LLAMA.items() if k != "model_type"}
    LlamaModel(LlamaConfig(**cfg)).to(torch.bfloat16).save_pretrained(tmp_path / "llama")
    model = LlamaRecForCodeGeneration.from_backbone(
        str(tmp_path / "llama"), num_items=30, codebook_size=4, suffix_size=4, codebook_dim=8, semantic_dim=16,
        lora_r=4, lora_alpha=8,
    )
    assert model.config.save_base_weights is False
    from .conftest import unique_codes

    model.set_item_codes(unique_codes(30))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)
    model.save_pretrained(tmp_path / "ckpt")
    from safetensors.torch import load_file

    saved = load_file(os.path.join(tmp_path / "ckpt", "model.safetensors"))
    assert not any(k.startswith("backbone.") for k in saved)  # our layers only; the adapter is in peft's format
    assert "item_codes" in saved and "codebooks.0.weight" in saved
    assert (tmp_path / "ckpt" / "backbone" / "adapter_config.json").exists()
    back = LlamaRecForCodeGeneration.from_pretrained(tmp_path / "ckpt")
    assert back.backbone_dtype == torch.bfloat16
    assert_same_model(model, back)
    # peft's own tools read the adapter onto the base.
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(LlamaModel.from_pretrained(tmp_path / "llama"), str(tmp_path / "ckpt" / "backbone"))
    ours = {k.replace(".default", ""): v for k, v in model.backbone.state_dict().items() if "lora_" in k}
    theirs = {k.removeprefix("base_model.model.").replace(".default", ""): v for k, v in peft_model.state_dict().items()
              if "lora_" in k}
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    # A checkpoint whose adapter is missing (the layout before peft's format kept it in the main
    # weights; its configs listed no checkpoint_files) is refused, not run on the bare base.
    from safetensors.torch import save_file

    old = {**saved, **{f"backbone.{k}": v for k, v in model.backbone.state_dict().items() if "lora_" in k}}
    save_file({k: v.contiguous() for k, v in old.items()}, tmp_path / "ckpt" / "model.safetensors", metadata={"format": "pt"})
    import shutil

    shutil.rmtree(tmp_path / "ckpt" / "backbone")
    import json

    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    del config["checkpoint_files"]
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="has no adapter for backbone: backbone/adapter_model.safetensors is missing"):
        LlamaRecForCodeGeneration.from_pretrained(tmp_path / "ckpt")
    # The base is resolved under the caller's rule: local_files_only reaches it (the server's default).
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    config["backbone_name_or_path"] = "someone/remote-base"
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(OSError, match="'someone/remote-base' of this adapter-only checkpoint \\(local files only"):
        LlamaRecForCodeGeneration.from_pretrained(tmp_path / "ckpt", local_files_only=True)


def test_lora_starts_as_identity():
    torch.manual_seed(0)
    model = LlamaRecForCodeGeneration(tiny_config(num_items=3))
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(torch.count_nonzero(p) == 0 for p in lora_b)
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if "lora_" in n)


@pytest.mark.parametrize("model_type", ["qwen2", "mistral"])
def test_other_decoder_only_backbones(tmp_path, model_type):
    """Qwen2 (q/k/v biases) and Mistral take the same path: exact constrained generation, LoRA
    training, round-trip, and their own block class for FSDP's auto-wrap."""
    from hf_genrec.training.joint import ETEGRecJointModel

    model = tiny_recommender(num_items=30, backbone=dict(TINY_LLAMA, model_type=model_type))
    assert model.backbone.config.model_type == model_type
    model.eval()
    out = model.generate(*history_part(model, batch(model)), num_beams=30, num_return_sequences=30)
    expected = brute_force_scores(model, ROWS)[:, 1:].argsort(1, descending=True) + 1
    assert torch.equal(out.item_ids, expected)

    model.train()
    model(**batch(model)).loss.backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any("lora_" in n for n in trained) and "codebooks.0.weight" in trained
    assert not any(n.startswith("backbone.") and "lora_" not in n for n in trained)

    model.save_pretrained(tmp_path)
    assert_same_model(model, LlamaRecForCodeGeneration.from_pretrained(tmp_path))
    tok = RQVAEModel(RQVAEConfig(semantic_dim=16, hidden_dims=[16], codebook_dim=8, codebook_size=4, suffix_size=4))
    joint = ETEGRecJointModel(model, tok, torch.randn(30, 16))
    block = {"qwen2": "Qwen2DecoderLayer", "mistral": "MistralDecoderLayer"}[model_type]
    assert joint._no_split_modules == [block]


def test_data_collator_for_code_seq_matches_code_inputs_and_follows_a_recoding():
    from hf_genrec import DataCollatorForCodeSeq

    model = tiny_recommender(use_lora=False, max_history=4).eval()
    collate = DataCollatorForCodeSeq(model)
    rows = [{"history": [1, 2, 3, 4, 5, 6], "target": 7}, {"history": [8], "target": 9}]
    batch = collate(rows)
    want = model.code_inputs(torch.tensor([[3, 4, 5, 6], [0, 0, 0, 8]]))  # the last max_history items
    assert torch.equal(batch["input_ids"], want["input_ids"]) and torch.equal(batch["attention_mask"], want["attention_mask"])
    assert torch.equal(batch["labels"], model.item_codes[torch.tensor([7, 9])])
    with torch.no_grad():
        out = model.generate(batch["input_ids"], batch["attention_mask"], num_beams=30, num_return_sequences=5)
        direct = model.top_k_items(torch.tensor([[3, 4, 5, 6], [0, 0, 0, 8]]), 5, num_beams=30)
    assert torch.equal(out.item_ids, direct.item_ids)
    # Re-coding the model (as a tokenizer epoch does) changes what the collator emits: no stale copy.
    codes = model.item_codes[1:].clone()
    model.set_item_codes(codes.roll(1, dims=0))
    assert torch.equal(collate(rows)["input_ids"][1, -4:], model.item_codes[8])
    with pytest.raises(EmptyHistoryError):
        collate([{"history": []}])
