import math
import os

import pytest
import torch
from transformers import TrainerCallback

from hf_genrec import CodeTrie, ETEGRecTrainer, ETEGRecTrainingArguments, RQVAEConfig, RQVAEModel
from hf_genrec.data import leave_one_out, make_synthetic_sequences
from hf_genrec.recipes.stages import build_recommender
from hf_genrec.training import TimeBudgetCallback, first_occurrence, psa_loss, sia_loss
from hf_genrec.training.checkpoint import read_weights
from hf_genrec.training.schedules import PhaseLRScheduler
from hf_genrec.utils.errors import CheckpointError

from .conftest import TINY_LLAMA


def setup(num_items=20, seed=0, use_lora=True):
    torch.manual_seed(seed)
    dsd = leave_one_out(make_synthetic_sequences(num_users=48, num_items=num_items, min_length=4, max_length=7, seed=seed))
    emb = torch.randn(dsd.num_items, 16)
    tok = RQVAEModel(RQVAEConfig(semantic_dim=16, hidden_dims=[16], codebook_dim=8, codebook_size=4, suffix_size=16))
    tok.kmeans_init(emb)
    rec = build_recommender(tok, emb, backbone_config=TINY_LLAMA, use_lora=use_lora, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    return dsd, emb, tok, rec


def args(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path),
        num_train_epochs=4,
        per_device_train_batch_size=32,
        per_device_eval_batch_size=32,
        learning_rate=5e-3,
        tokenizer_learning_rate=5e-3,
        eval_strategy="epoch",
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        eval_num_beams=10,
        warm_epoch=0,
        seed=0,
        data_seed=0,
        logging_steps=2,
    )
    base.update(kw)
    return ETEGRecTrainingArguments(**base)


class Recorder(TrainerCallback):
    """Checks the invariants of every phase from inside the training loop."""

    def __init__(self, trainer_ref):
        self.t = trainer_ref
        self.phases, self.problems = [], []

    def snapshot(self, module):
        return {n: p.detach().clone() for n, p in module.named_parameters()}

    def on_epoch_begin(self, args, state, control, **kw):
        t = self.t[0]
        self.phases.append(t.phase)
        self.rec0, self.tok0 = self.snapshot(t.recommender), self.snapshot(t.item_tokenizer)
        self.codes0 = t.recommender.item_codes.clone()

    def on_epoch_end(self, args, state, control, **kw):
        # Runs after AlternatingTrainingCallback, so the copies and re-assignment are done.
        t = self.t[0]
        rec, tok = t.recommender, t.item_tokenizer
        sync, phase = args.codebook_sync, t.phase
        same = all(torch.equal(a.weight, b.weight) for a, b in zip(rec.codebooks, tok.codebooks))
        if (sync == "both" or (sync == "tokenizer_to_recommender" and phase == "tokenizer")) and not same:
            self.problems.append(f"epoch {state.epoch}: codebooks differ after the {sync} copy")
        if sync == "none" and phase == "tokenizer":
            if not all(torch.equal(self.rec0[f"codebooks.{i}.weight"], b.weight) for i, b in enumerate(rec.codebooks)):
                self.problems.append("codebook_sync=none: the recommender's code embeddings were overwritten")
        frozen, moving = (rec, tok) if phase == "tokenizer" else (tok, rec)
        before = self.rec0 if frozen is rec else self.tok0
        written_back = sync == "both" and phase == "recommender"  # tokenizer codebooks get the copy
        copied_in = sync != "none" and phase == "tokenizer"  # recommender codebooks get the copy
        for n, p in frozen.named_parameters():
            exempt = "codebooks" in n and (written_back or copied_in)
            if not exempt and not torch.equal(before[n], p):
                self.problems.append(f"epoch {state.epoch}: frozen {n} moved in the {phase} phase")
        if not any(not torch.equal((self.tok0 if moving is tok else self.rec0)[n], p) for n, p in moving.named_parameters()):
            self.problems.append(f"epoch {state.epoch}: nothing trained in the {phase} phase")
        for n, p in rec.backbone.named_parameters():
            if "lora_" not in n and not torch.equal(self.rec0["backbone." + n], p):
                self.problems.append(f"LoRA base weight {n} moved")
        # In every mode the tokenizer reproduces the model's code table at every epoch end, so a
        # checkpoint saved now holds a consistent pair.
        if not torch.equal(rec.item_codes[1:], tok.get_codes(t.model.item_embeddings[1:])):
            self.problems.append(f"epoch {state.epoch}: the tokenizer's codes differ from the model's code table")
        if phase == "tokenizer":
            fresh = CodeTrie(rec.item_codes, rec.config.code_vocab)
            if not all(torch.equal(a, b) for a, b in zip(fresh.children, rec.trie.children)):
                self.problems.append("the beam-search trie is stale after re-assignment")


