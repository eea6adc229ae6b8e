"""What ETEGRec needs from FSDP2 (``torch.distributed.fsdp.fully_shard``, as accelerate applies it).

ETEGRec uses parameters outside the trained module's ``forward``: code re-assignment runs the
RQ-VAE, evaluation runs ``generate()``, checkpoints read and write every weight. Under FSDP2 the
parameters of the root group (everything outside the auto-wrapped decoder layers: codebooks,
projectors, adapters, the RQ-VAE) are sharded ``DTensor`` s between forwards, so those steps
gather them first. The wrapped decoder layers gather themselves whenever they are called.
Everything here is a no-op without FSDP2, so DDP and single-process runs take the plain path.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch
from torch import nn

from .compat import fresh_accelerator_state, fsdp_lazy_init

try:
    from torch.distributed.fsdp import FSDPModule
except ImportError:  # a torch build without distributed support
    FSDPModule = None


def is_fsdp2(module: nn.Module) -> bool:
    """Whether ``module`` was sharded in place by ``fully_shard``."""
    return FSDPModule is not None and isinstance(module, FSDPModule)


def launched_with(backend: str) -> bool:
    """Whether this process runs under ``accelerate launch`` with ``backend`` ("FSDP" or "DEEPSPEED")."""
    return os.environ.get(f"ACCELERATE_USE_{backend}", "false").lower() == "true"


@contextmanager
def gathered_root_parameters(module: nn.Module):
    """All-gather the FSDP2 root group's parameters for read-only use outside ``forward``.

    Writes made inside are lost at the reshard (FSDP2 does not write back); write to the sharded
    parameters instead (same-shaped ``DTensor`` s copy shard to shard).
    """
    if not is_fsdp2(module):
        yield
        return
    module.unshard()
    try:
        yield
    finally:
        module.reshard()


def finish_fsdp_setup(module: nn.Module) -> None:
    """Run FSDP2's lazy initialisation now, while every trained parameter still requires grad.

    FSDP2 fixes each group's gradient-reduction dtypes from the parameters that require grad at
    its first forward. ETEGRec's first epoch freezes one side before that forward, which would
    leave the other side's groups without reduction dtypes (wrong-dtype gradients under bf16
    mixed precision when they unfreeze). There is no public hook for this (:mod:`hf_genrec.compat`).
    """
    if is_fsdp2(module):
        fsdp_lazy_init(module)


def load_full_state_dict(module: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load a full (unsharded) state dict into ``module``, sharded or not. Keys are checked by the caller."""
    if is_fsdp2(module):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        # Every rank read the same files, so each slices its own shards locally (no broadcast).
        set_model_state_dict(module, state_dict, options=StateDictOptions(full_state_dict=True, strict=False))
    else:
        module.load_state_dict(state_dict, strict=False)


_SHARDING_BACKENDS = ("FSDP", "DEEPSPEED")


@contextmanager
def without_model_sharding():
    """Inside an FSDP / DeepSpeed launch, run the Trainers created in this block as plain DDP.

    The small stage models (SASRec, the RQ-VAE) gain nothing from sharding, and accelerate's FSDP
    plugin is a process-wide singleton that would otherwise wrap them with the recommender's
    auto-wrap policy (whose layer classes they lack) and fix that policy for the recommender.
    accelerate's state is reset on the way in (the process group is kept) and restored on the way
    out, so the Trainers after the block get the launch's FSDP state again.
    """
    if not any(launched_with(b) for b in _SHARDING_BACKENDS):
        yield
        return
    saved = {f"ACCELERATE_USE_{b}": os.environ.get(f"ACCELERATE_USE_{b}") for b in _SHARDING_BACKENDS}
    # An accelerate state built before this block (e.g. by the caller's own Trainer) comes back as it
    # was on the way out, so objects holding it keep working; with none, the next Trainer builds it anew.
    with fresh_accelerator_state():
        os.environ.update({k: "false" for k in saved})
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
