"""Finding the checkpoint a killed run can resume from."""

from __future__ import annotations

import os
import re

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
#: what ``Trainer`` writes last into a checkpoint: a checkpoint holding it is complete
TRAINER_STATE_FILE = "trainer_state.json"


def is_trainer_checkpoint(path: str) -> bool:
    """Whether ``path`` is a Trainer checkpoint folder (``.../checkpoint-N``)."""
    return bool(_CHECKPOINT.match(os.path.basename(os.path.normpath(path))))


def require_complete_checkpoint(path: str) -> None:
    """Refuse to resume from a ``checkpoint-N`` the Trainer did not finish writing.

    ``Trainer`` would load its weights, find no ``trainer_state.json`` and silently start again
    from step 0 with them; a resumed run must continue the interrupted one or stop.
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no checkpoint folder {path}")
    if not os.path.exists(os.path.join(path, TRAINER_STATE_FILE)):
        newest = last_complete_checkpoint(os.path.dirname(os.path.abspath(path)))
        hint = f"resume from {newest}, the newest complete one" if newest else "there is no complete one beside it"
        raise ValueError(
            f"{path} is incomplete: it has no {TRAINER_STATE_FILE}, which the Trainer writes last (its save was "
            f"interrupted); {hint}"
        )


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest ``checkpoint-N`` in ``output_dir`` that was written to the end, or None.

    ``transformers.trainer_utils.get_last_checkpoint`` takes the highest N even when the run was
    killed while writing it; ``Trainer`` writes ``trainer_state.json`` last, so a checkpoint holding
    it is complete. Older complete ones are used when the newest is not.
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
        if os.path.exists(os.path.join(path, TRAINER_STATE_FILE)):
            return path
    return None