@pytest.mark.parametrize("sync", ["tokenizer_to_recommender", "none", "both"])
def test_two_cycles_of_alternating_training(tmp_path, sync):
    dsd, emb, tok, rec = setup()
    ref = []
    rec_cb = Recorder(ref)
    trainer = ETEGRecTrainer(
        model=rec,
        item_tokenizer=tok,
        item_embeddings=emb,
        args=args(tmp_path, codebook_sync=sync),
        train_dataset=dsd["train"],
        eval_dataset=dsd["validation"],
        callbacks=[rec_cb],
    )
    ref.append(trainer)
    trainer.train()
    assert rec_cb.phases == ["tokenizer", "recommender", "tokenizer", "recommender"]
    assert rec_cb.problems == []
    logs = trainer.state.log_history
    churn = [e for e in logs if "codes/changed_prefix" in e]
    assert len(churn) == (4 if sync == "both" else 2)
    assert all(max(e[f"codes/changed_level_{lv}"] for lv in range(3)) <= e["codes/changed_prefix"] for e in churn)
    assert any("vq_loss" in e for e in logs) and any("code_loss" in e for e in logs)
    evals = [e for e in logs if "eval_ndcg@10" in e]
    # Evaluated after the recommender epochs only (1 and 3), as in ETEGRec.
    assert [e["epoch"] for e in evals] == [2.0, 4.0] and all(0 <= e["eval_ndcg@10"] <= e["eval_recall@10"] <= 1 for e in evals)
    assert all(e["eval_recall@1"] <= e["eval_recall@5"] <= e["eval_recall@10"] for e in evals)


def test_eval_after_tokenizer_epochs_when_asked(tmp_path):
    dsd, emb, tok, rec = setup()
    a = args(tmp_path, num_train_epochs=2, eval_after_tokenizer_epochs=True)
    trainer = ETEGRecTrainer(
        model=rec, item_tokenizer=tok, item_embeddings=emb, args=a, train_dataset=dsd["train"], eval_dataset=dsd["validation"]
    )
    trainer.train()
    assert [e["epoch"] for e in trainer.state.log_history if "eval_ndcg@10" in e] == [1.0, 2.0]


def test_optimizer_has_every_parameter_and_a_tokenizer_group(tmp_path):
    dsd, emb, tok, rec = setup()
    a = args(tmp_path, eval_strategy="no")
    trainer = ETEGRecTrainer(model=rec, item_tokenizer=tok, item_embeddings=emb, args=a, train_dataset=dsd["train"])
    # Before train() both sides are trainable (DDP hooks only parameters that require grad when it wraps).
    assert all(p.requires_grad for p in tok.parameters()) and all(p.requires_grad for p in trainer._rec_trainable())
    opt = trainer.create_optimizer()
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert all(id(p) in in_opt for p in tok.parameters())
    trainable = [n for n, p in rec.named_parameters() if id(p) in in_opt]
    assert any("lora_" in n for n in trainable) and "codebooks.0.weight" in trainable and "suffix_embedding.weight" in trainable
    assert not any(n.startswith("backbone.") and "lora_" not in n for n in trainable)
    assert any(g["lr"] == 5e-3 and any(p is tok.codebooks[0].weight for p in g["params"]) for g in opt.param_groups)


def test_bnb_8bit_optimizer_keeps_tokenizer_in_32_bit(tmp_path):
    pytest.importorskip("bitsandbytes")
    dsd, emb, tok, rec = setup(use_lora=False)
    trainer = ETEGRecTrainer(
        model=rec,
        item_tokenizer=tok,
        item_embeddings=emb,
        args=args(tmp_path, optim="adamw_bnb_8bit", num_train_epochs=2, eval_strategy="no"),
        train_dataset=dsd["train"],
    )
    trainer.train()
    state = trainer.optimizer.optimizer.state if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer.state
    tok_state = state[tok.encoder[0].weight]
    assert tok_state["state1"].dtype == torch.float32
    big = rec.backbone.layers[0].mlp.gate_proj.weight  # 2048 elements: bnb keeps < 4096 in 32-bit too
    assert big in state


