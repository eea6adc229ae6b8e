"""Item-ID LLaMA with a hierarchical softmax: exact probabilities, exact and fast top-k, the
clustering round trip, mixed text + item inputs, stage-1 freezing, unknown ids."""

import pytest
import torch
from transformers import AutoModel

from hf_genrec import HierarchicalSoftmax, ItemIDLlamaConfig, ItemIDLlamaForRecommendation, ItemIdMap, UnknownItemError
from hf_genrec.models.itemid import balanced_assignment
from hf_genrec.utils import EmptyHistoryError

from .conftest import TINY_LLAMA

N, D, C = 40, 8, 6


def tiny(head="hierarchical", use_lora=False, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = ItemIDLlamaConfig(
        backbone_config=dict(TINY_LLAMA, vocab_size=16),
        num_items=N,
        item_embedding_dim=D,
        num_clusters=C,
        head=head,
        use_lora=use_lora,
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        **kw,
    )
    model = ItemIDLlamaForRecommendation(cfg)
    model.set_item_embeddings(torch.randn(N, D))
    model.recluster()
    with torch.no_grad():  # non-zero biases so the tests exercise them
        model.head.item_bias.normal_(std=0.5)
        model.head.cluster_bias.normal_(std=0.5)
    return model.eval()


HISTORY = torch.tensor([[0, 0, 3, 7], [1, 2, 3, 4], [0, 0, 0, 40]])


@pytest.mark.parametrize("head", ["hierarchical", "full"])
def test_log_probs_are_exact_and_sum_to_one(head):
    model = tiny(head)
    with torch.no_grad():
        q = model.query(HISTORY)
        lp = model.all_log_probs(q)
        assert lp.shape == (3, N + 1) and torch.isinf(lp[:, 0]).all()
        assert torch.allclose(lp[:, 1:].logsumexp(1), torch.zeros(3), atol=1e-5)
        targets = torch.tensor([5, 17, 40])
        out = model(history=HISTORY, targets=targets)
        assert torch.allclose(out.log_probs, lp.gather(1, targets.unsqueeze(1)).squeeze(1), atol=1e-5)
        assert torch.allclose(out.loss, -out.log_probs.mean())


def test_hierarchical_log_prob_is_cluster_times_within_by_brute_force():
    model = tiny()
    with torch.no_grad():
        q = model.query(HISTORY)
        w, head = model.item_embeddings.weight, model.head
        for b in range(3):
            for item in (1, 9, 40):
                c = int(head.item_cluster[item])
                members = [i for i in range(1, N + 1) if int(head.item_cluster[i]) == c]
                logits_c = q[b] @ head.cluster_embeddings.weight.t() + head.cluster_bias
                logits_i = torch.stack([q[b] @ w[i] + head.item_bias[i] for i in members])
                want = logits_c.log_softmax(0)[c] + logits_i.log_softmax(0)[members.index(item)]
                got = head.log_prob(q[b : b + 1], torch.tensor([item]), w)[0]
                assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("k", [1, 5, 17, 40, 45])
def test_exact_top_k_equals_brute_force(k):
    model = tiny()
    with torch.no_grad():
        lp = model.all_log_probs(model.query(HISTORY))
        out = model.top_k_items(HISTORY, k)
    want = lp[:, 1:].topk(min(k, N), 1)
    assert torch.equal(out.item_ids[:, : min(k, N)], want.indices + 1)
    assert torch.allclose(out.scores[:, : min(k, N)], want.values, atol=1e-5)
    if k > N:
        assert (out.item_ids[:, N:] == -1).all() and torch.isinf(out.scores[:, N:]).all()


def test_fast_path_expands_only_the_best_clusters_and_all_clusters_is_exact():
    model = tiny()
    with torch.no_grad():
        q = model.query(HISTORY)
        exact = model.top_k_items(HISTORY, 10)
        every = model.top_k_items(HISTORY, 10, num_clusters=C)
        fast = model.top_k_items(HISTORY, 5, num_clusters=2)
        best2 = model.head.cluster_log_probs(q).topk(2, 1).indices
    assert torch.equal(exact.item_ids, every.item_ids)
    for b in range(3):
        assert set(model.head.item_cluster[fast.item_ids[b]].tolist()) <= set(best2[b].tolist())


def test_clustering_is_capacity_bounded_and_validated():
    x = torch.cat([torch.zeros(30, 2), torch.ones(10, 2)]) + 0.01 * torch.randn(40, 2)
    assign = balanced_assignment(x, torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), capacity=15)
    assert torch.bincount(assign, minlength=3).max() <= 15 and (assign[30:] == 1).all()
    head = HierarchicalSoftmax(num_items=4, dim=2, num_clusters=2, max_cluster_size=2)
    with pytest.raises(ValueError, match="empty"):
        head.set_clusters(torch.tensor([0, 0, 0, 0]))
    with pytest.raises(ValueError, match="holds 3 items but the head has room for 2"):
        head.set_clusters(torch.tensor([0, 0, 0, 1]))
    head.set_clusters(torch.tensor([1, 0, 1, 0]))
    assert head.cluster_items.tolist() == [[2, 4], [1, 3]] and head.item_slot.tolist() == [-1, 0, 0, 1, 1]


