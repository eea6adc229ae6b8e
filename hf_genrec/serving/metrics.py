"""Prometheus metrics of one server (its own registry, so several apps in one process never clash)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServingMetrics:
    """``genrec_request_latency_seconds`` (histogram by endpoint), ``genrec_batch_size`` (histories
    per model call), ``genrec_queue_depth`` (histories waiting), ``genrec_requests_total`` (by
    endpoint and status code)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "genrec_request_latency_seconds",
            "Time from request to response",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "genrec_batch_size", "Histories per batched model call", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.queue_depth = Gauge("genrec_queue_depth", "Histories waiting for the model", registry=self.registry)
        self.requests = Counter(
            "genrec_requests", "Requests answered, by endpoint and status code", ["endpoint", "status"], registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