def test_gradient_accumulation_matches_a_full_batch(tmp_path):
    """Two half batches with accumulation take the same SGD step as one full batch (Adam would
    hide a wrong 1/GA scaling, SGD does not). SIA/PSA are off (warm_epoch) because their in-batch
    negatives make half batches a different loss; the code CE is a plain mean."""
    deltas = []
    for bs, ga in ((32, 1), (16, 2)):
        dsd, emb, tok, rec = setup(use_lora=False)
        before = rec.scid_projector.weight.detach().clone()
        a = args(
            tmp_path / f"{bs}",
            per_device_train_batch_size=bs,
            gradient_accumulation_steps=ga,
            max_steps=1,
            alternating=False,
            eval_strategy="no",
            optim="sgd",
            learning_rate=1.0,
            max_grad_norm=0.0,
            warm_epoch=100,
            lr_scheduler_type="constant",
        )
        ETEGRecTrainer(model=rec, item_tokenizer=tok, item_embeddings=emb, args=a, train_dataset=dsd["train"]).train()
        deltas.append(rec.scid_projector.weight.detach() - before)
    assert deltas[0].abs().max() > 1e-4
    assert torch.allclose(deltas[0], deltas[1], rtol=1e-3, atol=1e-6)


def test_resume_mid_phase_continues_in_the_right_phase(tmp_path):
    dsd, emb, tok, rec = setup()
    steps_per_epoch = math.ceil(len(dsd["train"]) / 32)
    a = args(tmp_path / "run", save_strategy="steps", save_steps=steps_per_epoch + 1, eval_strategy="no")
    full = ETEGRecTrainer(model=rec, item_tokenizer=tok, item_embeddings=emb, args=a, train_dataset=dsd["train"])
    full.train()
    ckpt = tmp_path / "run" / f"checkpoint-{steps_per_epoch + 1}"  # inside epoch 1: a recommender epoch
    assert (ckpt / "item_tokenizer" / "config.json").exists()

    dsd2, emb2, tok2, rec2 = setup(seed=1)  # different random init: everything must come from the checkpoint
    ref = []
    seen = Recorder(ref)
    resumed = ETEGRecTrainer(
        model=rec2, item_tokenizer=tok2, item_embeddings=emb, args=a, train_dataset=dsd["train"], callbacks=[seen]
    )
    ref.append(resumed)
    resumed.train(resume_from_checkpoint=str(ckpt))
    assert seen.phases == ["recommender", "tokenizer", "recommender"]
    for x, y in zip(full.recommender.state_dict().values(), resumed.recommender.state_dict().values()):
        assert torch.allclose(x.float(), y.float(), atol=1e-5)
    assert torch.equal(full.recommender.item_codes, resumed.recommender.item_codes)


def test_gradient_checkpointing_through_training_arguments(tmp_path):
    dsd, emb, tok, rec = setup()
    a = args(tmp_path, num_train_epochs=2, eval_strategy="no", gradient_checkpointing=True)
    trainer = ETEGRecTrainer(model=rec, item_tokenizer=tok, item_embeddings=emb, args=a, train_dataset=dsd["train"])
    before = rec.scid_projector.weight.detach().clone()
    trainer.train()
    assert rec.backbone.gradient_checkpointing
    assert not torch.equal(before, rec.scid_projector.weight)


def test_losses_against_hand_computed_values():
    ids = torch.tensor([5, 3, 5, 7, 3])
    assert first_occurrence(ids).tolist() == [1, 0, 3]  # order of sorted unique ids 3, 5, 7
    same = torch.randn(4, 3, 6)
    assert sia_loss(same, same).item() == pytest.approx(0.0, abs=1e-6)
    p, q = torch.tensor([[[0.0, 0.0]]]), torch.tensor([[[math.log(3.0), 0.0]]])  # [.5,.5] vs [.75,.25]
    kl = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25) + 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert sia_loss(p, q).item() == pytest.approx(kl, rel=1e-5)
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    one_direction = -math.log(math.exp(1 / 0.1) / (math.exp(1 / 0.1) + 1))
    # Both InfoNCE directions summed, as the official code (each direction is the same here).
    assert psa_loss(a, a * 3, temperature=0.1).item() == pytest.approx(2 * one_direction, rel=1e-3)


