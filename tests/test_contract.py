"""The shared shape every family gets: the recommend contract on the user's own item ids,
checkpoints that stand alone (item map, model card, Auto classes, push_to_hub), the generic
evaluation Trainer, the layering of the package, and one-line errors from the command line."""

import ast
import os
import pathlib
import subprocess
import sys

import pytest
import torch
import yaml
from torch import nn
from transformers import AutoModel, PretrainedConfig, PreTrainedModel

import hf_genrec
from hf_genrec import (
    EmptyHistoryError,
    ItemIdMap,
    LlamaRecForCodeGeneration,
    RecommendationOutput,
    RecommenderMixin,
    RecommenderTrainer,
    RecommenderTrainingArguments,
    UnknownItemError,
)
from hf_genrec.metrics import ndcg_single

from .conftest import tiny_recommender

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAMES = [f"sku-{i:03d}" for i in range(30)]  # the user's own ids: strings, not 1..N


def tiny_sasrec(num_items: int = 30):
    torch.manual_seed(0)
    return hf_genrec.SASRecModel(hf_genrec.SASRecConfig(num_items=num_items, hidden_size=16, num_heads=2, max_history=8))


@pytest.fixture(params=["etegrec", "sasrec"])
def named_recommender(request):
    model = (tiny_recommender(num_items=30) if request.param == "etegrec" else tiny_sasrec()).eval()
    model.set_item_map(ItemIdMap(NAMES))
    return model


def test_recommend_takes_and_returns_the_users_item_ids(named_recommender):
    model = named_recommender
    out = model.recommend([["sku-003", "sku-000"], ["sku-029"]], top_k=5)
    dense = model.recommend_dense([[4, 1], [30]], top_k=5)
    assert torch.equal(out.item_ids, dense.item_ids) and torch.equal(out.scores, dense.scores)
    assert out.items == [[NAMES[i - 1] for i in row] for row in dense.item_ids.tolist()]
    assert all(isinstance(i, str) for row in out.items for i in row)


def test_recommend_names_unknown_ids_or_drops_them(named_recommender):
    model = named_recommender
    with pytest.raises(UnknownItemError, match="'nope'.*'sku-999'"):
        model.recommend([["sku-001", "nope", "sku-999"]])
    dropped = model.recommend([["sku-001", "nope"]], top_k=3, unknown_items="drop")
    assert dropped.items == model.recommend([["sku-001"]], top_k=3).items
    with pytest.raises(EmptyHistoryError, match="history 0 has no item this model knows"):
        model.recommend([["nope"]], unknown_items="drop")
    with pytest.raises(EmptyHistoryError, match="history 1 is empty"):
        model.recommend([["sku-001"], []])
    with pytest.raises(ValueError, match="unknown_items must be"):
        model.recommend([["sku-001"]], unknown_items="ignore")
    with pytest.raises(ValueError, match="has 2 items but this model knows 30"):
        model.set_item_map(ItemIdMap(["a", "b"]))


def test_checkpoint_stands_alone_item_map_card_and_auto_class(named_recommender, tmp_path):
    model = named_recommender
    model.record_evaluation({"recall@10": 0.5, "ndcg@10": 0.25}, dataset="toy-data")
    model.save_pretrained(tmp_path)
    assert (tmp_path / "item_map.json").exists()
    card = (tmp_path / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    results = front["model-index"][0]["results"]
    assert {(m["type"], m["value"]) for r in results for m in r["metrics"]} == {("recall@10", 0.5), ("ndcg@10", 0.25)}
    assert results[0]["dataset"]["name"] == "toy-data" and results[0]["dataset"]["split"] == "test"
    assert type(model).__name__ in card and "30 items" in card
    assert ("`llama`" if isinstance(model, LlamaRecForCodeGeneration) else "its own transformer (2 layers x 16 wide)") in card
    back = AutoModel.from_pretrained(tmp_path).eval()
    assert type(back) is type(model)
    assert back.item_map == model.item_map and back.config.evaluation_results["dataset"] == "toy-data"
    history = [["sku-010", "sku-011", "sku-012"]]
    assert back.recommend(history, top_k=5).items == model.recommend(history, top_k=5).items


def test_a_model_without_a_map_uses_dense_ids(tmp_path):
    model = tiny_recommender(num_items=30).eval()
    assert model.recommend([[1, 2]], top_k=3).items == model.recommend_dense([[1, 2]], top_k=3).item_ids.tolist()
    with pytest.raises(UnknownItemError, match="31"):
        model.recommend([[31]])


def test_push_to_hub_uploads_weights_item_map_and_our_card(named_recommender, monkeypatch, tmp_path):
    from huggingface_hub import HfApi

    uploaded = {}

    class Repo:
        repo_id = "user/tiny-etegrec"

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: Repo())

    def upload_folder(self, repo_id, folder_path, **kw):
        uploaded["repo"] = repo_id
        uploaded["files"] = sorted(os.listdir(folder_path))
        uploaded["card"] = pathlib.Path(folder_path, "README.md").read_text()

    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    named_recommender.record_evaluation({"ndcg@10": 0.3}, dataset="toy-data")
    named_recommender.push_to_hub("user/tiny-etegrec", tags=["beauty", "recommendation"])
    assert uploaded["repo"] == "user/tiny-etegrec"
    assert {"config.json", "model.safetensors", "item_map.json", "README.md"} <= set(uploaded["files"])
    assert "model-index" in uploaded["card"] and "ndcg@10" in uploaded["card"]
    assert "- beauty" in uploaded["card"] and uploaded["card"].count("- recommendation\n") == 1
    with pytest.raises(TypeError, match="unexpected keyword argument 'privat'"):  # a typo is not dropped
        named_recommender.push_to_hub("user/tiny-etegrec", privat=True)
    # save_pretrained(push_to_hub=True) uploads the whole saved folder, under the folder's name
    uploaded.clear()
    named_recommender.save_pretrained(tmp_path / "tiny-etegrec", push_to_hub=True)
    assert uploaded["repo"] == "user/tiny-etegrec" and "item_map.json" in uploaded["files"]


