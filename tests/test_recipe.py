"""End to end through the user-facing entry points: run_alternating.sh (CLIs + examples/run_etegrec.py)
on a small generated dataset, then the saved checkpoint loads and recommends."""

import json
import os
import subprocess

import numpy as np
import pytest
import torch

from hf_genrec import LlamaRecForCodeGeneration, RQVAEModel
from hf_genrec.data import ItemIdMap, make_synthetic_sequences

from .conftest import run_recipe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_run_alternating_recipe_and_reload(tmp_path):
    data = tmp_path / "toy.inter.json"
    data.write_text(json.dumps(make_synthetic_sequences(num_users=200, num_items=60, seed=5)))
    out = tmp_path / "out"
    env = dict(
        os.environ,
        SASREC_HIDDEN="16",
        SASREC_EPOCHS="2",
        RQVAE_EPOCHS="10",
        HIDDEN="32",
        LAYERS="1",
        HEADS="2",
        EPOCHS="2",
        BATCH="64",
        OMP_NUM_THREADS="2",
    )
    proc = subprocess.run(
        [
            "bash",
            os.path.join(ROOT, "run_alternating.sh"),
            str(data),
            str(out),
            "small",
            "--finetune_epochs",
            "1",
            "--disable_tqdm",
            "true",
            "--eval_num_beams",
            "10",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    metrics = json.loads((out / "etegrec" / "test_metrics.json").read_text())
    assert set(metrics) >= {"recall@1", "recall@5", "recall@10", "ndcg@5", "ndcg@10"}
    assert 0 <= metrics["ndcg@10"] <= metrics["recall@10"] <= 1
    # Both protocols from the same model; the run's own (all items, the default) is also unprefixed.
    assert metrics["ndcg@10"] == metrics["all_items/ndcg@10"] and "exclude_seen/ndcg@10" in metrics
    report = json.loads((out / "item_emb.report.json").read_text())
    assert report["shape"] == [60, 16] and "test_ndcg@10" in report["sasrec"]

    final = out / "etegrec" / "final"
    model = LlamaRecForCodeGeneration.from_pretrained(final).eval()
    item_map = ItemIdMap.load(str(final))
    assert model.config.num_items == item_map.num_items == 60
    rec = model.recommend([[item_map.to_dense(0), item_map.to_dense(1)]], top_k=5)
    assert rec.item_ids.shape == (1, 5) and (rec.item_ids >= 1).all() and torch.isfinite(rec.scores).all()
    # The saved tokenizer reproduces the model's code table (alternating training, then fine-tuning).
    tokenizer = RQVAEModel.from_pretrained(final / "item_tokenizer")
    emb = torch.from_numpy(np.load(out / "item_emb.npy"))
    assert torch.equal(tokenizer.get_codes(emb), model.item_codes[1:])


def test_recipe_fails_loudly_on_a_missing_dataset(tmp_path):
    proc = subprocess.run(
        ["bash", os.path.join(ROOT, "run_alternating.sh"), str(tmp_path / "nope"), str(tmp_path / "o")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "step failed: data split" in proc.stderr


@pytest.mark.parametrize("flag", ["--not_an_option"])
def test_example_rejects_unknown_arguments(flag):
    proc = subprocess.run(
        ["python", os.path.join(ROOT, "examples", "run_etegrec.py"), flag], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0 and flag in proc.stderr


def test_example_estimates_memory_without_training(tmp_path):
    proc = subprocess.run(
        [
            "python",
            "-m",
            "hf_genrec",
            "estimate-memory",
            "--hidden_size",
            "32",
            "--num_hidden_layers",
            "1",
            "--num_attention_heads",
            "2",
            "--output_dir",
            str(tmp_path / "never"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Training memory estimate" in proc.stdout and "activations, checkpointing" in proc.stdout
    assert not (tmp_path / "never").exists()


def _run_recipe(args, out, kill_in=None, kill_at="checkpoint") -> str:
    """The ETEGRec recipe on ``args``; its log (numbered beside ``out``)."""
    out.mkdir(parents=True, exist_ok=True)
    log_path = out.parent / f"{out.name}-{len(list(out.parent.glob(out.name + '-*.log')))}.log"
    return run_recipe("etegrec", args, log_path, kill_in, kill_at)


def test_a_run_killed_in_every_training_stage_and_rerun_ends_byte_identical(tmp_path):
    """--full_determinism: one run killed (SIGKILL) in SASRec after its first checkpoint, its rerun
    likewise in RQ-VAE pre-training, the next as the alternating stage starts (before any checkpoint
    of it: the recommender is built again after the finished stages were skipped), the next after
    that stage's first checkpoint, the next
    in fine-tuning, then a last rerun of the same command, ends with the same weights and metrics as
    an uninterrupted run. Each rerun resumes the stage killed before from its last checkpoint (or
    starts it again), reuses the finished ones and loads a finished stage instead of training it."""
    data = tmp_path / "toy.inter.json"
    data.write_text(json.dumps(make_synthetic_sequences(num_users=120, num_items=40, seed=7)))
    small = ["--hidden_size", "32", "--num_hidden_layers", "1", "--num_attention_heads", "2", "--sasrec_hidden_size", "16"]
    # The basic SASRec recipe checkpoints every epoch, so the run can be killed between two of them.
    epochs = ["--sasrec_recipe", "basic", "--sasrec_epochs", "2", "--rqvae_epochs", "20", "--num_train_epochs", "2"]
    epochs += ["--finetune_epochs", "2"]

    def args(out):
        seeded = ["--full_determinism", "true", "--seed", "3"]
        return ["--dataset_dir", str(data), "--output_dir", str(out), *small, *epochs, *seeded]

    whole, chain = tmp_path / "whole", tmp_path / "chain"
    _run_recipe(args(whole), whole)
    kills = [(chain / "sasrec", "checkpoint"), (chain / "rqvae" / "trainer", "checkpoint"), (chain, "start"),
             (chain, "checkpoint"), (chain / "finetune", "checkpoint")]
    logs = [_run_recipe(args(chain), chain, kill_in, kill_at) for kill_in, kill_at in kills]
    assert not (chain / "final").exists()
    logs.append(_run_recipe(args(chain), chain))
    # What each rerun did with the stage the run before it was killed in.
    assert f"resuming the stage in {chain / 'sasrec'} from" in logs[1] and "SASRec stage already finished" in logs[2]
    assert "RQ-VAE pre-training: resuming from" in logs[2] and "RQ-VAE pre-training already finished" in logs[3]
    assert f"resuming the stage in {chain} from" not in logs[3]  # killed before its first checkpoint: started again
    assert f"resuming the stage in {chain} from" in logs[4]
    assert f"stage in {chain} already finished: loading" in logs[5]
    assert f"resuming the stage in {chain / 'finetune'} from" in logs[5]
    assert json.loads((chain / "test_metrics.json").read_text()) == json.loads((whole / "test_metrics.json").read_text())
    for weights in ("final/model.safetensors", "final/item_tokenizer/model.safetensors"):
        assert (chain / weights).read_bytes() == (whole / weights).read_bytes(), weights
    assert not list(chain.glob("final/**/*.bin"))  # no pickles in the saved model


def test_fine_tuning_that_never_beats_the_alternating_stage_is_discarded(tmp_path):
    from transformers import TrainerState

    from hf_genrec import ETEGRecTrainer
    from hf_genrec.recipes.etegrec import keep_better_stage

    from .test_trainer import args, setup

    dsd, emb, tok, rec = setup(use_lora=False)
    trainer = ETEGRecTrainer(model=rec, item_tokenizer=tok, item_embeddings=emb, args=args(tmp_path, eval_strategy="no"),
                            train_dataset=dsd["train"])
    trainer.save_model(str(tmp_path / "alternating-best"))  # the alternating stage's best checkpoint
    best = rec.scid_projector.weight.detach().clone()
    before = TrainerState(best_metric=0.0501, best_model_checkpoint=str(tmp_path / "alternating-best"))
    with torch.no_grad():
        rec.scid_projector.weight.add_(1.0)  # what fine-tuning changed
    trainer.state.best_metric = 0.0473  # fine-tuning's best validation is worse: its weights are dropped
    keep_better_stage(trainer, before, greater_is_better=True)
    assert torch.equal(rec.scid_projector.weight, best)
    with torch.no_grad():
        rec.scid_projector.weight.add_(1.0)
    for metric, greater in ((0.0473, False), (0.06, True), (None, True)):  # fine-tuning won, or never evaluated
        trainer.state.best_metric = metric
        keep_better_stage(trainer, before, greater_is_better=greater)
        assert torch.equal(rec.scid_projector.weight, best + 1.0)
