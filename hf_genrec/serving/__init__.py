"""Serve any saved recommender over HTTP (``pip install -e ".[serve]"``; ``hf-genrec-serve --model PATH``).

FastAPI + uvicorn + prometheus_client: dynamic micro-batching, health/readiness, Prometheus
metrics, back-pressure (503), timeouts (504), graceful shutdown. See :mod:`.app`.
"""

from .app import ServingConfig, create_app
from .batcher import MicroBatcher, QueueFullError

__all__ = ["MicroBatcher", "QueueFullError", "ServingConfig", "create_app"]