class FixedScoreConfig(PretrainedConfig):
    model_type = "test_fixed_scores"

    def __init__(self, num_items=6, **kw):
        self.num_items = num_items
        super().__init__(**kw)


class FixedScoreRecommender(RecommenderMixin, PreTrainedModel):
    """A family whose scores ignore the history: item i scores -i (so the ranking is 1, 2, 3, ...)."""

    config_class = FixedScoreConfig

    def __init__(self, config):
        super().__init__(config)
        self.bias = nn.Parameter(torch.zeros(1))
        self.post_init()

    def forward(self, history, targets):
        return {"loss": self.bias.sum() * 0}

    def top_k_items(self, history, k):
        scores = -torch.arange(1, self.config.num_items + 1, dtype=torch.float).expand(history.shape[0], -1)
        top = scores.topk(min(k, self.config.num_items), 1)
        pad = k - top.indices.shape[1]
        ids = torch.cat([top.indices + 1, torch.full((history.shape[0], pad), -1)], 1)
        return RecommendationOutput(item_ids=ids, scores=torch.cat([top.values, torch.full((history.shape[0], pad), -1e9)], 1))


def test_the_generic_trainer_evaluates_any_family_against_hand_computed_metrics(tmp_path):
    from datasets import Dataset

    rows = Dataset.from_dict({"history": [[2], [3, 4], [1], [5, 6]], "target": [1, 3, 6, 6]})
    args = RecommenderTrainingArguments(
        output_dir=str(tmp_path), metric_ks=[1, 5], per_device_eval_batch_size=3, report_to=[], use_cpu=True
    )
    trainer = RecommenderTrainer(model=FixedScoreRecommender(FixedScoreConfig()), args=args)
    metrics = trainer.evaluate(rows)
    # The fixed ranking is 1..6: target ranks (0-based) are 0, 2, 5, 5.
    assert metrics["eval_recall@1"] == pytest.approx(1 / 4)
    assert metrics["eval_recall@5"] == pytest.approx(2 / 4)
    assert metrics["eval_ndcg@5"] == pytest.approx((ndcg_single(0, 5) + ndcg_single(2, 5)) / 4)
    with pytest.raises(TypeError, match="does not implement the recommender contract"):
        RecommenderTrainer(model=nn.Linear(2, 2), args=args)


def test_names_from_before_0_2_are_gone_and_an_old_config_field_is_refused_not_ignored():
    import hf_genrec
    from hf_genrec import LlamaRecConfig, RQVAEConfig

    assert not hasattr(hf_genrec, "GenRecTrainer") and not hasattr(hf_genrec, "GenRecTrainingArguments")
    with pytest.raises(ValueError, match="LlamaRecConfig: 'code_num' is now called 'codebook_size'"):
        LlamaRecConfig(code_num=7)
    with pytest.raises(ValueError, match="RQVAEConfig: 'in_dim' is now called 'semantic_dim'"):
        RQVAEConfig(in_dim=12)


