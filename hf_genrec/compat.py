"""The one place that reaches past a dependency's public API, with the reason and the versions checked.

Everything else in the package uses public interfaces only. Each hook here is covered by a test
that fails if a new release changes what it relies on.

- :func:`bounded_h11_protocol` (uvicorn, checked on 0.55.0 with h11 0.16.0): uvicorn has a keep-alive
  timeout and a concurrency limit, but no deadline for reading a request. A client that opens a
  connection and sends nothing, or drips one header line every few seconds, holds its socket (and a
  file descriptor) for ever. uvicorn accepts any ``asyncio.Protocol`` class as ``Config(http=...)``
  (public); the subclass below adds the deadlines on uvicorn's h11 protocol, reading the parser's
  state through h11's public API (``their_state``, ``trailing_data``). It relies on uvicorn's
  ``H11Protocol`` attributes ``conn``, ``transport``, ``loop``, ``connections``,
  ``timeout_keep_alive(_task)`` and on its methods ``connection_made`` / ``data_received`` /
  ``connection_lost`` / ``on_response_complete`` / ``pause_writing`` / ``resume_writing`` /
  ``_unset_keepalive_if_required``.
- :class:`TrainerHooks` (transformers, checked on 5.24 and 5.25): ``Trainer`` has no public hook for
  where a model folder is written (``_save``), how a checkpoint or the best model is loaded back
  (``_load_from_checkpoint``, ``_load_best_model``), or which sampler orders the rows
  (``_get_train_sampler``, ``_get_eval_sampler``); ``prediction_step`` overrides need
  ``_prepare_inputs``, and a ``create_scheduler`` override sets ``_created_lr_scheduler``. The mixin
  routes each to a public-named method that the library's trainers override (staged saves, strict
  loads, length grouping over leave-one-out views).
- :func:`fsdp_lazy_init` (torch FSDP2, checked on torch 2.13): FSDP2 fixes each group's gradient-
  reduction dtypes at its first forward; there is no public way to run that initialisation early.
- :func:`tensor_version` (torch, checked on 2.13): a tensor's in-place version counter, the only way
  to know that an optimizer step or ``copy_`` changed a table a cache was derived from (ETEGRec's
  beam-search trie, HLLM's item embeddings); torch has no public accessor for it.
- :func:`fresh_accelerator_state` (accelerate, checked on 1.x): accelerate's state is a process-wide
  singleton with no public reset; the small stage models train as plain DDP inside an FSDP launch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

logger = logging.getLogger(__name__)

#: seconds between two log lines about refused connections (a flood must not flood the log too)
_REFUSAL_LOG_EVERY_S = 10.0


def _plain_response(status: bytes, text: bytes, *extra_headers: bytes) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, for a client the parser never handed on."""
    head = [b"HTTP/1.1 " + status, b"content-type: text/plain", b"connection: close", *extra_headers]
    return b"\r\n".join([*head, b"content-length: %d" % len(text), b"", text])


#: written to a client whose request head did not arrive in time (then the connection closes)
_REQUEST_TIMEOUT_RESPONSE = _plain_response(b"408 Request Timeout", b"request head not read in time\n")
#: written to a connection accepted beyond the connection cap
_OVER_CAPACITY_RESPONSE = _plain_response(b"503 Service Unavailable", b"too many open connections\n", b"retry-after: 1")


