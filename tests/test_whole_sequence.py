"""Whole-sequence training (``train_on_all_positions``): one causal pass per user sequence equals
the prefix rows it replaces, item by item; the windows cover every transition once; ETEGRec's
alignment losses see every predicted item."""

import pytest
import torch

from hf_genrec import ETEGRecTrainer
from hf_genrec.data import leave_one_out, whole_sequence_rows
from hf_genrec.training.joint import ETEGRecJointModel

from . import test_itemid
from .conftest import tiny_recommender
from .test_trainer import args, setup

SEQS = [[3, 7, 1, 9, 4], [5, 2]]  # two users, left padded in one batch


def prefix_rows(seqs):
    return [(s[:t], s[t]) for s in seqs for t in range(1, len(s))]


def as_batch(seqs):
    width = max(len(s) for s in seqs) - 1
    history = torch.tensor([[0] * (width - len(s) + 1) + s[:-1] for s in seqs])
    return history, torch.tensor([s[-1] for s in seqs])


def test_etegrec_whole_sequence_loss_and_latents_equal_the_prefix_rows():
    model = tiny_recommender(use_lora=False, train_on_all_positions=True).eval()
    history, targets = as_batch(SEQS)
    whole = model(history=history, targets=targets)
    model.config.train_on_all_positions = False
    nll, latents, items = [], [], []
    for h, t in prefix_rows(SEQS):
        out = model(history=torch.tensor([h]), targets=torch.tensor([t]))
        nll.append(out.loss * model.config.code_length)  # the row's summed code NLL
        latents.append(out.seq_latents[0])
        items.append(t)
    count = len(items) * model.config.code_length
    assert whole.loss.item() == pytest.approx((sum(nll) / count).item(), abs=1e-5)
    assert whole.predicted_items.tolist() == [7, 1, 9, 4, 2]  # row-major: user 0's items, then user 1's
    assert items == [7, 1, 9, 4, 2]
    torch.testing.assert_close(whole.seq_latents, torch.stack(latents), atol=1e-5, rtol=1e-4)
    assert whole.dec_latents.shape == (5, model.config.semantic_dim)


def test_item_id_whole_sequence_log_probs_equal_the_prefix_rows():
    model = test_itemid.tiny(train_on_all_positions=True)
    history, targets = as_batch(SEQS)
    whole = model(history=history, targets=targets)
    model.config.train_on_all_positions = False
    per_row = torch.cat([model(history=torch.tensor([h]), targets=torch.tensor([t])).log_probs for h, t in prefix_rows(SEQS)])
    torch.testing.assert_close(whole.log_probs, per_row, atol=1e-5, rtol=1e-4)
    assert whole.loss.item() == pytest.approx(-per_row.mean().item(), abs=1e-6)


def test_whole_sequence_rows_cover_every_transition_once():
    dsd = leave_one_out({"u": list(range(1, 13)), "v": [20, 21, 22, 23, 24]})  # training parts: 10 and 3 items
    rows = whole_sequence_rows(dsd, max_history=4)
    windows = [(h, t) for h, t in zip(rows["history"], rows["target"])]
    u = [dsd.item_map.to_dense(i) for i in range(1, 11)]
    v = [dsd.item_map.to_dense(i) for i in (20, 21, 22)]
    # u: windows of 5 items ending at 10, 6 and 2 items; v: one window.
    assert windows == [(u[5:9], u[9]), (u[1:5], u[5]), (u[0:1], u[1]), (v[0:2], v[2])]
    assert rows["length"] == [4, 4, 1, 2]
    transitions = {(h[i - 1], h[i]) for h, t in windows for i in range(1, len(h))} | {(h[-1], t) for h, t in windows}
    assert transitions == {(a, b) for a, b in zip(u, u[1:])} | {(a, b) for a, b in zip(v, v[1:])}


def test_joint_model_aligns_every_predicted_item_and_trains(tmp_path):
    dsd, emb, tok, rec = setup(use_lora=False)
    rec.config.train_on_all_positions = True
    joint = ETEGRecJointModel(rec, tok, emb)
    history, targets = as_batch([[1, 2, 3, 4], [5, 6, 7]])
    out = joint(history=history, targets=targets)
    assert all(torch.isfinite(out[k]) for k in ("code_loss", "sia_loss", "psa_loss"))
    grads = torch.autograd.grad(out.sia_loss + out.psa_loss, [rec.enc_adapter.weight, rec.dec_adapter.weight])
    assert all(g.abs().sum() > 0 for g in grads)
    rows = whole_sequence_rows(dsd, max_history=50)
    trainer = ETEGRecTrainer(
        model=rec, item_tokenizer=tok, item_embeddings=emb, args=args(tmp_path, num_train_epochs=2),
        train_dataset=rows, eval_dataset=dsd["validation"],
    )
    trainer.train()
    assert len(rows) == len(dsd["validation"])  # one window per user (short synthetic sequences)
    assert trainer.state.global_step == 2 * -(-len(rows) // 32)
