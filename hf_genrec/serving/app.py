"""The HTTP service: FastAPI app over any saved recommender (every family implements ``recommend_dense``).

Endpoints:
- ``POST /v1/recommend``: ``{"history": [ids], "k": 10}`` -> ``{"items": [...], "scores": [...]}``, or
  ``{"histories": [[ids], ...], "k": 10}`` -> ``{"results": [{"items", "scores"}, ...]}``; item ids
  are the user's own (as in the training data). ``"unknown_items": "drop"`` skips unknown ids
  (default ``"error"``: 422 naming them).
- ``GET /health``: the process is up. ``GET /ready``: the model is loaded and warmed up (else 503).
- ``GET /metrics``: Prometheus text.

Bad input never reaches the model: it is answered 400 (malformed JSON; NaN / Infinity; an integer
of more than ``MAX_ID_DIGITS`` digits; nesting deeper than ``MAX_JSON_DEPTH``), 413 (body too large)
or 422 (wrong types, empty history, ``k`` out of range, unknown ids, timestamps sent to a model
without time features). A model with integer item ids takes them as JSON integers or as strings in
canonical ASCII form (``"105"``, ``"-3"``; never ``"0105"``, ``"１０５"`` or ``"²"``, which are unknown
ids). A full queue answers 503 with
``Retry-After`` at once; a request still unanswered after ``timeout_ms`` gets 504; a model error
gets 500 and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr, ValidationError
from starlette.requests import ClientDisconnect

from ..utils import ItemIdMap
from .batcher import MicroBatcher, QueueFullError
from .metrics import ServingMetrics

logger = logging.getLogger(__name__)

ItemId = StrictInt | StrictStr
#: the longest integer (in digits) a request may hold, and the deepest JSON nesting it may have
MAX_ID_DIGITS = 30
MAX_JSON_DEPTH = 32


@dataclass
class ServingConfig:
    """Limits of one server process (the ``hf-genrec serve`` flags)."""

    max_batch_size: int = 64
    max_wait_ms: float = 5.0
    max_queue: int = 1024
    timeout_ms: float = 2000.0
    max_k: int = 100
    max_history_items: int = 1000
    max_histories_per_request: int = 256
    #: history items one request makes the model read (each history counts up to the model's
    #: ``max_history``): bounds the work a single request holds the model worker for
    max_request_items: int = 4096
    max_body_bytes: int = 1 << 20
    retry_after_s: int = 1


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    history: list[ItemId] | None = None
    histories: list[list[ItemId]] | None = None
    k: StrictInt = 10
    unknown_items: Literal["error", "drop"] = "error"
    #: leave the history's items out of the answer; None = the model's saved default
    exclude_history: StrictBool | None = None
    #: seconds of each history item, for a model with time features ("timestamps" with "history")
    timestamps: list[float] | None = None
    histories_timestamps: list[list[float]] | None = None


class BadRequest(ValueError):
    """A request the model must not see; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


#: an integer item id written as a string: ASCII digits in canonical form (no leading zeros, one
#: optional sign), so no Unicode digit, lookalike or "0105" ever names item 105
_INTEGER_ID = re.compile(rf"[+-]?(?:0|[1-9][0-9]{{0,{MAX_ID_DIGITS - 1}}})", re.ASCII)


def coerce_ids(item_map: ItemIdMap, history: list) -> list:
    """JSON has ints and strings; a map of string ids also accepts ``5`` for ``"5"``, and a map of
    integer ids ``"5"`` for ``5`` (only a canonical ASCII integer; anything else stays a string and is
    an unknown id)."""
    sample = item_map.original_ids[0] if item_map.num_items else None
    if isinstance(sample, str):
        return [str(i) for i in history]
    if isinstance(sample, int):
        return [int(i) if isinstance(i, str) and _INTEGER_ID.fullmatch(i) else i for i in history]
    return history


class _JSONLimit(ValueError):
    pass


def _refuse_constant(name: str):
    raise _JSONLimit(f"{name} is not a JSON number (NaN and Infinity are refused)")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_ID_DIGITS:
        raise _JSONLimit(f"a JSON integer has more than {MAX_ID_DIGITS} digits (the limit)")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _JSONLimit(f"the number {text[:40]} is out of range")
    return value


