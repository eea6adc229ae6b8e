"""The HTTP server around the app: uvicorn with bounded connections.

uvicorn alone keeps a connection open for as long as a client keeps it so: a client that sends
nothing, or one header line every few seconds, holds a socket for ever, and a few hundred of them
use up the process's file descriptors. :class:`ConnectionLimits` bounds every phase of a
connection (the protocol class that enforces the read deadlines is in :mod:`hf_genrec.compat`).
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import Any

from ..utils.errors import InputError

#: file descriptors the process needs beside its client connections (model files, logs, the
#: listening socket, the event loop, torch's thread pools)
RESERVED_FILE_DESCRIPTORS = 64


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take and how many may be connected at once (the ``serve`` flags)."""

    #: seconds from connecting (or from the first byte after a keep-alive pause) to a whole request head
    header_timeout_s: float = 10.0
    #: seconds from the head to the whole body
    body_timeout_s: float = 30.0
    #: seconds an idle connection is kept open between requests
    keep_alive_timeout_s: int = 5
    #: seconds a client that stopped reading its answers has to resume before it is cut off
    send_timeout_s: float = 30.0
    #: open connections at most; one more is answered 503 and closed at once
    max_connections: int = 512
    #: connections the kernel queues before the server accepts them
    backlog: int = 2048

    def __post_init__(self) -> None:
        for name in (
            "header_timeout_s", "body_timeout_s", "keep_alive_timeout_s", "send_timeout_s", "max_connections", "backlog"
        ):
            value = getattr(self, name)
            if not value > 0:
                raise InputError(f"{name} must be positive, got {value!r}")


def check_file_descriptors(limits: ConnectionLimits) -> None:
    """Refuse a connection cap the process's open-file limit (``ulimit -n``) cannot hold.

    Past that limit ``accept`` fails and the server stops answering everyone, which is what the cap
    is there to prevent.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and limits.max_connections + RESERVED_FILE_DESCRIPTORS > soft:
        raise InputError(
            f"max_connections {limits.max_connections} needs about {limits.max_connections + RESERVED_FILE_DESCRIPTORS} "
            f"open files, but this process may open {soft} (ulimit -n): lower --max_connections to at most "
            f"{max(soft - RESERVED_FILE_DESCRIPTORS, 1)} or raise the limit"
        )


def uvicorn_config(app: Any, limits: ConnectionLimits = ConnectionLimits(), **kwargs: Any) -> Any:
    """A ``uvicorn.Config`` serving ``app`` over HTTP/1.1 with ``limits`` enforced.

    ``kwargs`` go to ``uvicorn.Config`` (``host``, ``port``, ``log_level``, ...).
    """
    import uvicorn

    from ..compat import bounded_h11_protocol

    check_file_descriptors(limits)
    protocol = bounded_h11_protocol(
        limits.header_timeout_s, limits.body_timeout_s, limits.send_timeout_s, limits.max_connections
    )
    return uvicorn.Config(
        app,
        http=protocol,
        timeout_keep_alive=limits.keep_alive_timeout_s,
        # uvicorn answers 503 once connections >= limit_concurrency, counting the asking one; the
        # protocol already refuses connection max_connections + 1, so every admitted one is served
        limit_concurrency=limits.max_connections + 1,
        backlog=limits.backlog,
        **kwargs,
    )
