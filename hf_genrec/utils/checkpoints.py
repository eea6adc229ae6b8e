"""Finding the checkpoint a killed run can resume from."""

from __future__ import annotations

import os
import re

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


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
        if os.path.exists(os.path.join(path, "trainer_state.json")):
            return path
    return None
