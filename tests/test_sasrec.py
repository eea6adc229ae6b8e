"""SASRec: the packed encoder and the fused loss against the plain padded computation, both
ranking protocols, the NaN guard of the metrics, the evaluation cadence of ``train_sasrec``."""

import pytest
import torch
import torch.nn.functional as F

from hf_genrec import UnknownItemError
from hf_genrec.data import leave_one_out, make_synthetic_sequences
from hf_genrec.embeddings import train_sasrec
from hf_genrec.metrics import ranks_from_scores
from hf_genrec.models.sasrec import SASRecConfig, SASRecModel
from hf_genrec.utils.linear_cross_entropy import linear_cross_entropy

IDS = torch.tensor([[0, 0, 0, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 0, 0, 9]])
LABELS = torch.tensor([[0, 0, 0, 4, 5, 6, 7, 8], [2, 3, 4, 5, 6, 7, 8, 9], [0, 0, 0, 0, 0, 0, 0, 1]])


def tiny(dropout=0.0, heads=2):
    torch.manual_seed(0)
    return SASRecModel(SASRecConfig(num_items=30, hidden_size=16, num_heads=heads, max_history=8, dropout=dropout))


@pytest.mark.parametrize("heads", [1, 2])
def test_packed_encoder_and_fused_loss_equal_the_padded_computation(heads):
    model = tiny(heads=heads).train()  # dropout 0: train mode takes the training path deterministically
    loss = model(IDS, labels=LABELS).loss
    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    h = model.encode_padded(IDS)
    valid = LABELS > 0
    logits = h[valid] @ model.item_embedding.weight.t()
    logits[:, 0] = float("-inf")
    ref = F.cross_entropy(logits, LABELS[valid])
    ref_grads = torch.autograd.grad(ref, list(model.parameters()), allow_unused=True)
    assert loss.item() == pytest.approx(ref.item(), abs=1e-5)
    for (name, _), g, r in zip(model.named_parameters(), grads, ref_grads):
        if r is None:
            assert g is None or not g.any(), name
        else:
            torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4, msg=name)
    model.eval()
    torch.testing.assert_close(model.encode(IDS)[IDS > 0], h[IDS > 0].detach(), atol=1e-5, rtol=1e-5)


def structure_reference(model: SASRecModel, ids: torch.Tensor) -> torch.Tensor:
    """The block structures written out as the CE-SCE-LLMRec SASRec code does, on a fixed left-padded
    window of ``max_history`` (padding = zero vectors after every block), through
    ``nn.MultiheadAttention``'s own forward: ``[B, max_history, H]``."""
    c = model.config
    ids = F.pad(ids, (c.max_history - ids.shape[1], 0))
    pad = (ids == 0).unsqueeze(-1)
    positions = torch.arange(c.max_history - 1, -1, -1)
    x = (model.item_embedding(ids) * c.hidden_size**0.5 + model.position_embedding(positions)).masked_fill(pad, 0.0)
    length = ids.shape[1]
    hidden = torch.ones(length, length, dtype=torch.bool).triu(1)  # True = may not attend (the future)
    if not c.attend_padding:
        hidden = hidden | (pad.squeeze(-1).unsqueeze(1) & ~torch.eye(length, dtype=torch.bool))
        hidden = hidden.repeat_interleave(c.num_heads, 0)
    for layer in model.encoder.layers:
        ffn = lambda h, layer=layer: layer.linear2(torch.relu(layer.linear1(h)))  # noqa: E731
        if c.block == "query_norm":
            q = layer.norm1(x)
            x = layer.self_attn(q, x, x, attn_mask=hidden, need_weights=False)[0] + x
            x = layer.norm2(x)
            x = ffn(x) + x
        else:
            n = layer.norm1(x)
            x = x + layer.self_attn(n, n, n, attn_mask=hidden, need_weights=False)[0]
            x = x + ffn(layer.norm2(x))
        x = x.masked_fill(pad, 0.0)
    return model.final_norm(x)