def test_bad_inputs_are_rejected(tmp_path, monkeypatch):
    dsd, emb, tok, rec = setup()
    plain = args(tmp_path)
    with monkeypatch.context() as m:
        m.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # what `accelerate launch --use_deepspeed` sets
        with pytest.raises(ValueError, match="does not support DeepSpeed.*FSDP2"):
            ETEGRecTrainer(model=rec, item_tokenizer=tok, item_embeddings=emb, args=plain, train_dataset=dsd["train"])
    with pytest.raises(ValueError, match=r"item_embeddings must be \[20, 16\]"):
        ETEGRecTrainer(model=rec, item_tokenizer=tok, item_embeddings=emb[:5], args=args(tmp_path), train_dataset=dsd["train"])
    with pytest.raises(ValueError, match="cycle must be >= 2"):
        args(tmp_path, cycle=1)


def test_group_by_length_batches_cut_padding(tmp_path):
    dsd = leave_one_out(make_synthetic_sequences(num_users=300, num_items=40, min_length=4, max_length=30, seed=2))
    _, emb, tok, rec = setup(num_items=dsd.num_items)
    emb = torch.randn(dsd.num_items, 16)

    def padding_share(**kw):
        a = args(tmp_path, eval_strategy="no", per_device_train_batch_size=16, **kw)
        trainer = ETEGRecTrainer(model=rec, item_tokenizer=tok, item_embeddings=emb, args=a, train_dataset=dsd["train"])
        real = total = 0
        for b in trainer.get_train_dataloader():
            real += int((b["history"] > 0).sum())
            total += b["history"].numel()
        return 1 - real / total

    import dataclasses

    from transformers import TrainingArguments

    if "train_sampling_strategy" in {f.name for f in dataclasses.fields(TrainingArguments)}:
        grouped = padding_share(train_sampling_strategy="group_by_length")
    else:
        grouped = padding_share(group_by_length=True)
    assert grouped < 0.5 * padding_share()


def test_adapter_only_checkpoints_resume_and_reload_best(tmp_path):
    """A pretrained backbone with LoRA saves adapter-only checkpoints (no base weights); resuming and
    loading the best checkpoint must accept exactly those and nothing less."""
    from transformers import AutoConfig, AutoModel

    backbone_dir = tmp_path / "backbone"
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.for_model(**TINY_LLAMA)).save_pretrained(backbone_dir)
    dsd, emb, tok, _ = setup()
    rec = build_recommender(tok, emb, str(backbone_dir), use_lora=True, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    assert not rec.config.save_base_weights
    a = args(tmp_path / "run", save_strategy="epoch", load_best_model_at_end=True, metric_for_best_model="ndcg@10")
    trainer = ETEGRecTrainer(
        model=rec, item_tokenizer=tok, item_embeddings=emb, args=a, train_dataset=dsd["train"], eval_dataset=dsd["validation"]
    )
    trainer.train()  # ends by loading the best (adapter-only) checkpoint
    best = trainer.state.best_model_checkpoint
    saved = set(read_weights(best))
    assert not any(k.startswith("backbone.") for k in saved)  # our layers; the adapter beside them, in peft's format
    assert os.path.exists(os.path.join(best, "backbone", "adapter_model.safetensors"))
    trainer._load_joint(best)  # and again, explicitly: nothing missing but the frozen base
    # A checkpoint that lacks a trained weight is refused.
    from safetensors.torch import load_file, save_file

    weights = os.path.join(best, "model.safetensors")
    state = load_file(weights)
    state.pop("scid_projector.weight")
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="missing.*scid_projector.weight"):
        trainer._load_joint(best)


