"""One-line answers to a user's mistakes on the command line.

A missing file, unreadable data or a wrong dimension is the user's to fix, not a bug of ours:
print what is wrong in one line and exit with status 2 instead of a Python traceback. Set
``HF_GENREC_TRACEBACK=1`` to get the traceback anyway.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from ..data.readers import InteractionFormatError
from ..utils import EmptyHistoryError, UnknownItemError

USER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # missing / unreadable files; transformers' "not a local folder nor a Hub id" for a checkpoint path
    InteractionFormatError,
    UnknownItemError,
    EmptyHistoryError,
    ValueError,  # wrong dimensions, bad arguments, malformed JSON (json.JSONDecodeError)
)


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
    ``prog: error: ...`` and exit status 2."""
    configure_logging()
    try:
        main(argv)
    except USER_ERRORS as err:
        if os.environ.get("HF_GENREC_TRACEBACK", "").lower() in ("1", "true", "yes"):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        sys.exit(2)