def _json_depth(body: bytes) -> int:
    """The deepest nesting of arrays / objects in a JSON text (strings skipped)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return 0  # cannot be deeper than the limit: skip the scan
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub(b"", body)):
        depth += 1 if bracket in (b"[", b"{") else -1
        deepest = max(deepest, depth)
    return deepest


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")


def parse_request(body: bytes) -> RecommendRequest:
    """The request body as a :class:`RecommendRequest`; raises :class:`BadRequest` (400 / 422)."""
    if _json_depth(body) > MAX_JSON_DEPTH:
        raise BadRequest(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels (the limit)", status=400)
    try:
        data = json.loads(body, parse_constant=_refuse_constant, parse_int=_bounded_int, parse_float=_finite_float)
    except _JSONLimit as err:
        raise BadRequest(str(err), status=400) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRequest(f"malformed JSON body: {err}", status=400) from None
    except (ValueError, RecursionError) as err:  # e.g. a number the parser cannot hold
        raise BadRequest(f"malformed JSON body: {type(err).__name__}", status=400) from None
    if not isinstance(data, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(data).__name__}")
    try:
        return RecommendRequest.model_validate(data)
    except ValidationError as err:
        problems = {}
        for p in err.errors():
            loc = [str(x) for x in p["loc"]]
            if loc and loc[-1] in ("int", "str") and len(loc) > 1:  # one item id failed both types of the union
                problems[".".join(loc[:-1])] = "an item id must be an integer or a string"
            else:
                problems[".".join(loc) or "body"] = p["msg"]
        raise BadRequest("; ".join(f"{where}: {msg}" for where, msg in problems.items())) from None


def validate(
    req: RecommendRequest,
    item_map: ItemIdMap,
    cfg: ServingConfig,
    model_max_history: int | None = None,
    needs_timestamps: bool = False,
) -> tuple[list[list[int]], bool, int, list[list[float]] | None]:
    """Dense histories of a request, whether it used the batch form, k, and the histories' timestamps
    (None without); raises :class:`BadRequest`. ``model_max_history``: the items of a history the
    model reads (the rest only counts for exclusion). ``needs_timestamps``: the model uses time features."""
    if (req.history is None) == (req.histories is None):
        raise BadRequest('give exactly one of "history" (one user) or "histories" (a list of users)')
    batch = req.histories is not None
    histories = req.histories if batch else [req.history]
    given_times = req.histories_timestamps if batch else ([req.timestamps] if req.timestamps is not None else None)
    if (req.timestamps if batch else req.histories_timestamps) is not None:
        raise BadRequest('"timestamps" goes with "history", "histories_timestamps" with "histories"')
    if given_times is not None and not needs_timestamps:
        raise BadRequest("this model has no time features: leave out \"timestamps\" / \"histories_timestamps\"")
    if needs_timestamps and given_times is None:
        raise BadRequest(f'this model uses time features: give "{"histories_timestamps" if batch else "timestamps"}" '
                         "(seconds, one per history item)")
    if given_times is not None and len(given_times) != len(histories):
        raise BadRequest(f"{len(given_times)} timestamp lists for {len(histories)} histories")
    if not histories:
        raise BadRequest('"histories" is empty')
    if len(histories) > cfg.max_histories_per_request:
        raise BadRequest(
            f"at most {cfg.max_histories_per_request} histories per request (max_histories_per_request), got {len(histories)}",
            status=413,
        )
    if not 1 <= req.k <= cfg.max_k:
        raise BadRequest(f"k must be between 1 and {cfg.max_k}, got {req.k}")
    dense, times = [], [] if given_times is not None else None
    for i, history in enumerate(histories):
        where = f"histories[{i}]" if batch else "history"
        if given_times is not None and len(given_times[i]) != len(history):
            raise BadRequest(f"{where}: {len(history)} items but {len(given_times[i])} timestamps")
        if not history:
            raise BadRequest(f"{where} is empty; give at least one item id")
        if len(history) > cfg.max_history_items:
            raise BadRequest(
                f"{where} has {len(history)} items; at most {cfg.max_history_items} are accepted (max_history_items)",
                status=413,
            )
        coerced = coerce_ids(item_map, history)
        ids, unknown = item_map.to_dense_many(coerced, unknown="drop")
        if times is not None:
            times.append([t for t, item in zip(given_times[i], coerced) if item in item_map])
        if unknown and req.unknown_items == "error":
            shown = ", ".join(repr(u) for u in unknown[:20]) + (" ..." if len(unknown) > 20 else "")
            raise BadRequest(f'{where}: unknown item ids {shown} (pass "unknown_items": "drop" to skip them)')
        if not ids:
            raise BadRequest(f"{where} has no item this model knows")
        dense.append(ids)
    read = sum(min(len(h), model_max_history or len(h)) for h in dense)
    if read > cfg.max_request_items:
        raise BadRequest(
            f"the request makes the model read {read} history items; at most {cfg.max_request_items} are accepted "
            "(max_request_items): send fewer histories per request",
            status=413,
        )
    return dense, batch, req.k, times


def model_runner(model) -> callable:
    """``(dense histories, k, exclude_history, timestamps) -> (item ids, scores)`` lists, no gradients,
    on the model's device."""

    def run(histories: list[list[int]], k: int, exclude_history: bool | None = None, timestamps=None):
        extra = {"history_timestamps": timestamps} if timestamps is not None else {}
        with torch.inference_mode():
            out = model.recommend_dense(histories, top_k=k, exclude_history=exclude_history, **extra)
        return out.item_ids.tolist(), out.scores.float().tolist()

    return run


