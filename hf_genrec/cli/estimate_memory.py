"""The per-device GPU memory an ETEGRec training configuration needs, from its config alone (no
weights are loaded): weights, gradients, optimizer state and activations, as a table.

    hf-genrec estimate-memory --model_name_or_path /path/to/Llama-2-7b-hf --per_device_train_batch_size 32 \\
        --bf16 true --optim adamw_bnb_8bit [--gradient_checkpointing true]

It takes exactly the flags (and ``--config``) of ``hf-genrec train etegrec``; under ``accelerate
launch`` with FSDP the weights are counted split over the processes.
"""

from __future__ import annotations

from ..recipes.etegrec import parse_args, print_memory_estimate


def main(argv: list[str] | None = None) -> dict:
    margs, _, targs = parse_args(list(argv or []), prog="hf-genrec estimate-memory")
    return print_memory_estimate(margs, targs)
