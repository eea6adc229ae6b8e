import pytest
import torch

from hf_genrec import CodebookCollisionError, RQVAEConfig, RQVAEModel
from hf_genrec.models.rqvae import assign_suffix, collision_rate
from hf_genrec.training.rqvae_pretraining import pretrain_rqvae


def small_config(**kw):
    base = dict(in_dim=16, hidden_dims=[32], codebook_dim=8, num_levels=3, codebook_size=8, suffix_size=32)
    base.update(kw)
    return RQVAEConfig(**base)


def test_forward_shapes_loss_and_gradients_reach_every_codebook():
    torch.manual_seed(0)
    model = RQVAEModel(small_config())
    x = torch.randn(64, 16)
    model.kmeans_init(x)
    out = model(x)
    assert out.codes.shape == (64, 3) and out.code_logits.shape == (64, 3, 8)
    assert out.reconstruction.shape == (64, 16)
    assert torch.allclose(out.loss, out.reconstruction_loss + out.quantization_loss)
    out.loss.backward()
    for book in model.codebooks:
        assert book.weight.grad is not None and book.weight.grad.abs().sum() > 0
    # Straight-through: the reconstruction gradient reaches the encoder.
    assert model.encoder[0].weight.grad.abs().sum() > 0


def test_codes_are_argmin_of_residual_distance():
    torch.manual_seed(1)
    model = RQVAEModel(small_config())
    x = torch.randn(10, 16)
    out = model(x)
    residual = model.encode(x)
    for level, book in enumerate(model.codebooks):
        expected = torch.cdist(residual, book.weight).argmin(1)
        assert torch.equal(out.codes[:, level], expected)
        residual = residual - book.weight[expected]


def test_assign_suffix_numbers_collisions_in_order():
    prefix = torch.tensor([[1, 2], [0, 0], [1, 2], [1, 2], [0, 1]])
    codes = assign_suffix(prefix, suffix_size=4)
    assert codes[:, 2].tolist() == [0, 0, 1, 2, 0]
    assert torch.unique(codes, dim=0).shape[0] == 5
    assert collision_rate(prefix) == pytest.approx(1 - 3 / 5)
    with pytest.raises(CodebookCollisionError, match=r"3 items share the code prefix \[1, 2\]"):
        assign_suffix(prefix, suffix_size=2)


def test_get_codes_unique_and_stats():
    torch.manual_seed(2)
    model = RQVAEModel(small_config(codebook_size=4, suffix_size=64))
    x = torch.randn(100, 16)
    model.kmeans_init(x)
    codes = model.get_codes(x)
    assert codes.shape == (100, 4) and torch.unique(codes, dim=0).shape[0] == 100
    stats = model.code_statistics(x)
    assert 0 <= stats["collision_rate"] < 1 and 0 < stats["codebook_usage_l0"] <= 1


def test_wrong_embedding_dimension_and_nan_are_rejected():
    model = RQVAEModel(small_config())
    with pytest.raises(ValueError, match="wrong embedding dimension"):
        model(torch.randn(4, 15))
    with pytest.raises(ValueError, match="NaN"):
        model(torch.full((2, 16), float("nan")))


def test_save_and_from_pretrained_round_trip(tmp_path):
    torch.manual_seed(3)
    model = RQVAEModel(small_config())
    x = torch.randn(50, 16)
    model.kmeans_init(x)
    model.save_pretrained(tmp_path)
    back = RQVAEModel.from_pretrained(tmp_path)
    assert torch.equal(back.get_codes(x), model.get_codes(x))
    for a, b in zip(model.state_dict().values(), back.state_dict().values()):
        assert torch.equal(a, b)


def test_pretraining_keeps_lowest_collision_checkpoint(tmp_path):
    torch.manual_seed(4)
    x = torch.randn(200, 16)
    model, best = pretrain_rqvae(x, str(tmp_path), small_config(), num_train_epochs=6, batch_size=64, eval_every=2, use_cpu=True)
    saved = (tmp_path / "code_stats.json").read_text()
    assert f'"collision_rate": {best["collision_rate"]}' in saved
    assert model.code_statistics(x)["collision_rate"] == pytest.approx(best["collision_rate"])
