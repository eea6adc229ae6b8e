"""Dynamic micro-batching: concurrent requests become one batched ``recommend_dense`` call.

Requests wait in one queue. A single worker task takes the oldest request, then keeps taking
requests for up to ``max_wait_ms`` or until ``max_batch_size`` histories are gathered, and runs
the model once for them in a worker thread (so the event loop keeps accepting and answering).
Requests asking for different ``k`` run as separate calls inside the batch: a semantic-ID model's
beam width follows ``k``, and a shared call would change the answers of the smaller-``k`` callers.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..utils.errors import InputError


class QueueFullError(RuntimeError):
    """The queue holds ``max_queue`` histories already: answer 503 now instead of queueing."""


@dataclass
class Pending:
    """One queued request: dense histories, how many items each wants, whether its history items
    are left out of the ranking (None: the model's default), and where the answer goes."""

    histories: list[list[int]]
    k: int
    future: asyncio.Future
    exclude_history: bool | None = None
    timestamps: list[list[float]] | None = None
    enqueued: float = field(default_factory=time.perf_counter)


# (histories, k, exclude_history, timestamps) -> (item_ids [B][k], scores [B][k]); -1 ids mark "no
# item" and are dropped by the caller.
RecommendFn = Callable[
    [list[list[int]], int, bool | None, list[list[float]] | None], tuple[list[list[int]], list[list[float]]]
]


class MicroBatcher:
    """Gathers :class:`Pending` requests into batches for ``recommend_fn``.

    Args:
        recommend_fn: runs the model (in the batcher's one worker thread; torch is not re-entrant
            on one model, and one thread keeps batches whole).
        max_batch_size: histories per model call (a single larger request still runs, alone).
        max_wait_ms: how long the first request of a batch waits for company.
        max_queue: histories allowed to wait; beyond, :meth:`submit` raises :class:`QueueFullError`.
        on_batch: called with each model call's batch size (for metrics).
    """

    def __init__(
        self,
        recommend_fn: RecommendFn,
        max_batch_size: int = 64,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        on_batch: Callable[[int], None] | None = None,
    ):
        if max_batch_size < 1 or max_queue < 1 or max_wait_ms < 0:
            raise InputError("max_batch_size and max_queue must be >= 1 and max_wait_ms >= 0")
        self.recommend_fn = recommend_fn
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._queue: deque[Pending] = deque()
        self._depth = 0
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genrec-model")
        self._closing = False

    @property
    def depth(self) -> int:
        """Histories waiting (not yet handed to the model)."""
        return self._depth

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def submit(
        self,
        histories: list[list[int]],
        k: int,
        exclude_history: bool | None = None,
        timestamps: list[list[float]] | None = None,
    ) -> asyncio.Future:
        """Queue a request; the returned future resolves to ``(item_ids, scores)`` per history."""
        if self._closing:
            raise QueueFullError("the server is shutting down")
        if self._depth + len(histories) > self.max_queue:
            raise QueueFullError(f"the request queue is full ({self._depth} of {self.max_queue} histories waiting)")
        pending = Pending(histories, k, asyncio.get_running_loop().create_future(), exclude_history, timestamps)
        self._queue.append(pending)
        self._depth += len(histories)
        self._wakeup.set()
        return pending.future

    async def drain_and_stop(self) -> None:
        """Refuse new requests, answer everything queued, then stop the worker."""
        self._closing = True
        while self._queue:
            self._wakeup.set()
            await asyncio.sleep(0.01)
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    def _take(self) -> Pending:
        pending = self._queue.popleft()
        self._depth -= len(pending.histories)
        return pending

    async def _gather(self) -> list[Pending]:
        """The next batch: the oldest live request plus whatever arrives within ``max_wait``."""
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            first = self._take()
            if not first.future.done():  # done = the caller timed out or went away
                break
        batch, size = [first], len(first.histories)
        deadline = time.perf_counter() + self.max_wait
        while size < self.max_batch_size:
            if not self._queue:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
                continue
            if size + len(self._queue[0].histories) > self.max_batch_size:
                break
            nxt = self._take()
            if not nxt.future.done():
                batch.append(nxt)
                size += len(nxt.histories)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            # One model call per (k, exclusion, with timestamps) combination in the batch.
            by_k: dict[tuple[int, bool | None, bool], list[Pending]] = {}
            for p in batch:
                by_k.setdefault((p.k, p.exclude_history, p.timestamps is not None), []).append(p)
            if self.on_batch is not None:
                self.on_batch(sum(len(p.histories) for p in batch))
            for (k, exclude, timed), group in by_k.items():
                histories = [h for p in group for h in p.histories]
                times = [t for p in group for t in p.timestamps] if timed else None
                try:
                    ids, scores = await loop.run_in_executor(self._executor, self.recommend_fn, histories, k, exclude, times)
                except Exception as err:  # a model error fails this batch only; the server keeps serving
                    for p in group:
                        if not p.future.done():
                            p.future.set_exception(err)
                    continue
                start = 0
                for p in group:
                    n = len(p.histories)
                    if not p.future.done():
                        p.future.set_result((ids[start : start + n], scores[start : start + n]))
                    start += n