@pytest.mark.parametrize("block, attend_padding", [("query_norm", True), ("query_norm", False), ("pre_norm", True)])
def test_query_norm_block_and_padding_attention_equal_the_written_out_reference(block, attend_padding):
    torch.manual_seed(0)
    model = SASRecModel(SASRecConfig(num_items=30, hidden_size=16, num_heads=2, max_history=10, dropout=0.0, block=block,
                                     attend_padding=attend_padding, initialization="xavier")).eval()
    ref = structure_reference(model, IDS)
    window = F.pad(IDS, (2, 0)) > 0
    torch.testing.assert_close(model.encode(IDS)[:, -IDS.shape[1]:][IDS > 0], ref[window], atol=1e-5, rtol=1e-5)
    valid = F.pad(LABELS, (2, 0)) > 0
    logits = ref[valid] @ model.item_embedding.weight.t()
    logits[:, 0] = float("-inf")
    expected = F.cross_entropy(logits, F.pad(LABELS, (2, 0))[valid])
    assert model(IDS, labels=LABELS).loss.item() == pytest.approx(expected.item(), abs=1e-5)
    # The window is fixed: how much padding a batch happens to carry changes nothing.
    torch.testing.assert_close(model.encode(torch.tensor([[0, 0, 3]]))[:, -1], model.encode(torch.tensor([[3]]))[:, -1])
    with pytest.raises(ValueError, match="reference of block='pre_norm'"):
        model.encode_padded(IDS)


def test_xavier_initialization_follows_the_reference_code():
    model = SASRecModel(SASRecConfig(num_items=5000, hidden_size=64, num_heads=1, initialization="xavier"))
    emb = model.item_embedding.weight[1:]
    assert emb.std().item() == pytest.approx((2 / (5001 + 64)) ** 0.5, rel=0.05) and not model.item_embedding.weight[0].any()
    out = model.encoder.layers[0].self_attn.out_proj.weight
    assert out.std().item() == pytest.approx((2 / 128) ** 0.5, rel=0.1)
    lin = model.encoder.layers[0].linear1.weight  # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert lin.abs().max().item() <= 64**-0.5 and lin.std().item() == pytest.approx(64**-0.5 / 3**0.5, rel=0.1)
    normal = SASRecModel(SASRecConfig(num_items=5000, hidden_size=64, num_heads=1))
    assert normal.item_embedding.weight[1:].std().item() == pytest.approx(0.02, rel=0.05)
    with pytest.raises(ValueError, match="block must be"):
        SASRecConfig(block="post_norm")


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_linear_cross_entropy_equals_cross_entropy(chunk):
    torch.manual_seed(0)
    h = torch.randn(7, 5, requires_grad=True)
    table = torch.randn(11, 5, requires_grad=True)
    y = torch.randint(0, 11, (7,))
    loss = linear_cross_entropy(h, table, y, chunk_rows=chunk)
    ref = F.cross_entropy(h @ table.t(), y)
    g, r = torch.autograd.grad(loss * 3, (h, table)), torch.autograd.grad(ref * 3, (h, table))
    assert loss.item() == pytest.approx(ref.item(), abs=1e-6)
    for a, b in zip(g, r):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="targets must lie in 0..10"):
        linear_cross_entropy(h, table, torch.full((7,), 11))
    with pytest.raises(ValueError, match="no rows"):
        linear_cross_entropy(h[:0], table, y[:0])


def test_exclude_history_masks_every_given_item_even_beyond_max_history():
    model = tiny().eval()
    ids = torch.tensor([[11, 12, 1, 2, 3, 4, 5, 6, 7, 8]])  # 10 items, the model reads the last 8
    plain = model(ids).logits
    masked = model(ids, exclude_history=True).logits
    assert torch.isinf(masked[0, [0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 12]]).all()
    keep = [i for i in range(31) if i not in (0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 12)]
    assert torch.equal(masked[0, keep], plain[0, keep])
    assert torch.equal(plain, model(ids[:, 2:]).logits)  # what the model reads: the last 8
    model.config.exclude_history = True
    assert torch.equal(model(ids).logits, masked)
    target = torch.tensor([12])
    assert model(ids, labels=target).loss.item() == pytest.approx(F.cross_entropy(plain, target).item())


