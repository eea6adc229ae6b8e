import pytest
import torch

from hf_genrec import CodebookCollisionError, RQVAEConfig, RQVAEModel
from hf_genrec.models.rqvae import assign_suffix, collision_rate
from hf_genrec.training.rqvae_pretraining import pretrain_rqvae


def small_config(**kw):
    base = dict(semantic_dim=16, hidden_dims=[32], codebook_dim=8, num_levels=3, codebook_size=8, suffix_size=32)
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


def test_recoding_margin_keeps_previous_codes_only_within_the_margin():
    """Level 0 codes at 0 and 1 on a line: a latent at 0.55 is nearest to code 1 (d^2 .2025), but
    code 0 (d^2 .3025) is within 1.5x of it: kept with margin .6, dropped with margin .4. Level 1
    (codes 0, .5, -.5) then quantises the residual the kept code leaves: .55 -> code 1 (.5), where
    the nearest level-0 code would leave -.45 -> code 2 (-.5)."""
    from hf_genrec.models.rqvae.modeling_rqvae import ResidualQuantizer

    q = ResidualQuantizer(num_levels=2, codebook_size=3, dim=1, beta=0.25)
    with torch.no_grad():
        q.codebooks[0].weight.copy_(torch.tensor([[0.0], [1.0], [9.0]]))
        q.codebooks[1].weight.copy_(torch.tensor([[0.0], [0.5], [-0.5]]))
    z = torch.tensor([[0.55], [0.1]])
    prev = torch.tensor([[0, 2], [1, 0]])
    assert q.assign(z).tolist() == [[1, 2], [0, 0]]
    assert torch.equal(q.assign(z), q(z).codes)
    # Item 1 keeps level 0 and gets level 1 from the kept residual; item 2's previous level-0 code is
    # 81x too far, so it moves; at level 1 its previous code 0 is the nearest anyway.
    assert q.assign(z, prev, margin=0.6).tolist() == [[0, 1], [0, 0]]
    assert q.assign(z, prev, margin=0.4).tolist() == [[1, 2], [0, 0]]
    assert q.assign(z, prev, margin=0.0).tolist() == [[1, 2], [0, 0]]
    with pytest.raises(ValueError, match="margin"):
        q.assign(z, prev, margin=-1)
    with pytest.raises(ValueError, match="previous codes"):
        q.assign(z, prev[:1], margin=0.5)


def test_recoding_margin_through_the_model():
    torch.manual_seed(2)
    model = RQVAEModel(small_config())
    x = torch.randn(200, 16)
    model.kmeans_init(x)
    nearest = model.get_prefix_codes(x)
    assert torch.equal(nearest, model(x).codes)
    other = torch.randint(0, 8, nearest.shape)
    assert torch.equal(model.get_prefix_codes(x, previous=other, margin=0.0), nearest)
    # A huge margin keeps every previous code, across chunk boundaries too.
    assert torch.equal(model.get_prefix_codes(x, batch_size=64, previous=other, margin=1e9), other)
    assert torch.equal(model.get_codes(x, previous=nearest, margin=0.3), model.get_codes(x))
    with pytest.raises(ValueError, match="rows"):
        model.get_prefix_codes(x, previous=nearest[:10], margin=0.1)


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
    # By hand from the codes: the share of items whose 3-code prefix another item already took, and
    # the share of each level's 4 codes in use.
    prefixes = [tuple(row) for row in codes[:, :3].tolist()]
    assert stats["collision_rate"] == pytest.approx(1 - len(set(prefixes)) / 100)
    for level in range(3):
        assert stats[f"codebook_usage_l{level}"] == len({p[level] for p in prefixes}) / 4
    assert stats["max_items_per_prefix"] == max(prefixes.count(p) for p in set(prefixes))
    assert (codes[:, 3] < 64).all()  # the suffix numbers items within a shared prefix


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
