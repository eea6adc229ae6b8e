"""Trainer checkpoints: which one a killed run can resume from, and flushing each to disk."""

from __future__ import annotations

import json
import os
import re

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .atomic import flush_to_disk
from .errors import InputError, MissingFileError

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
#: what ``Trainer`` writes last into a checkpoint: a checkpoint holding it is complete
TRAINER_STATE_FILE = "trainer_state.json"


def is_trainer_checkpoint(path: str) -> bool:
    """Whether ``path`` is a Trainer checkpoint folder (``.../checkpoint-N``)."""
    return bool(_CHECKPOINT.match(os.path.basename(os.path.normpath(path))))


def is_complete_checkpoint(path: str) -> bool:
    """Whether the Trainer finished writing ``path``: its ``trainer_state.json`` (written last) is
    there and whole (transformers writes it in place, so a kill can leave it truncated)."""
    try:
        with open(os.path.join(path, TRAINER_STATE_FILE)) as f:
            return "global_step" in json.load(f)
    except (OSError, ValueError):
        return False


def require_complete_checkpoint(path: str) -> None:
    """Refuse to resume from a ``checkpoint-N`` the Trainer did not finish writing.

    ``Trainer`` would load its weights, find no ``trainer_state.json`` and silently start again
    from step 0 with them; a resumed run must continue the interrupted one or stop.
    """
    if not os.path.isdir(path):
        raise MissingFileError(f"no checkpoint folder {path}")
    if not is_complete_checkpoint(path):
        newest = last_complete_checkpoint(os.path.dirname(os.path.abspath(path)))
        hint = f"resume from {newest}, the newest complete one" if newest else "there is no complete one beside it"
        raise InputError(
            f"{path} is incomplete: it has no whole {TRAINER_STATE_FILE}, which the Trainer writes last (its save "
            f"was interrupted); {hint}"
        )


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest ``checkpoint-N`` in ``output_dir`` that was written to the end, or None.

    ``transformers.trainer_utils.get_last_checkpoint`` takes the highest N even when the run was
    killed while writing it; ``Trainer`` writes ``trainer_state.json`` last, so a checkpoint holding
    it whole is complete (:func:`is_complete_checkpoint`). Older complete ones are used when the newest is not.
    """
    if not os.path.isdir(output_dir):
        return None
    found = []
    for name in os.listdir(output_dir):
        match = _CHECKPOINT.match(name)
        path = os.path.join(output_dir, name)
        if match and os.path.isdir(path):
            found.append((int(match.group(1)), path))
    for _, path in sorted(found, reverse=True):
        if is_complete_checkpoint(path):
            return path
    return None


class DurableCheckpointCallback(TrainerCallback):
    """Flush each Trainer checkpoint to disk once the Trainer has written it whole.

    The model part of a checkpoint is staged and flushed by the model's own save; the optimizer,
    scheduler, RNG and ``trainer_state.json`` files the Trainer adds after it are not, so after a
    power cut they could read back empty while the folder looks complete.
    """

    def on_save(self, args, state, control, **kwargs):
        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if state.is_world_process_zero and os.path.isdir(folder):
            flush_to_disk(folder)