def test_clustering_and_recommendations_round_trip_through_auto_model(tmp_path):
    model = tiny()
    model.set_item_map(ItemIdMap([f"item-{i}" for i in range(N)]))
    model.save_pretrained(tmp_path)
    back = AutoModel.from_pretrained(tmp_path).eval()
    assert type(back) is ItemIDLlamaForRecommendation
    for name in ("item_cluster", "item_slot", "cluster_items"):
        assert torch.equal(getattr(model.head, name), getattr(back.head, name))
    history = [["item-3", "item-7"], ["item-39"]]
    a, b = model.recommend(history, top_k=5), back.recommend(history, top_k=5)
    assert a.items == b.items and torch.allclose(a.scores, b.scores)


def test_text_and_item_tokens_mix():
    model = tiny()
    # "[text 5] [item 3] [text 6] [item 7]" and its item-only part.
    input_ids = torch.tensor([[5, 0, 6, 0]])
    item_ids = torch.tensor([[0, 3, 0, 7]])
    mask = torch.ones_like(input_ids)
    with torch.no_grad():
        mixed = model.query(input_ids=input_ids, item_ids=item_ids, attention_mask=mask)
        other_text = model.query(input_ids=torch.tensor([[9, 0, 6, 0]]), item_ids=item_ids, attention_mask=mask)
        other_item = model.query(input_ids=input_ids, item_ids=torch.tensor([[0, 3, 0, 8]]), attention_mask=mask)
        # Item positions ignore whatever input_ids holds there.
        same = model.query(input_ids=torch.tensor([[5, 11, 6, 12]]), item_ids=item_ids, attention_mask=mask)
        items_only = model.query(torch.tensor([[3, 7]]))
        as_mixed = model.query(item_ids=torch.tensor([[3, 7]]), attention_mask=torch.ones(1, 2, dtype=torch.long))
    assert not torch.allclose(mixed, other_text) and not torch.allclose(mixed, other_item)
    assert torch.allclose(mixed, same) and torch.allclose(items_only, as_mixed)
    with pytest.raises(ValueError, match="text positions .* need input_ids"):
        model.query(item_ids=item_ids, attention_mask=mask)


