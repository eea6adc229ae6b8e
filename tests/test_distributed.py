"""Single-process checks of the FSDP helpers (the multi-process runs are in test_ddp.py)."""

import os

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from hf_genrec.distributed import gathered_root_parameters, is_fsdp2, without_model_sharding


def test_without_model_sharding_hides_the_launch_and_restores_it(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what `accelerate launch --config_file fsdp2.yaml` sets
    AcceleratorState._reset_state()
    outer = Accelerator(cpu=True)  # e.g. the caller's own Trainer, built before the stage
    before = dict(AcceleratorState._shared_state)
    assert before
    with without_model_sharding():
        assert os.environ["ACCELERATE_USE_FSDP"] == "false"
        assert not AcceleratorState._shared_state  # a Trainer built here starts from a fresh, unsharded state
        Accelerator(cpu=True)  # the stage's Trainer
    assert os.environ["ACCELERATE_USE_FSDP"] == "true"
    assert dict(AcceleratorState._shared_state) == before
    assert outer.state.distributed_type == before["distributed_type"]  # the earlier object works again
    AcceleratorState._reset_state()


def test_helpers_are_no_ops_without_fsdp(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    module = torch.nn.Linear(2, 2)
    assert not is_fsdp2(module)
    with gathered_root_parameters(module), without_model_sharding():
        assert module(torch.ones(1, 2)).shape == (1, 2)
