"""How the commands end: a mistake in the user's input in one line, a bug with its traceback.

A :class:`~hf_genrec.utils.errors.GenRecError` (a missing file, a bad argument or config, data or a
checkpoint the library refuses) is the user's to fix: print what is wrong in one line and exit with
status 2. Every other exception is a bug, ours or a dependency's, and keeps its traceback: a shape
error hours into training must not be reduced to one line. ``HF_GENREC_TRACEBACK=1`` shows the
traceback of input mistakes too.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from ..utils.errors import CheckpointError, GenRecError

#: the exceptions a command prints as one line (argument errors end in argparse's own exit 2)
USER_ERRORS: tuple[type[BaseException], ...] = (GenRecError,)


def load_checkpoint(path: str, **kwargs):
    """``AutoModel.from_pretrained(path)`` for a command: a path that is neither a checkpoint folder
    nor a Hub model (transformers raises a bare ``OSError``) becomes a :class:`CheckpointError`."""
    from transformers import AutoModel

    import hf_genrec  # noqa: F401  (registers the Auto classes)

    try:
        return AutoModel.from_pretrained(path, **kwargs)
    except GenRecError:
        raise
    except OSError as err:
        raise CheckpointError(f"cannot load a checkpoint from {path}: {err}") from err


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str | int | None = None) -> None:
    """Logging of a console run: INFO on the main process, WARNING on the other ranks of a launch
    (``RANK`` set by ``accelerate launch`` / ``torchrun``), unless ``level`` is given. Library
    functions never configure logging; the commands do, here."""
    if level is None:
        level = logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING
    logging.basicConfig(level=level.upper() if isinstance(level, str) else level, format=LOG_FORMAT, force=True)


def run_cli(main: Callable[[list[str] | None], object], prog: str, argv: list[str] | None = None) -> None:
    """Run ``main(argv)`` with :func:`configure_logging`; a :data:`USER_ERRORS` exception becomes
    ``prog: error: ...`` and exit status 2, any other propagates with its traceback."""
    configure_logging()
    try:
        main(argv)
    except USER_ERRORS as err:
        if os.environ.get("HF_GENREC_TRACEBACK", "").lower() in ("1", "true", "yes"):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        sys.exit(2)