def test_ranks_from_scores_excluded_target_is_a_miss_and_nan_raises():
    scores = torch.tensor([[float("-inf"), 0.5, float("-inf"), 0.9], [float("-inf"), 0.2, 0.7, 0.1]])
    assert ranks_from_scores(scores, torch.tensor([2, 2])).tolist() == [3, 0]
    with pytest.raises(ValueError, match="NaN"):
        ranks_from_scores(torch.tensor([[0.0, float("nan"), 1.0]]), torch.tensor([2]))


def test_train_sasrec_evaluates_every_n_epochs_and_reports_both_protocols(tmp_path):
    dsd = leave_one_out(make_synthetic_sequences(num_users=120, num_items=30, seed=0))
    model, metrics = train_sasrec(
        dsd, str(tmp_path), hidden_size=16, num_train_epochs=4, eval_every_epochs=2, patience=None, use_cpu=True,
        disable_tqdm=True, exclude_history=True, metric_ks=(5, 10),
    )
    evals = [round(e["epoch"]) for e in model.training_log if "eval_ndcg@10" in e]
    assert evals == [2, 4]
    assert model.config.exclude_history is True
    for split in ("val", "test"):
        assert metrics[f"{split}_ndcg@10"] == metrics[f"{split}_exclude_seen_ndcg@10"]
        assert f"{split}_all_items_ndcg@10" in metrics


def test_sasrec_recommends_the_brute_force_ranking_of_its_scores_and_excludes_the_history():
    from hf_genrec import SASRecConfig, SASRecModel

    torch.manual_seed(0)
    model = SASRecModel(SASRecConfig(num_items=20, hidden_size=16, num_heads=2, max_history=4, dropout=0.0)).eval()
    histories = [[3, 5, 7, 9, 11, 2], [4]]  # the first is longer than max_history: the model reads its last 4
    out = model.recommend_dense(histories, top_k=20)
    with torch.no_grad():
        scores = model(input_ids=torch.tensor([[7, 9, 11, 2], [0, 0, 0, 4]])).logits[:, 1:]
    expected = scores.argsort(dim=1, descending=True) + 1
    assert torch.equal(out.item_ids, expected) and torch.allclose(out.scores, scores.sort(dim=1, descending=True).values)
    seen = model.recommend_dense(histories, top_k=20, exclude_history=True)
    for row, history in zip(seen.item_ids.tolist(), histories):
        kept = [i for i in row if i > 0]
        assert not set(kept) & set(history) and len(kept) == 20 - len(set(history))
    with pytest.raises(UnknownItemError):
        model.recommend_dense([[21]])


def test_a_reference_seed_exports_the_layout_the_beauty_benchmark_reuses(tmp_path):
    """``sasrec_reference.py --export DIR``: the selected model's item table, its metrics and the split."""
    import json

    import numpy as np

    from .conftest import load_benchmark

    reference = load_benchmark("sasrec_reference")
    data = tmp_path / "toy.inter.json"
    data.write_text(json.dumps(make_synthetic_sequences(num_users=60, num_items=20, seed=1)))
    out, target = tmp_path / "ref", tmp_path / "beauty-out"
    argv = ["--data", str(data), "--out", str(out), "--seed", "0", "--epochs", "2"]
    result = reference.main(argv)
    metrics = reference.main([*argv, "--export", str(target)])
    model = SASRecModel.from_pretrained(out / "seed_0" / "trainer" / "stage_final")
    assert np.array_equal(np.load(target / "item_emb.npy"), model.item_embeddings().numpy())
    saved = json.loads((target / "sasrec_metrics.json").read_text())
    assert metrics == result["metrics"] and saved["test_ndcg@10"] == result["metrics"]["test_ndcg@10"]
    assert (target / "data" / "genrec_dataset.json").exists()