def bounded_h11_protocol(
    header_timeout_s: float, body_timeout_s: float, send_timeout_s: float, max_connections: int
) -> type[asyncio.Protocol]:
    """A uvicorn HTTP/1.1 protocol class that drops slow clients and caps open connections.

    - ``header_timeout_s``: a request head (request line and headers) must arrive whole within this
      many seconds of the connection opening, or of its first byte after a keep-alive pause; else
      the client gets 408 and the connection closes.
    - ``body_timeout_s``: once the head is read, the body must arrive whole within this many seconds;
      else the connection closes (the handler sees a disconnect).
    - Between requests a connection is idle for at most uvicorn's ``timeout_keep_alive``, also after
      an answer sent before the body was read (a 413), where uvicorn itself would wait for ever.
    - ``send_timeout_s``: a client that stops reading (its answers fill the socket buffer) must
      resume within this many seconds; else the connection is aborted.
    - ``max_connections``: a connection accepted while this many are open gets 503 and is closed at
      once, so slow or idle clients cannot use up the process's file descriptors.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    refusals = {"count": 0, "logged_at": float("-inf")}

    def count_refusal() -> None:
        refusals["count"] += 1
        now = time.monotonic()
        if now - refusals["logged_at"] >= _REFUSAL_LOG_EVERY_S:
            logger.warning(
                "refused %d connection(s) since the last report: %d open connections is the cap",
                refusals["count"],
                max_connections,
            )
            refusals.update(count=0, logged_at=now)

    class BoundedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _phase: str | None = None
        _send_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                count_refusal()
                self.connections.discard(self)  # not counted while it closes
                transport.write(_OVER_CAPACITY_RESPONSE)
                transport.close()
                return
            self._enter("head", header_timeout_s)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._follow_parser()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # uvicorn has armed its keep-alive timer; a pipelined request already buffered is
            # in progress again and gets a fresh deadline.
            self._follow_parser()

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._send_deadline is None:
                self._send_deadline = self.loop.call_later(send_timeout_s, self._abort_stalled_reader)

        def resume_writing(self) -> None:
            super().resume_writing()
            if self._send_deadline is not None:
                self._send_deadline.cancel()
                self._send_deadline = None

        def connection_lost(self, exc: Exception | None) -> None:
            self._enter(None, 0.0)
            if self._send_deadline is not None:
                self._send_deadline.cancel()
                self._send_deadline = None
            super().connection_lost(exc)

        def _follow_parser(self) -> None:
            state = self.conn.their_state
            if state is h11.IDLE:
                if self.conn.trailing_data[0] or self._phase == "head":
                    # a head has begun (or the connection is fresh): the header deadline, not the
                    # keep-alive timer, bounds it, so a slow head gets its 408
                    self._unset_keepalive_if_required()
                    self._enter("head", header_timeout_s)
                elif self.timeout_keep_alive_task is None:
                    # idle with no keep-alive timer: after an answer sent before the body was
                    # read, uvicorn cancels its timer on the body's bytes and never re-arms it
                    self._enter("idle", float(self.timeout_keep_alive))
                else:
                    self._enter(None, 0.0)
            elif state is h11.SEND_BODY:
                self._enter("body", body_timeout_s)
            else:  # the request is read (or the connection is done): the handler has it
                self._enter(None, 0.0)

        def _enter(self, phase: str | None, timeout_s: float) -> None:
            if phase == self._phase:
                return  # the same phase keeps its deadline: a drip of bytes does not extend it
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            self._phase = phase
            if phase is not None:
                self._deadline = self.loop.call_later(timeout_s, self._expire, phase)

        def _expire(self, phase: str) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            logger.debug("closing a connection whose request %s was not read in time", phase)
            if self.transport.get_write_buffer_size():
                self.transport.abort()  # the client is not reading either: do not wait to flush
                return
            if phase == "head":
                self.transport.write(_REQUEST_TIMEOUT_RESPONSE)
            self.transport.close()

        def _abort_stalled_reader(self) -> None:
            self._send_deadline = None
            if not self.transport.is_closing() or self.transport.get_write_buffer_size():
                logger.debug("aborting a connection whose client stopped reading its answers")
                self.transport.abort()

    return BoundedH11Protocol


# ------------------------------------------------------------------- transformers.Trainer
class TrainerHooks:
    """Mix into a ``transformers.Trainer`` subclass (before ``Trainer`` in the bases). Each private
    Trainer method the library must change calls a public-named method; the ``trainer_*`` methods
    run the Trainer's own implementation, so an override can add to it."""

    # Trainer._save(output_dir, state_dict): writes one model folder (save_model, every checkpoint).
    def _save(self, output_dir: str | None = None, state_dict=None):
        return self.write_model_folder(output_dir or self.args.output_dir, state_dict)

    def write_model_folder(self, output_dir: str, state_dict=None):
        return self.trainer_write_model_folder(output_dir, state_dict)

    def trainer_write_model_folder(self, output_dir: str, state_dict=None):
        return super()._save(output_dir, state_dict)

    # Trainer._load_from_checkpoint(folder, model): the weights of a checkpoint to resume from.
    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        return self.load_checkpoint_weights(resume_from_checkpoint, model)

    def load_checkpoint_weights(self, folder: str, model=None):
        return self.trainer_load_checkpoint_weights(folder, model)

    def trainer_load_checkpoint_weights(self, folder: str, model=None):
        return super()._load_from_checkpoint(folder, model)

    # Trainer._load_best_model(): load_best_model_at_end, from state.best_model_checkpoint.
    def _load_best_model(self):
        return self.load_best_model()

    def load_best_model(self):
        return self.trainer_load_best_model()

    def trainer_load_best_model(self):
        return super()._load_best_model()

    # Trainer._get_train_sampler / _get_eval_sampler: the order rows are read in.
    def _get_train_sampler(self, train_dataset=None):
        return self.train_sampler(train_dataset)

    def train_sampler(self, train_dataset=None):
        return self.trainer_train_sampler(train_dataset)

    def trainer_train_sampler(self, train_dataset=None):
        return super()._get_train_sampler(train_dataset)

    def _get_eval_sampler(self, eval_dataset):
        return self.eval_sampler(eval_dataset)

    def eval_sampler(self, eval_dataset):
        return self.trainer_eval_sampler(eval_dataset)

    def trainer_eval_sampler(self, eval_dataset):
        return super()._get_eval_sampler(eval_dataset)

    def mark_scheduler_created(self) -> None:
        """What ``Trainer.create_scheduler`` records after building ``self.lr_scheduler``, for an
        override that builds its own (the Trainer then steps it, and does not build another)."""
        self._created_lr_scheduler = True

    def inputs_on_device(self, inputs: dict) -> dict:
        """``Trainer._prepare_inputs``: a batch moved to the device (what ``prediction_step`` gets raw)."""
        return self._prepare_inputs(inputs)


# -------------------------------------------------------------------------- torch, accelerate
def fsdp_lazy_init(module) -> None:
    """Run FSDP2's lazy initialisation of a ``fully_shard``-ed ``module`` now (see the module docstring)."""
    module._get_fsdp_state()._lazy_init()


@contextlib.contextmanager
def fresh_accelerator_state():
    """Reset accelerate's process-wide state on the way in and restore the one found on the way out,
    so objects built before the block (e.g. the caller's own Trainer) keep working after it."""
    from accelerate.state import AcceleratorState

    earlier = dict(AcceleratorState._shared_state)
    AcceleratorState._reset_state()
    try:
        yield
    finally:
        AcceleratorState._reset_state()
        AcceleratorState._shared_state.update(earlier)


def tensor_version(tensor) -> int:
    """The in-place version counter of ``tensor`` (bumped by every in-place change)."""
    return tensor._version
