"""Shared tiny fixtures: a 2-layer LLaMA, small code tables, generated interactions."""

from __future__ import annotations

import importlib.util
import itertools
import os
import signal
import subprocess
import sys
from types import ModuleType

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_LLAMA = {
    "model_type": "llama",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 4,
    "max_position_embeddings": 256,
    "tie_word_embeddings": False,
}


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (a script folder, not a package) as a module."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def unique_codes(num_items: int, code_num: int = 4, levels: int = 4, seed: int = 0) -> torch.Tensor:
    """``[num_items, levels]`` distinct code rows."""
    gen = torch.Generator().manual_seed(seed)
    every = torch.tensor(list(itertools.product(range(code_num), repeat=levels)))
    return every[torch.randperm(len(every), generator=gen)[:num_items]]


def tiny_config(
    num_items: int = 30, use_lora: bool = True, semantic_dim: int = 16, layers: int = 2, backbone: dict | None = None, **kw
):
    """A LlamaRecConfig on TINY_LLAMA (or ``backbone``) with 4-code vocabularies and 8-d codebooks."""
    from hf_genrec import LlamaRecConfig

    base = dict(codebook_size=4, suffix_size=4, codebook_dim=8, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    return LlamaRecConfig(
        backbone_config=dict(backbone or TINY_LLAMA, num_hidden_layers=layers),
        num_items=num_items,
        semantic_dim=semantic_dim,
        use_lora=use_lora,
        **(base | kw),
    )


def tiny_recommender(num_items: int = 30, use_lora: bool = True, semantic_dim: int = 16, seed: int = 0, **kw):
    from hf_genrec import LlamaRecForCodeGeneration

    torch.manual_seed(seed)
    cfg = tiny_config(num_items, use_lora, semantic_dim, **kw)
    model = LlamaRecForCodeGeneration(cfg)
    model.set_item_codes(unique_codes(num_items, seed=seed))
    if use_lora:  # LoRA B starts at zero; give it weight so round-trips test real adapter values
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(std=0.05)
    return model


@pytest.fixture
def recommender():
    return tiny_recommender().eval()


def kill_driver(recipe: str) -> str:
    """A ``python -c`` script that runs ``hf_genrec.recipes.<recipe>`` and SIGKILLs itself in the
    stage whose output folder is ``$KILL_IN``: right after its first checkpoint
    (``$KILL_AT=checkpoint``) or as it starts training, before any (``start``). A kill at a known
    point however fast the stage runs (polling from outside raced with tiny stages)."""
    return f"""
import os, signal, sys
import transformers
def in_the_stage(trainer):
    return os.path.abspath(trainer.args.output_dir) == os.path.abspath(os.environ["KILL_IN"])
save, train = transformers.Trainer._save_checkpoint, transformers.Trainer.train
def save_then_die(self, *args, **kwargs):
    save(self, *args, **kwargs)
    if in_the_stage(self) and os.environ["KILL_AT"] == "checkpoint":
        os.kill(os.getpid(), signal.SIGKILL)
def die_at_start(self, *args, **kwargs):
    if in_the_stage(self) and os.environ["KILL_AT"] == "start":
        os.kill(os.getpid(), signal.SIGKILL)
    return train(self, *args, **kwargs)
transformers.Trainer._save_checkpoint = save_then_die
transformers.Trainer.train = die_at_start
from hf_genrec.cli.main import cli
cli(["train", "{recipe}", *sys.argv[1:]])
"""


def run_recipe(recipe: str, args: list[str], log_path, kill_in=None, kill_at: str = "checkpoint") -> str:
    """Run ``hf-genrec train <recipe> args`` in a subprocess and return its log; with ``kill_in`` (a
    stage's output folder) the run is SIGKILLed in that stage at ``kill_at`` (:func:`kill_driver`)
    and must die so. The log goes to ``log_path``, a file: a chatty run never blocks on a pipe."""
    env = dict(os.environ, OMP_NUM_THREADS="2", KILL_IN=str(kill_in or ""), KILL_AT=kill_at if kill_in else "")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(log_path, "w") as log:
        code = subprocess.run([sys.executable, "-c", kill_driver(recipe), *args], cwd=root, stdout=subprocess.DEVNULL,
                              stderr=log, env=env, timeout=600).returncode
    text = open(log_path).read()
    if kill_in is None:
        assert code == 0, text[-3000:]
    else:
        assert code == -signal.SIGKILL, f"the run was not killed in {kill_in} at {kill_at}:\n{text[-3000:]}"
    return text