@pytest.mark.parametrize("use_lora", [False, True])
def test_stage_one_trains_only_item_layers_and_stage_two_the_backbone(use_lora):
    model = tiny(use_lora=use_lora).train()
    model.set_backbone_trainable(False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and not any(n.startswith("backbone.") for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(history=HISTORY, targets=torch.tensor([5, 17, 40])).loss.backward()
    for name in ("item_embeddings.weight", "input_adapter.weight", "output_adapter.weight", "head.cluster_embeddings.weight"):
        assert dict(model.named_parameters())[name].grad.abs().sum() > 0, name
    opt.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert moved and not any(n.startswith("backbone.") for n in moved)
    model.set_backbone_trainable(True)
    stage2 = {n for n, p in model.named_parameters() if p.requires_grad and n.startswith("backbone.")}
    assert stage2 and all(("lora_" in n) == use_lora or not use_lora for n in stage2)


def test_unknown_ids_and_empty_histories_are_rejected():
    model = tiny()
    with pytest.raises(UnknownItemError, match="unknown item id 41"):
        model(history=torch.tensor([[1, 41]]), targets=torch.tensor([2]))
    with pytest.raises(UnknownItemError, match="unknown item id 0"):
        model(history=torch.tensor([[1, 2]]), targets=torch.tensor([0]))
    with pytest.raises(EmptyHistoryError):
        model(history=torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(UnknownItemError, match="99"):
        model.recommend([[99]])
    with pytest.raises(ValueError, match=r"item embeddings must be \[40, 8\]"):
        model.set_item_embeddings(torch.randn(40, 7))


def test_two_stage_example_trains_tests_and_saves_a_loadable_checkpoint(tmp_path):
    """examples/run_itemid_llama.py end to end on a small generated dataset, with string item ids."""
    import json
    import os
    import subprocess

    from hf_genrec.data import make_synthetic_sequences

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    seqs = make_synthetic_sequences(num_users=150, num_items=40, seed=5)
    data = tmp_path / "toy.inter.json"
    data.write_text(json.dumps({u: [f"sku{i}" for i in s] for u, s in seqs.items()}))
    cmd = ["python", os.path.join(root, "examples", "run_itemid_llama.py"), "--dataset_dir", str(data)]
    cmd += ["--output_dir", str(tmp_path / "run"), "--hidden_size", "32", "--num_attention_heads", "2"]
    cmd += ["--stage1_epochs", "2", "--stage2_epochs", "1", "--use_lora", "true", "--lora_r", "4"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    # A random ranking of the 40 items gets recall@10 = 0.25; 2 + 1 epochs learned the chain (0.47 measured).
    assert metrics["recall@10"] > 0.35 and metrics["ndcg@10"] < metrics["recall@10"] <= metrics["recall@20"]
    assert "stage1: " in proc.stderr and "stage2: " in proc.stderr
    model = AutoModel.from_pretrained(tmp_path / "run" / "final").eval()
    out = model.recommend([["sku1", "sku2"]], top_k=5)
    assert len(out.items[0]) == 5 and all(i.startswith("sku") for i in out.items[0])
    card = (tmp_path / "run" / "final" / "README.md").read_text()
    assert "model-index" in card and "ItemIDLlamaForRecommendation" in card


def test_stage_time_budget_stops_stage_two_at_a_step_end_and_still_saves(tmp_path):
    """--stage2_max_minutes: stage 2 stops at the first step end past the budget, then evaluates and saves."""
    import json

    from hf_genrec.data import make_synthetic_sequences
    from hf_genrec.recipes.itemid import main

    seqs = make_synthetic_sequences(num_users=150, num_items=40, seed=5)
    data = tmp_path / "toy.inter.json"
    data.write_text(json.dumps({u: [f"sku{i}" for i in s] for u, s in seqs.items()}))
    out = tmp_path / "run"
    main(["--dataset_dir", str(data), "--output_dir", str(out), "--hidden_size", "16", "--num_attention_heads", "2",
          "--stage1_epochs", "1", "--stage2_epochs", "3", "--stage2_max_minutes", "1e-9", "--use_cpu", "true",
          "--disable_tqdm", "true"])
    checkpoints = sorted((out / "stage2").glob("checkpoint-*"), key=lambda d: int(d.name.split("-")[1]))
    state = json.loads((checkpoints[-1] / "trainer_state.json").read_text())
    assert state["max_steps"] >= 3 and state["global_step"] == 1
    assert any("eval_ndcg@10" in e for e in state["log_history"])  # the epoch's evaluation still ran
    stage1 = json.loads((sorted((out / "stage1").glob("checkpoint-*"))[-1] / "trainer_state.json").read_text())
    assert stage1["global_step"] == stage1["max_steps"]  # no budget on stage 1
    assert (out / "test_metrics.json").exists()




def test_the_item_id_recipe_killed_in_each_stage_and_rerun_ends_byte_identical(tmp_path):
    import json

    from hf_genrec.data import make_synthetic_sequences

    from .conftest import run_recipe

    seqs = make_synthetic_sequences(num_users=120, num_items=40, seed=5)
    data = tmp_path / "toy.inter.json"
    data.write_text(json.dumps({u: [f"sku{i}" for i in s] for u, s in seqs.items()}))

    def run(out, kill_in=None, kill_at=None):
        args = ["--dataset_dir", str(data), "--output_dir", str(out), "--hidden_size", "16", "--num_attention_heads", "2",
                "--stage1_epochs", "2", "--stage2_epochs", "2", "--use_cpu", "true", "--disable_tqdm", "true",
                "--full_determinism", "true", "--seed", "3"]
        return run_recipe("itemid", args, tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}.log", kill_in, kill_at or "")

    whole, chain = tmp_path / "whole", tmp_path / "chain"
    run(whole)
    logs = [run(chain, chain / "stage1", "checkpoint"), run(chain, chain / "stage2", "start"),
            run(chain, chain / "stage2", "checkpoint"), run(chain)]
    assert f"resuming the stage in {chain / 'stage1'} from" in logs[1]
    assert f"stage in {chain / 'stage1'} already finished: loading" in logs[2]
    assert f"resuming the stage in {chain / 'stage2'} from" not in logs[2]  # killed before its first checkpoint
    assert f"resuming the stage in {chain / 'stage2'} from" in logs[3]
    assert json.loads((chain / "test_metrics.json").read_text()) == json.loads((whole / "test_metrics.json").read_text())
    assert (chain / "final" / "model.safetensors").read_bytes() == (whole / "final" / "model.safetensors").read_bytes()
