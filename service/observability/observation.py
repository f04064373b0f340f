"""One observation layer for every protocol: a request's metrics, its server span and its access-log line.

Each protocol adapter says where a request starts and how it ended (its canonical status code, the gRPC code
names for every protocol, so one dashboard query covers gRPC, KServe v2 and REST); this module turns that into
the same three records, so a dashboard, a trace and a log line never disagree about what a request got.
The gRPC side applies it once per method (grpc_api/rpc_observer.py), the REST side once per route.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Callable, Iterator

from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, NoOpTracer, Span, SpanKind, StatusCode, Tracer

from service.observability.metrics import UNKNOWN_MODEL, ServingMetrics

access_log = logging.getLogger("service.access")


class RequestObserver:
    """Starts an `Observation` per request; metric children are built once per label set, so a request costs
    dictionary lookups, not label resolution."""

    def __init__(
        self,
        metrics: ServingMetrics,
        tracer: Tracer,
        *,
        is_served: Callable[[str], bool],
        access_log_enabled: bool = False,
    ) -> None:
        self._metrics = metrics
        self._tracer = tracer
        self.tracing = not isinstance(tracer, NoOpTracer)
        self._is_served = is_served
        self.access_log_enabled = access_log_enabled
        # The server's own warm-up requests are looked for only while it sends them (see expecting_warmup).
        self.expect_warmup = False
        self._latencies: dict[tuple[str, str], Any] = {}
        self._counters: dict[tuple[str, str, str], Any] = {}

    @contextlib.contextmanager
    def expecting_warmup(self) -> Iterator[None]:
        """While the server sends itself warm-up requests: leave those out of metrics, traces and logs."""
        self.expect_warmup = True
        try:
            yield
        finally:
            self.expect_warmup = False

    def model_label(self, name: str | None) -> str:
        """The model label of a request: "" for none, UNKNOWN_MODEL for a name this server does not serve
        (clients choose names, and each distinct label value would be a new time series)."""
        if name is None:
            return ""
        return name if self._is_served(name) else UNKNOWN_MODEL

    def begin(
        self,
        *,
        model: str,
        method: str,
        span_name: str,
        parent: Context | None = None,
        attributes: dict[str, Any] | None = None,
        traced: bool = True,
    ) -> Observation:
        """Start timing the request and open its server span (when tracing, and `traced`). In-flight inference
        requests are counted where they hold a model version (ModelManager.in_flight_requests), not here."""
        span_scope = None
        if traced and self.tracing:
            span_scope = self._tracer.start_as_current_span(
                span_name, context=parent, kind=SpanKind.SERVER, attributes=attributes,
                record_exception=False, set_status_on_exception=False,
            )
        return Observation(self, model, method, span_name, span_scope, log=traced and self.access_log_enabled)

    def _request_latency(self, model: str, method: str) -> Any:
        """The latency histogram child for this model and method."""
        latency = self._latencies.get((model, method))
        if latency is None:
            latency = self._metrics.request_seconds.labels(model=model, method=method)
            self._latencies[(model, method)] = latency
        return latency

    def _request_counter(self, model: str, method: str, code: str) -> Any:
        counter = self._counters.get((model, method, code))
        if counter is None:
            counter = self._counters[(model, method, code)] = self._metrics.requests.labels(
                model=model, method=method, code=code
            )
        return counter


class Observation:
    """One request being observed; `finish` records its outcome once."""

    __slots__ = ("_observer", "_model", "_method", "_span_name", "_span_scope", "span", "_log", "_started",
                 "_request_seconds")

    def __init__(
        self, observer: RequestObserver, model: str, method: str, span_name: str, span_scope: Any, *, log: bool
    ) -> None:
        self._observer = observer
        self._model = model
        self._method = method
        self._span_name = span_name
        self._log = log
        self._started = time.perf_counter()
        self._request_seconds = observer._request_latency(model, method)
        self._span_scope = span_scope
        self.span: Span = span_scope.__enter__() if span_scope is not None else INVALID_SPAN

    def finish(
        self,
        code: str,
        *,
        server_error: bool = False,
        detail: str = "",
        span_attributes: dict[str, Any] | None = None,
        log_extra: dict[str, Any] | None = None,
    ) -> None:
        """Record the outcome: `code` is the canonical status name (OK, INVALID_ARGUMENT, ...); a
        `server_error` marks the span as failed, as OpenTelemetry's conventions ask for the server's faults."""
        seconds = time.perf_counter() - self._started
        self._observer._request_counter(self._model, self._method, code).inc()
        self._request_seconds.observe(seconds)
        if self._log:  # while the span is current: the line carries its trace and span ids
            access_log.info(
                "%s %s %.1f ms", self._span_name, code, seconds * 1e3,
                extra={"rpc": self._span_name, "model": self._model, "code": code,
                       "duration_ms": round(seconds * 1e3, 3), **(log_extra or {})},
            )
        if self._span_scope is not None:
            if span_attributes:
                self.span.set_attributes(span_attributes)
            if server_error:
                self.span.set_status(StatusCode.ERROR, detail or code)
            self._span_scope.__exit__(None, None, None)