def _answer(item_map: ItemIdMap, ids: list[int], scores: list[float]) -> dict:
    keep = [(i, s) for i, s in zip(ids, scores) if i > 0]
    return {"items": item_map.to_original_many([i for i, _ in keep]), "scores": [s for _, s in keep]}


class RequestMetrics:
    """ASGI middleware counting every answer by endpoint and status, and its latency. Plain ASGI
    rather than ``@app.middleware("http")``, whose per-request task and stream copy cost CPU the
    2-core serving budget has no room for."""

    def __init__(self, app, metrics: ServingMetrics, route_paths: Callable[[], set[str]] = set):
        self.app, self.metrics = app, metrics
        self.route_paths = route_paths  # called per answer: the app's routes exist only after this is built

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") == "/metrics":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # Label by the matched route's template: raw paths would let every random 404 add a series.
            # (A 413 from the body limit never reaches the router: its path is still a known route.)
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or (scope.get("path") if scope.get("path") in self.route_paths() else None)
            endpoint = endpoint or "unmatched"
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 before anything parses it."""

    class _TooLarge(Exception):
        pass

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._reject(send)
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except self._TooLarge:
            await self._reject(send)

    async def _reject(self, send):
        body = f'{{"error": "request body larger than {self.max_bytes} bytes"}}'.encode()
        # The unread rest of the body is still on its way: close the connection after answering
        # rather than read and discard it.
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(model, config: ServingConfig | None = None, warmup: bool = True) -> FastAPI:
    """The service for ``model`` (any recommender family; ``model.item_map`` gives the accepted ids).

    The item map is read per request, so items added with ``model.add_items`` become servable at
    once (known ids never move). The add itself is not synchronised with a batch in flight: add
    between requests, or save the grown model and serve that."""
    cfg = config or ServingConfig()
    metrics = ServingMetrics()
    run = model_runner(model)
    needs_times = "history_timestamps" in getattr(model, "required_inputs", ())  # e.g. HLLM with time features
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher = MicroBatcher(run, cfg.max_batch_size, cfg.max_wait_ms, cfg.max_queue, on_batch=metrics.batch_size.observe)
        batcher.start()
        metrics.queue_depth.set_function(lambda: batcher.depth)
        app.state.batcher = batcher
        if warmup:  # the first call pays for lazy initialisation (trie, kernels); keep it off the first user
            warm_times = [[0.0]] if needs_times else None
            await asyncio.get_running_loop().run_in_executor(None, run, [[1]], min(10, cfg.max_k), None, warm_times)
        state["ready"] = True
        logger.info("model ready: %s, %d items", type(model).__name__, model.item_map.num_items)
        yield
        state["ready"] = False
        await batcher.drain_and_stop()  # uvicorn has stopped accepting; answer what is queued

    app = FastAPI(title="hf_genrec recommendation service", lifespan=lifespan)
    app.add_middleware(BodySizeLimit, max_bytes=cfg.max_body_bytes)
    app.state.metrics = metrics

    def error(status: int, message: str, **headers) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers or None)

    app.add_middleware(RequestMetrics, metrics=metrics, route_paths=lambda: {r.path for r in app.routes})

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        if not state["ready"]:
            return error(503, "model not ready")
        return {"status": "ready", "model": type(model).__name__, "num_items": model.item_map.num_items}

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.post("/v1/recommend")
    async def recommend(request: Request):
        # Parsed here rather than by a typed parameter: the body is JSON whatever the Content-Type a
        # client sends (curl -d says form data), and every mistake gets one readable message.
        try:
            body = await request.body()
        except ClientDisconnect:  # the caller gave up while sending; nobody is left to answer
            return Response(status_code=499)
        try:
            req = parse_request(body)
            dense, batch, k, times = validate(req, model.item_map, cfg, getattr(model.config, "max_history", None), needs_times)
        except BadRequest as bad:
            return error(bad.status, str(bad))
        try:
            future = await request.app.state.batcher.submit(dense, k, req.exclude_history, times)
        except QueueFullError as full:
            return error(503, str(full), **{"Retry-After": str(cfg.retry_after_s)})
        try:
            ids, scores = await asyncio.wait_for(asyncio.shield(future), cfg.timeout_ms / 1000.0)
        except asyncio.TimeoutError:
            future.cancel()  # the batcher skips it if it has not run yet
            return error(504, f"no answer within {cfg.timeout_ms:.0f} ms")
        except Exception:  # the model failed on this batch
            # The exception text stays in the server log (it can hold paths, ids, internals); the
            # client gets an id to quote.
            error_id = uuid.uuid4().hex[:12]
            logger.exception("model error %s", error_id)
            return JSONResponse({"error": "internal error", "error_id": error_id}, status_code=500)
        item_map = model.item_map  # read after the model answered: it knows every id it returned
        answers = [_answer(item_map, i, s) for i, s in zip(ids, scores)]
        return {"results": answers} if batch else answers[0]

    return app
