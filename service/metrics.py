"""Prometheus metrics fed by batcher events; the batcher itself imports no Prometheus.

Each server owns its registry, so several servers in one process (tests) never share counters.
"""

from __future__ import annotations

import logging
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client import generate_latest

from batching import Batcher, BatchInfo, BatchListener

_log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _batch_size_buckets(max_batch_size: int) -> tuple[float, ...]:
    buckets, size = [], 1
    while size < max_batch_size:
        buckets.append(float(size))
        size *= 2
    buckets.append(float(max_batch_size))
    return tuple(buckets)


class ServingMetrics:
    def __init__(self, max_batch_size: int) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.queue_depth = Gauge(
            "inference_queue_depth", "Images waiting for a batch, per model (autoscaling signal)",
            ["model"], registry=self.registry,
        )
        self.batch_size = Histogram(
            "inference_batch_size", "Images per executed batch (before padding)",
            ["model"], buckets=_batch_size_buckets(max_batch_size), registry=self.registry,
        )
        self.padded_batch_size = Histogram(
            "inference_padded_batch_size", "Rows per executed batch after padding to allowed sizes",
            ["model"], buckets=_batch_size_buckets(max_batch_size), registry=self.registry,
        )
        self.queue_wait = Histogram(
            "inference_queue_wait_seconds", "Time an image waited in the queue before its batch started",
            ["model"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.compute = Histogram(
            "inference_compute_seconds", "Model execution time per batch",
            ["model"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.rejected = Counter(
            "inference_rejected_total", "Images refused or dropped before computing",
            ["model", "reason"], registry=self.registry,
        )
        self.batch_errors = Counter(
            "inference_batch_errors_total", "Batches whose model call raised", ["model"], registry=self.registry,
        )

    def listener_factory(self) -> Callable[[str, int], BatchListener]:
        return lambda model, version: _MetricsListener(self, model)

    def watch_queue(self, model: str, batcher: Batcher) -> None:
        """Read the depth at scrape time, so the gauge is exact, not a sample."""
        self.queue_depth.labels(model=model).set_function(lambda: batcher.queue_depth)

    def exposition(self) -> tuple[bytes, str]:
        """The registry in Prometheus' text format and its content type, for the REST server's /metrics."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _MetricsListener(BatchListener):
    """Label children are resolved once: `labels()` per observation would cost more than the observation."""

    def __init__(self, metrics: ServingMetrics, model: str) -> None:
        self._metrics = metrics
        self._model = model
        self._batch_size = metrics.batch_size.labels(model=model)
        self._padded_batch_size = metrics.padded_batch_size.labels(model=model)
        self._queue_wait = metrics.queue_wait.labels(model=model)
        self._compute = metrics.compute.labels(model=model)
        self._batch_errors = metrics.batch_errors.labels(model=model)

    def on_rejected(self, count: int, reason: str) -> None:
        self._metrics.rejected.labels(model=self._model, reason=reason).inc(count)

    def on_batch_started(self, batch: BatchInfo) -> None:
        self._batch_size.observe(batch.size)
        self._padded_batch_size.observe(batch.padded_size)
        for wait in batch.queue_waits:
            self._queue_wait.observe(wait)
        _log.debug("batch %d started: size=%d padded=%d", batch.batch_id, batch.size, batch.padded_size)

    def on_batch_finished(self, batch: BatchInfo, seconds: float, error: BaseException | None) -> None:
        self._compute.observe(seconds)
        if error is not None:
            self._batch_errors.inc()