def test_a_later_stage_trains_after_a_run_that_ended_in_a_tokenizer_epoch(tmp_path):
    """An odd epoch count ends alternating training in a tokenizer epoch (recommender frozen); the
    fine-tuning stage's trainer must still train the recommender, not silently nothing."""
    dsd, emb, tok, rec = setup()
    ETEGRecTrainer(
        model=rec,
        item_tokenizer=tok,
        item_embeddings=emb,
        args=args(tmp_path / "a", num_train_epochs=3, eval_strategy="no"),
        train_dataset=dsd["train"],
    ).train()
    before = {n: p.detach().clone() for n, p in rec.named_parameters()}
    ft = ETEGRecTrainer(
        model=rec,
        item_tokenizer=tok,
        item_embeddings=emb,
        args=args(tmp_path / "b", num_train_epochs=1, alternating=False, eval_strategy="no"),
        train_dataset=dsd["train"],
    )
    ft.train()
    moved = {n for n, p in rec.named_parameters() if not torch.equal(before[n], p)}
    assert any("lora_" in n for n in moved) and "scid_projector.weight" in moved
    assert not any(n.startswith("backbone.") and "lora_" not in n for n in moved)


def test_phase_scheduler_advances_each_side_only_in_its_phase():
    rec_p, tok_p = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [rec_p], "lr": 1.0, "side": "recommender"},
                             {"params": [tok_p], "lr": 0.1, "side": "tokenizer"}])
    phase = ["tokenizer"]
    sched = PhaseLRScheduler(opt, "cosine", warmup={"recommender": 2, "tokenizer": 1},
                             total={"recommender": 6, "tokenizer": 3}, current_phase=lambda: phase[0])
    assert [g["lr"] for g in opt.param_groups] == [0.0, 0.0]  # both at the start of their warm-up
    lrs = []
    for p in ["tokenizer"] * 3 + ["recommender"] * 6:
        phase[0] = p
        opt.step()
        sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
    # Tokenizer steps: warm-up 1 then cosine over 2 more; the recommender's lr stands still meanwhile.
    assert [r for r, _ in lrs[:3]] == [0.0, 0.0, 0.0]
    assert [t for _, t in lrs[:3]] == pytest.approx([0.1, 0.1 * 0.5 * (1 + math.cos(math.pi / 2)), 0.0], abs=1e-9)
    # Recommender steps: warm-up 2 (0.5, 1.0) then cosine over 4; the tokenizer's lr stands still.
    assert [r for r, _ in lrs[3:5]] == pytest.approx([0.5, 1.0])
    assert lrs[-1][0] == pytest.approx(0.0, abs=1e-9) and all(t == lrs[2][1] for _, t in lrs[3:])
    assert sched.side_steps == {"recommender": 6, "tokenizer": 3}
    state = sched.state_dict()
    assert "current_phase" not in state and state["side_steps"] == {"recommender": 6, "tokenizer": 3}
    with pytest.raises(ValueError, match="not supported"):
        PhaseLRScheduler(opt, "polynomial", {"recommender": 0, "tokenizer": 0}, {"recommender": 1, "tokenizer": 1}, lambda: "x")


def test_trainer_schedules_each_side_over_its_own_steps_and_resets_overwritten_codebooks(tmp_path):
    dsd, emb, tok, rec = setup()
    trainer = ETEGRecTrainer(model=rec, item_tokenizer=tok, item_embeddings=emb, args=args(tmp_path, eval_strategy="no",
                            warmup_steps=0.5), train_dataset=dsd["train"])
    trainer.train()
    steps_per_epoch = trainer.state.max_steps // 4
    assert trainer.lr_scheduler.side_steps == {"recommender": 2 * steps_per_epoch, "tokenizer": 2 * steps_per_epoch}
    assert trainer.lr_scheduler.warmup == {"recommender": steps_per_epoch, "tokenizer": steps_per_epoch}
    opt = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    assert all(p in opt.state for p in rec.codebooks.parameters())  # trained in the last recommender epoch
    trainer.copy_codebooks_to_recommender()
    assert not any(p in opt.state for p in rec.codebooks.parameters())
    assert any(p in opt.state for p in trainer._rec_trainable() if p.dim() > 1 and p not in set(rec.codebooks.parameters()))
    trainer.copy_codebooks_to_tokenizer()
    assert not any(p in opt.state for p in tok.codebooks.parameters())
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(rec.codebooks, tok.codebooks))


