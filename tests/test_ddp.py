"""Two CPU processes (gloo) through ``accelerate launch``: the ranks must end identical."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate CLI not installed")
def test_two_process_ddp_ranks_agree(tmp_path):
    worker = os.path.join(os.path.dirname(__file__), "ddp_worker.py")
    # accelerate's --cpu multi-process path needs mpirun; its torchrun path with the Trainer's
    # use_cpu=True runs DDP over gloo on a machine without GPUs.
    cmd = [
        "accelerate",
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        worker,
        str(tmp_path),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.load(open(tmp_path / f"rank{r}.json")) for r in (0, 1)]
    a, b = ranks
    assert a["world_size"] == b["world_size"] == 2
    assert a["codebooks"] == b["codebooks"]
    assert a["tokenizer_codebooks"] == b["tokenizer_codebooks"]
    assert a["codebooks"] == a["tokenizer_codebooks"]  # the last epoch was a recommender epoch: copied back
    assert a["item_codes"] == b["item_codes"]
    assert a["lora_sum"] == b["lora_sum"]
    assert a["metrics"] == b["metrics"]
    # Gathered metrics = one process scoring each of the 47 users once (padding duplicates dropped).
    for k, v in a["single_process_metrics"].items():
        assert a["metrics"][f"eval_{k}"] == pytest.approx(v, abs=1e-9), k
    # Only the main process writes checkpoints, and they are complete.
    ckpts = [c for c in a["checkpoints"] if c.startswith("checkpoint-")]
    assert ckpts and (tmp_path / "run" / ckpts[-1] / "item_tokenizer" / "config.json").exists()
