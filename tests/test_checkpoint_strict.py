"""A checkpoint loads whole or not at all: a missing or crafted item map is refused, naming the file."""

import json

import pytest

from hf_genrec import ItemIdMap, LlamaRecForCodeGeneration

from .conftest import tiny_recommender


@pytest.fixture
def saved(tmp_path):
    model = tiny_recommender(num_items=30, use_lora=False)
    model.set_item_map(ItemIdMap([f"sku-{i}" for i in range(30)]))
    model.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def test_a_folder_without_its_item_map_is_refused(saved):
    assert LlamaRecForCodeGeneration.from_pretrained(saved).item_map.to_original(1) == "sku-0"
    (saved / "item_map.json").unlink()  # as a save killed after the weights would leave it
    with pytest.raises(FileNotFoundError, match="has no item_map.json, which its config says the checkpoint holds"):
        LlamaRecForCodeGeneration.from_pretrained(saved)


@pytest.mark.parametrize(
    "content, message",
    [
        ({"ids": ["a"]}, r'expected an object \{"original_ids"'),
        ({"original_ids": {"a": 1}}, r'expected an object \{"original_ids"'),
        ({"original_ids": [1.0] * 30}, r"original_ids\[0\] is 1.0 \(float\)"),
        ({"original_ids": [True] * 30}, r"original_ids\[0\] is True \(bool\)"),
        ({"original_ids": [1, "2"] + list(range(3, 31))}, "item ids mix types"),
        ({"original_ids": ["a"] * 30}, "appears twice"),
        ({"original_ids": [f"sku-{i}" for i in range(29)]}, "maps 29 items but the config says num_items=30"),
    ],
)
def test_a_crafted_item_map_gets_one_clear_error(saved, content, message):
    (saved / "item_map.json").write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message) as caught:
        LlamaRecForCodeGeneration.from_pretrained(saved)
    assert "item_map.json" in str(caught.value)
    (saved / "item_map.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        LlamaRecForCodeGeneration.from_pretrained(saved)


@pytest.mark.parametrize(
    "field, value",
    [("generation_chunk_size", 0), ("default_num_beams", -1), ("codebook_size", 0), ("num_levels", 2.5),
     ("semantic_dim", True), ("num_items", -3)],
)
def test_a_crafted_config_is_refused_when_read(saved, field, value):
    config = json.loads((saved / "config.json").read_text())
    config[field] = value
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=f"{field} must be a (positive|non-negative) integer"):
        LlamaRecForCodeGeneration.from_pretrained(saved)


@pytest.mark.parametrize(
    "config_class, field, value, message",
    [
        ("HLLMConfig", "num_negatives", -1, "non-negative"),
        ("HLLMConfig", "item_encode_batch_size", 0, "positive"),
        ("HLLMConfig", "num_items", -1, "non-negative"),
        ("HLLMConfig", "item_embedding_dim", 0, "positive"),
        ("ItemIDLlamaConfig", "num_clusters", 0, "positive"),
        ("ItemIDLlamaConfig", "cluster_capacity", -2, "positive"),
        ("ItemIDLlamaConfig", "num_items", 1.5, "non-negative"),
        ("RQVAEConfig", "codebook_size", 0, "positive"),
        ("RQVAEConfig", "hidden_dims", [64, 0], "positive"),
        ("SASRecConfig", "num_heads", 0, "positive"),
        ("SASRecConfig", "hidden_size", "64", "positive"),
    ],
)
def test_every_family_config_refuses_crafted_sizes_when_read(tmp_path, config_class, field, value, message):
    import hf_genrec

    cls = getattr(hf_genrec, config_class)
    kwargs = {"item_embedding_dim": 8} if config_class == "HLLMConfig" else {}
    cls(**kwargs).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config[field] = value
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=rf"{config_class}: {field}(\[1\])? must be a {message}"):
        cls.from_pretrained(tmp_path)


def test_sasrec_hidden_size_must_split_over_heads():
    from hf_genrec import SASRecConfig

    with pytest.raises(ValueError, match="hidden_size 10 is not a multiple of num_heads 3"):
        SASRecConfig(hidden_size=10, num_heads=3)


def _edit_weights(folder, edit):
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    edit(weights)
    save_file({k: v.contiguous() for k, v in weights.items()}, folder / "model.safetensors", metadata={"format": "pt"})


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda w: w.pop("scid_projector.weight"), r"missing keys \['scid_projector.weight'\]"),
        (lambda w: w.update(stray=w["item_codes"].clone()), r"unexpected keys \['stray'\]"),
        (lambda w: w.update(item_codes=w["item_codes"][:-1].clone()), "other shapes than its config.json describes"),
    ],
)
def test_weights_that_do_not_match_the_config_are_refused_not_reinitialised(saved, edit, message):
    _edit_weights(saved, edit)
    with pytest.raises(ValueError, match=message):
        LlamaRecForCodeGeneration.from_pretrained(saved)


def test_the_rqvae_loads_strictly_too(tmp_path):
    from hf_genrec import RQVAEConfig, RQVAEModel

    RQVAEModel(RQVAEConfig(semantic_dim=8, hidden_dims=[8], codebook_dim=4, codebook_size=4)).save_pretrained(tmp_path)
    RQVAEModel.from_pretrained(tmp_path)
    _edit_weights(tmp_path, lambda w: w.pop(sorted(w)[0]))
    with pytest.raises(ValueError, match="missing keys"):
        RQVAEModel.from_pretrained(tmp_path)