def _imports(path: pathlib.Path) -> set[str]:
    """Absolute names of the hf_genrec modules ``path`` imports."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            names.add(".".join([*base, node.module or ""]).strip("."))
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.startswith("hf_genrec")}


def test_layering_models_import_neither_training_nor_data_and_utils_are_leaves():
    for path in (ROOT / "hf_genrec" / "models").rglob("*.py"):
        bad = {n for n in _imports(path) if n.startswith(("hf_genrec.training", "hf_genrec.data", "hf_genrec.recipes"))}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
        family = path.relative_to(ROOT / "hf_genrec" / "models").parts
        if len(family) > 1:  # a family imports no other family
            others = {n for n in _imports(path) if n.startswith("hf_genrec.models.") and n.split(".")[2] not in (family[0],)}
            shared = {"hf_genrec.models.backbone", "hf_genrec.models.recommender", "hf_genrec.models.saving"}
            assert others <= shared, f"{path}: {others}"
    for path in (ROOT / "hf_genrec" / "utils").rglob("*.py"):
        assert all(n.startswith("hf_genrec.utils") for n in _imports(path)), path


def test_importing_the_package_prints_nothing():
    proc = subprocess.run([sys.executable, "-c", "import hf_genrec"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stderr


@pytest.mark.parametrize(
    "cmd, message",
    [
        (["-m", "hf_genrec", "prepare", "--input", "/no/such/data", "--output_dir", "x"], "/no/such/data"),
        (["-m", "hf_genrec", "pretrain-rqvae", "--embeddings", "/no/such.npy", "--output_dir", "x"], "/no/such.npy"),
        (["examples/run_etegrec.py", "--dataset_dir", "/no/such/dir"], "/no/such/dir"),
    ],
)
def test_command_line_mistakes_end_in_one_line(cmd, message, tmp_path):
    proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("rqvae", ["16-d", "missing"])
def test_wrong_embedding_dimension_or_missing_checkpoint_is_one_line(rqvae, tmp_path):
    import numpy as np

    from hf_genrec import RQVAEConfig, RQVAEModel

    np.save(tmp_path / "emb.npy", np.zeros((300, 7), dtype=np.float32))
    if rqvae == "16-d":
        config = RQVAEConfig(semantic_dim=16, hidden_dims=[8], codebook_dim=4, codebook_size=4)
        RQVAEModel(config).save_pretrained(tmp_path / "rq")
    cmd = ["examples/run_etegrec.py", "--item_embeddings", str(tmp_path / "emb.npy"), "--rqvae_path", str(tmp_path / "rq")]
    cmd += ["--output_dir", str(tmp_path / "o")]
    proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("hf-genrec train etegrec: error:") and str(tmp_path / "rq") in last, last
    if rqvae == "16-d":
        assert "expects 16-d embeddings, got 7-d" in last


def test_package_exports_match():
    """``__all__`` is exactly the package's public API: every public non-module name, no more."""
    import types

    public = {n for n in dir(hf_genrec) if not n.startswith("_") and not isinstance(getattr(hf_genrec, n), types.ModuleType)}
    public -= {"AutoConfig", "AutoModel"}  # imported to register the families, not ours to export
    assert set(hf_genrec.__all__) == public


@pytest.mark.parametrize(
    "model_class", ["LlamaRecForCodeGeneration", "HLLMForRecommendation", "ItemIDLlamaForRecommendation", "RQVAEModel",
                    "SASRecModel"]
)
def test_main_input_name_is_what_forward_takes(model_class):
    import inspect

    import hf_genrec

    cls = getattr(hf_genrec, model_class)
    assert cls.main_input_name in inspect.signature(cls.forward).parameters


PRIVATE_HOOKS = ("_raise_exceptions_for", "._shared_state", "._reset_state", "._lazy_init", "._prepare_inputs",
                 "._created_lr_scheduler", "def _save(", "def _load_from_checkpoint(", "def _load_best_model(",
                 "def _get_train_sampler(", "def _get_eval_sampler(", "_save_checkpoint", "._version",
                 "._get_fsdp_state")


def test_private_internals_of_dependencies_are_used_only_in_the_compat_module():
    offenders = {
        (str(path.relative_to(ROOT)), hook)
        for path in (ROOT / "hf_genrec").rglob("*.py")
        if path.name != "compat.py"
        for hook in PRIVATE_HOOKS
        if hook in path.read_text()
    }
    assert not offenders, offenders


def test_the_trainer_internals_the_compat_hooks_rely_on_still_exist():
    import inspect

    from accelerate.state import AcceleratorState
    from transformers import Trainer

    from hf_genrec import compat

    expected = {
        "_save": ["self", "output_dir", "state_dict"],
        "_load_from_checkpoint": ["self", "resume_from_checkpoint", "model"],
        "_load_best_model": ["self"],
        "_get_train_sampler": ["self", "train_dataset"],
        "_get_eval_sampler": ["self", "eval_dataset"],
        "_prepare_inputs": ["self", "inputs"],
    }
    for name, params in expected.items():
        assert list(inspect.signature(getattr(Trainer, name)).parameters) == params, name
    assert "_created_lr_scheduler" in inspect.getsource(Trainer.create_scheduler)
    assert isinstance(AcceleratorState._shared_state, dict) and callable(AcceleratorState._reset_state)
    from torch.distributed.fsdp import FSDPModule

    assert callable(FSDPModule._get_fsdp_state)  # what compat.fsdp_lazy_init calls
    t = torch.zeros(2)
    before = compat.tensor_version(t)
    t.add_(1)
    assert compat.tensor_version(t) == before + 1
