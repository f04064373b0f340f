"""Prometheus metrics: batcher events, RPC outcomes and model state; the batcher itself imports no Prometheus.

Each server owns its registry, so several servers in one process (tests) never share counters. The
exposition is one function (`ServingMetrics.exposition`); the REST server (service/adapters/rest_api) mounts it at
METRICS_PATHS on `--rest_api_port`.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from batching import BatchInfo, BatchListener

from service.models.model_manager import ModelManager
from service.models.served_version import BACKLOG_STAGES, VersionState
from service.observability.warmup_marker import is_warmup_batch

_log = logging.getLogger(__name__)

# The paths Prometheus scrapes: the conventional one and TF Serving's (so existing scrape configs work).
METRICS_PATHS = ("/metrics", "/monitoring/prometheus/metrics")

# 0.5 ms … 10 s in 1-2.5-5 steps: resolves a GPU batch (milliseconds) and a loaded CPU queue (seconds).
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)

# Label value for an RPC that names a model this server does not serve: clients choose model names, and
# each distinct label value is a new time series, so unknown names must not reach the label.
UNKNOWN_MODEL = "_unknown"

# BatchListener.on_rejected's reasons.
REJECTION_REASONS = (
    "queue_full", "deadline", "deadline_unmeetable", "deadline_unmeetable_at_batch", "cancelled", "closed",
)


def _batch_size_buckets(max_batch_size: int) -> tuple[float, ...]:
    buckets, size = [], 1
    while size < max_batch_size:
        buckets.append(float(size))
        size *= 2
    buckets.append(float(max_batch_size))
    return tuple(buckets)


class ServingMetrics:
    def __init__(self, max_batch_size: int) -> None:
        # `*_created` timestamps double the series count and serve no dashboard (process-wide switch).
        disable_created_metrics()
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
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
            ["model"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.compute = Histogram(
            "inference_compute_seconds", "Model execution time per batch",
            ["model"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.rejected = Counter(
            "inference_rejected_total", "Images refused or dropped before computing",
            ["model", "reason"], registry=self.registry,
        )
        self.batch_errors = Counter(
            "inference_batch_errors_total", "Batches whose model call raised", ["model"], registry=self.registry,
        )
        self.requests = Counter(
            "inference_requests_total", "Requests answered (gRPC and REST), by model, method and canonical status code",
            ["model", "method", "code"], registry=self.registry,
        )
        self.request_seconds = Histogram(
            "inference_request_seconds", "Time from receiving a request to answering it (any status code)",
            ["model", "method"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.late_items = Counter(
            "inference_late_items_total",
            "Images computed whose request's deadline passed before their batch returned (work done for nobody)",
            ["model"], registry=self.registry,
        )
        self.batch_timeouts = Counter(
            "inference_batch_timeouts_total", "Batches failed for running past --batch_execution_timeout_seconds",
            ["model"], registry=self.registry,
        )

    def listener_factory(self) -> Callable[[str, int], BatchListener]:
        return lambda model, version: _MetricsListener(self, model)

    def _initialise_series(self, model: str) -> None:
        """Export a model's series at zero from load on, so rate() and alerts see them before traffic."""
        for histogram in (self.batch_size, self.padded_batch_size, self.queue_wait, self.compute):
            histogram.labels(model=model)
        for reason in REJECTION_REASONS:
            self.rejected.labels(model=model, reason=reason)
        self.batch_errors.labels(model=model)
        self.late_items.labels(model=model)
        self.batch_timeouts.labels(model=model)

    def watch_models(self, models: ModelManager) -> None:
        """Backlog, in-flight requests and model state are read from the manager at scrape time: exact, not
        sampled."""
        self.registry.register(_ModelStateCollector(models))

    def exposition(self) -> tuple[bytes, str]:
        """The scrape body and its Content-Type, for whichever HTTP server serves METRICS_PATHS."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

class _ModelStateCollector(Collector):
    """Per model: the backlog by stage (decoding + queued is the autoscaling signal), the inference requests in
    flight, readiness, the version served by default, and whether a served version has seeded random weights
    (meaningless labels: something to alert on).

    Runs in the scrape thread; it only reads ints and enums the event loop writes, and copies the
    manager's collections before iterating.
    """

    def __init__(self, models: ModelManager) -> None:
        self._models = models

    def collect(self) -> Iterator[GaugeMetricFamily]:
        backlog = GaugeMetricFamily(
            "inference_backlog",
            "Items (images or rows) admitted and not yet answered, per model and stage: "
            + ", ".join(BACKLOG_STAGES),
            labels=["model", "stage"],
        )
        depth = GaugeMetricFamily(
            "inference_queue_depth",
            'Alias of inference_backlog{stage="queued"} (items waiting for a batch), kept for existing dashboards; '
            "use inference_backlog",
            labels=["model"],
        )
        in_flight = GaugeMetricFamily(
            "inference_inflight_requests",
            "Inference requests holding a model version (picked it, not yet answered): what "
            "--max_inflight_requests limits, over all models",
            labels=["model"],
        )
        max_batch = GaugeMetricFamily(
            "inference_max_batch_size", "Largest batch the served version runs (measured with --max_batch_size=auto)",
            labels=["model"],
        )
        curve = GaugeMetricFamily(
            "inference_batch_size_throughput",
            "Items per second measured at each batch size while the version warmed up (--max_batch_size=auto)",
            labels=["model", "batch_size"],
        )
        ready = GaugeMetricFamily(
            "inference_model_ready", "1 when a version of the model is AVAILABLE to serve requests, else 0",
            labels=["model"],
        )
        version = GaugeMetricFamily(
            "inference_model_loaded_version", "Version served when a request names none (0: none loaded)",
            labels=["model"],
        )
        random_weights = GaugeMetricFamily(
            "inference_model_random_weights",
            "1 while an AVAILABLE version of the model has seeded random weights (export_metadata.json "
            "\"weights\": \"random\"), so its predictions are meaningless; else 0",
            labels=["model"],
        )
        for name in list(self._models.model_names):
            versions = list(self._models.versions(name))
            available = [v.version for v in versions if v.state is VersionState.AVAILABLE]
            stages = dict.fromkeys(BACKLOG_STAGES, 0)
            for served in versions:
                if served.state in (VersionState.AVAILABLE, VersionState.UNLOADING):
                    for stage, items in served.backlog().items():
                        stages[stage] += items
            for stage, items in stages.items():
                backlog.add_metric([name, stage], float(items))
            depth.add_metric([name], float(stages["queued"]))
            in_flight.add_metric([name], float(self._models.in_flight_requests_of(name)))
            ready.add_metric([name], 1.0 if available else 0.0)
            latest = max((v for v in versions if v.state is VersionState.AVAILABLE), key=lambda v: v.version,
                         default=None)
            if latest is not None and latest.batching is not None:
                max_batch.add_metric([name], float(latest.batching.max_batch_size))
                if latest.batch_size_choice is not None:
                    for point in latest.batch_size_choice.curve:
                        curve.add_metric([name, str(point.batch_size)], point.items_per_second)
            version.add_metric([name], float(max(available, default=0)))
            random_weights.add_metric([name], 1.0 if any(
                v.seeded_weights for v in versions if v.state is VersionState.AVAILABLE) else 0.0)
        yield from (backlog, depth, in_flight, ready, version, random_weights, max_batch, curve)


class _MetricsListener(BatchListener):
    """Label children are resolved once: `labels()` per observation would cost more than the observation."""

    def __init__(self, metrics: ServingMetrics, model: str) -> None:
        self._metrics = metrics
        self._model = model
        metrics._initialise_series(model)
        self._batch_size = metrics.batch_size.labels(model=model)
        self._padded_batch_size = metrics.padded_batch_size.labels(model=model)
        self._queue_wait = metrics.queue_wait.labels(model=model)
        self._compute = metrics.compute.labels(model=model)
        self._batch_errors = metrics.batch_errors.labels(model=model)
        self._late_items = metrics.late_items.labels(model=model)

    def on_rejected(self, count: int, reason: str) -> None:
        self._metrics.rejected.labels(model=self._model, reason=reason).inc(count)

    def on_batch_started(self, batch: BatchInfo) -> None:
        if is_warmup_batch(batch):  # the server's own warm-up request (observability/warmup_marker.py)
            return
        self._batch_size.observe(batch.size)
        self._padded_batch_size.observe(batch.padded_size)
        for wait in batch.queue_waits:
            self._queue_wait.observe(wait)

    def on_batch_timed_out(self, batch: BatchInfo, seconds: float) -> None:
        self._metrics.batch_timeouts.labels(model=self._model).inc()

    def on_batch_finished(self, batch: BatchInfo, seconds: float, error: BaseException | None) -> None:
        if is_warmup_batch(batch):
            return
        self._compute.observe(seconds)
        if error is not None:
            self._batch_errors.inc()

    def on_finished_late(self, batch: BatchInfo, count: int) -> None:
        if not is_warmup_batch(batch):
            self._late_items.inc(count)
