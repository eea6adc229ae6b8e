"""End to end through the user-facing entry points: run_alternating.sh (CLIs + examples/run_etegrec.py)
on a small generated dataset, then the saved checkpoint loads and recommends."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import torch

from hf_genrec import LlamaRecForCodeGeneration, RQVAEModel
from hf_genrec.data import ItemIdMap, make_synthetic_sequences

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
            os.path.join(ROOT, "examples", "run_etegrec.py"),
            "--estimate_memory",
            "true",
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


def _run_recipe(cmd, out, kill_when=None):
    """Run the recipe; with ``kill_when`` (a glob under ``out``), SIGKILL it once a complete checkpoint
    matching it exists (its trainer_state.json, written last, is there)."""
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    if kill_when is not None:
        deadline = time.time() + 600
        while not list(out.glob(kill_when + "/trainer_state.json")):
            assert proc.poll() is None, f"the run ended before {kill_when} appeared"
            assert time.time() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
        return
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return err


def test_a_run_killed_in_any_training_stage_and_rerun_ends_byte_identical(tmp_path):
    """--full_determinism: an uninterrupted run, one SIGKILLed in the alternating stage and one
    SIGKILLed in fine-tuning, each rerun with the same command, end with the same weights and metrics
    (the rerun reuses the finished SASRec / RQ-VAE stages, skips finished stages and resumes the
    rest from their last checkpoint)."""
    data = tmp_path / "toy.inter.json"
    data.write_text(json.dumps(make_synthetic_sequences(num_users=120, num_items=40, seed=7)))
    small = ["--hidden_size", "32", "--num_hidden_layers", "1", "--num_attention_heads", "2", "--sasrec_hidden_size", "16"]
    epochs = ["--sasrec_epochs", "2", "--rqvae_epochs", "10", "--num_train_epochs", "2", "--finetune_epochs", "2"]
    finals = []
    for name, kill_when in (("whole", None), ("alternating", "checkpoint-*"), ("finetune", "finetune/checkpoint-*")):
        out = tmp_path / name
        cmd = ["python", os.path.join(ROOT, "examples", "run_etegrec.py"), "--dataset_dir", str(data), "--output_dir", str(out)]
        cmd += [*small, *epochs, "--full_determinism", "true", "--seed", "3"]
        if kill_when:
            _run_recipe(cmd, out, kill_when)
            assert not (out / "final").exists()
        log = _run_recipe(cmd, out)
        if kill_when:  # the rerun redid nothing that was finished
            assert "SASRec stage already finished" in log and "RQ-VAE pre-training already finished" in log
            killed_stage = out / "finetune" if kill_when.startswith("finetune") else out
            assert f"resuming the stage in {killed_stage} from" in log
            if killed_stage != out:  # killed in fine-tuning: the finished alternating stage is loaded, not retrained
                assert f"stage in {out} already finished: loading" in log
        finals.append(out)
    whole, *rerun = finals
    for out in rerun:
        assert json.loads((out / "test_metrics.json").read_text()) == json.loads((whole / "test_metrics.json").read_text())
        assert (out / "final" / "model.safetensors").read_bytes() == (whole / "final" / "model.safetensors").read_bytes()
        assert not list(out.glob("final/*.bin"))  # no pickles in the saved model


def test_fine_tuning_that_never_beats_the_alternating_stage_is_discarded():
    from types import SimpleNamespace

    from hf_genrec.recipes.etegrec import keep_better_stage

    loaded = []

    def fine_tuned(best):
        args = SimpleNamespace(metric_for_best_model="ndcg@10")
        return SimpleNamespace(state=SimpleNamespace(best_metric=best), args=args, _load_joint=loaded.append)

    before = SimpleNamespace(best_metric=0.0501, best_model_checkpoint="out/checkpoint-12336")
    keep_better_stage(fine_tuned(0.0473), before, greater_is_better=True)
    assert loaded == ["out/checkpoint-12336"]
    keep_better_stage(fine_tuned(0.0473), before, greater_is_better=False)  # lower is better: fine-tuning won
    keep_better_stage(fine_tuned(0.06), before, greater_is_better=True)
    keep_better_stage(fine_tuned(None), before, greater_is_better=True)  # no evaluation during fine-tuning
    assert loaded == ["out/checkpoint-12336"]
