"""Serve any saved recommender over HTTP (``pip install -e ".[serve]"``; ``hf-genrec serve --model PATH``).

FastAPI + uvicorn + prometheus_client: dynamic micro-batching, health/readiness, Prometheus
metrics, back-pressure (503), timeouts (504), graceful shutdown (see :mod:`.app`); bounded
connections: read deadlines, keep-alive timeout and a connection cap (see :mod:`.server`).
"""

from .app import ServingConfig, create_app
from .batcher import MicroBatcher, QueueFullError
from .server import ConnectionLimits, uvicorn_config

__all__ = ["ConnectionLimits", "MicroBatcher", "QueueFullError", "ServingConfig", "create_app", "uvicorn_config"]