def test_per_side_schedules_honour_max_steps(tmp_path):
    dsd, emb, tok, rec = setup()
    full = ETEGRecTrainer(model=rec, item_tokenizer=tok, item_embeddings=emb, args=args(tmp_path, eval_strategy="no"),
                         train_dataset=dsd["train"])
    per_epoch = len(full.get_train_dataloader())
    steps = per_epoch + per_epoch // 2 + 1  # a tokenizer epoch, then part of a recommender epoch (4 epochs asked)
    trainer = ETEGRecTrainer(model=rec, item_tokenizer=tok, item_embeddings=emb,
                            args=args(tmp_path, eval_strategy="no", max_steps=steps, lr_scheduler_type="linear"),
                            train_dataset=dsd["train"])
    trainer.train()
    assert trainer.state.global_step == steps
    assert trainer.lr_scheduler.total == {"tokenizer": per_epoch, "recommender": steps - per_epoch}
    # Each side's linear schedule ran to its end: nothing of it was left for epochs that never came.
    assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-9)


def test_losses_weighted_zero_are_not_computed(tmp_path):
    """Before warm_epoch a tokenizer epoch never runs the LLM, and a recommender epoch without
    alignment never runs the RQ-VAE: skipping a 0-weighted loss changes nothing learned."""
    dsd, emb, tok, rec = setup()
    calls = {"rec": 0, "tok": 0}
    rec.register_forward_hook(lambda *a: calls.__setitem__("rec", calls["rec"] + 1))
    tok.register_forward_hook(lambda *a: calls.__setitem__("tok", calls["tok"] + 1))
    trainer = ETEGRecTrainer(model=rec, item_tokenizer=tok, item_embeddings=emb, train_dataset=dsd["train"],
                            args=args(tmp_path, num_train_epochs=2, warm_epoch=100, eval_strategy="no"))
    steps_per_epoch = math.ceil(len(dsd["train"]) / 32)
    trainer.train()
    # Epoch 0 (tokenizer, no alignment yet): RQ-VAE only. Epoch 1 (recommender): LLM only.
    assert calls == {"rec": steps_per_epoch, "tok": steps_per_epoch}
    logs = [e for e in trainer.state.log_history if "loss" in e]
    assert not any("sia_loss" in e or "psa_loss" in e for e in logs)


def test_time_budget_stops_at_a_step_end_then_evaluates(tmp_path):
    """A fake clock advancing a minute per reading: with a 2.5-minute budget, training stops at the
    end of step 3 (readings 1, 2, 3 after the start at 0), mid-epoch, and still runs its evaluation."""
    minutes = iter(range(1000))
    budget = TimeBudgetCallback(2.5, clock=lambda: 60.0 * next(minutes))
    dsd, emb, tok, rec = setup()
    trainer = ETEGRecTrainer(
        model=rec,
        item_tokenizer=tok,
        item_embeddings=emb,
        args=args(tmp_path, num_train_epochs=3, per_device_train_batch_size=8, alternating=False),
        train_dataset=dsd["train"],
        eval_dataset=dsd["validation"],
        callbacks=[budget],
    )
    steps_per_epoch = math.ceil(len(dsd["train"]) / 8)
    assert steps_per_epoch > 3
    trainer.train()
    assert trainer.state.global_step == budget.stopped_at_step == 3
    assert any("eval_ndcg@10" in row for row in trainer.state.log_history)
    with pytest.raises(ValueError, match="max_minutes"):
        TimeBudgetCallback(0)


def test_recode_margin_keeps_codes_within_the_margin(tmp_path):
    """recode_margin=0 (official) re-codes to the nearest codes; a huge margin keeps every item's
    codes through a tokenizer epoch that moved the RQ-VAE (churn 0 logged)."""
    runs = {}
    for margin in (0.0, 1e9):
        dsd, emb, tok, rec = setup()
        before = rec.item_codes.clone()
        trainer = ETEGRecTrainer(
            model=rec,
            item_tokenizer=tok,
            item_embeddings=emb,
            args=args(tmp_path / str(margin), num_train_epochs=1, eval_strategy="no", recode_margin=margin),
            train_dataset=dsd["train"],
        )
        trainer.train()
        churn = [row["codes/changed_prefix"] for row in trainer.state.log_history if "codes/changed_prefix" in row]
        runs[margin] = (before, rec.item_codes.clone(), tok.get_codes(emb), churn)
    before, after, nearest, churn = runs[0.0]
    assert churn[0] > 0 and torch.equal(after[1:], nearest)
    before, after, nearest, churn = runs[1e9]
    assert churn == [0.0] and torch.equal(after, before) and not torch.equal(after[1:], nearest)
    with pytest.raises(ValueError, match="recode_margin"):
        args(tmp_path, recode_margin=-0.1)
