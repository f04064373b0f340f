"""OpenTelemetry tracing, configured by the standard `OTEL_*` environment variables; off without an endpoint.

Trace shape (see docs/observability.md, "Tracing"): each RPC is a SERVER span (continuing the client's W3C trace context);
inside it `decode` and one `queue wait` span per batch its images rode in. Each batch execution is a
`batch <model>` span linked to every sampled request span it served; its parent is the first of them, so a
batch is sampled whenever a request it served is. The batcher knows nothing of this: the data plane submits
each request's span context as the batcher's opaque `context`, and `BatchTracer` reads it back from
`BatchInfo.contexts`.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Callable, Iterable, Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, StatusCode, Tracer

from batching import BatchInfo, BatchListener

_log = logging.getLogger(__name__)

TRACER_NAME = "batchserve"
DEFAULT_SERVICE_NAME = "batchserve"

# Span attributes of our own (RPC ones follow OpenTelemetry's semantic conventions).
ATTR_MODEL_NAME = "inference.model.name"
ATTR_MODEL_VERSION = "inference.model.version"
ATTR_IMAGES = "inference.images"
ATTR_BATCH_ID = "inference.batch.id"
ATTR_BATCH_SIZE = "inference.batch.size"
ATTR_BATCH_PADDED_SIZE = "inference.batch.padded_size"
ATTR_BATCH_REQUESTS = "inference.batch.requests"
ATTR_BATCH_ITEMS = "inference.batch.items"  # on a link / queue-wait span: this request's images in the batch


class Tracing:
    """The server's tracer and what to flush at shutdown; a no-op tracer when tracing is off."""

    def __init__(self, provider: TracerProvider | None, description: str) -> None:
        self.provider = provider
        self.description = description
        self.tracer: Tracer = provider.get_tracer(TRACER_NAME) if provider else trace.NoOpTracer()

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def listener_factory(self) -> Callable[[str, int], BatchListener]:
        return lambda model, version: BatchTracer(self.tracer, model, version)

    def shutdown(self) -> None:
        """Export what is buffered (blocking: call it off the event loop)."""
        if self.provider is not None:
            self.provider.shutdown()


def configure_tracing(environ: Mapping[str, str] | None = None) -> Tracing:
    """An OTLP/gRPC-exporting tracer when `OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT` is set, else tracing off.

    Everything else comes from the SDK's own `OTEL_*` handling: sampler (`OTEL_TRACES_SAMPLER`,
    `OTEL_TRACES_SAMPLER_ARG`; default parentbased_always_on), resource (`OTEL_SERVICE_NAME`,
    `OTEL_RESOURCE_ATTRIBUTES`), exporter headers/timeout/TLS, batch processor (`OTEL_BSP_*`).
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return Tracing(None, "off (OTEL_SDK_DISABLED=true)")
    exporter_name = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if exporter_name == "none":
        return Tracing(None, "off (OTEL_TRACES_EXPORTER=none)")
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return Tracing(None, "off (no OTEL_EXPORTER_OTLP_ENDPOINT)")
    if exporter_name != "otlp":
        _log.warning("OTEL_TRACES_EXPORTER=%s is not supported; exporting with otlp", exporter_name)
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    if protocol != "grpc":
        _log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported; exporting with OTLP over gRPC", protocol)

    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # reads OTEL_TRACES_SAMPLER(_ARG) itself
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    sampler = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on")
    return Tracing(provider, f"OTLP/gRPC to {endpoint}, sampler {sampler}")


def extract_context(metadata: Iterable[tuple[str, str | bytes]] | None) -> Context:
    """The caller's trace context (W3C `traceparent`/`tracestate` by default) from gRPC metadata."""
    carrier = {key: value for key, value in metadata or () if isinstance(value, str)}
    return propagate.extract(carrier)


def current_span_context() -> SpanContext:
    """What the data plane hands the batcher as the item's opaque context."""
    return trace.get_current_span().get_span_context()


class BatchTracer(BatchListener):
    """One span per executed batch, linked to the request spans it served; a `queue wait` span per request."""

    def __init__(self, tracer: Tracer, model: str, version: int) -> None:
        self._tracer = tracer
        self._model = model
        self._version = version
        self._spans: dict[int, Span] = {}

    def on_batch_started(self, batch: BatchInfo) -> None:
        # SpanContext is not hashable (its TraceState is not): key requests by their span's ids.
        requests: dict[tuple[int, int], SpanContext] = {}
        waits_by_request: dict[tuple[int, int], list[float]] = {}
        for context, wait in zip(batch.contexts, batch.queue_waits):
            if isinstance(context, SpanContext) and context.is_valid and context.trace_flags.sampled:
                key = (context.trace_id, context.span_id)
                requests[key] = context
                waits_by_request.setdefault(key, []).append(wait)
        if not requests:
            return  # no sampled request rode in this batch: nothing would show it
        now = time.time_ns()
        first_request = next(iter(requests.values()))
        span = self._tracer.start_span(
            f"batch {self._model}",
            context=trace.set_span_in_context(NonRecordingSpan(first_request)),
            kind=SpanKind.INTERNAL,
            start_time=now,
            links=[Link(requests[key], {ATTR_BATCH_ITEMS: len(waits)}) for key, waits in waits_by_request.items()],
            attributes={
                ATTR_MODEL_NAME: self._model,
                ATTR_MODEL_VERSION: self._version,
                ATTR_BATCH_ID: batch.batch_id,
                ATTR_BATCH_SIZE: batch.size,
                ATTR_BATCH_PADDED_SIZE: batch.padded_size,
                ATTR_BATCH_REQUESTS: len({_request_key(context) for context in batch.contexts}),
            },
        )
        self._spans[batch.batch_id] = span
        to_batch = [Link(span.get_span_context())]
        for key, waits in waits_by_request.items():
            wait_span = self._tracer.start_span(
                "queue wait",
                context=trace.set_span_in_context(NonRecordingSpan(requests[key])),
                start_time=now - int(max(waits) * 1e9),
                links=to_batch,
                attributes={ATTR_BATCH_ID: batch.batch_id, ATTR_BATCH_ITEMS: len(waits)},
            )
            wait_span.end(end_time=now)

    def on_batch_finished(self, batch: BatchInfo, seconds: float, error: BaseException | None) -> None:
        span = self._spans.pop(batch.batch_id, None)
        if span is None:
            return
        if error is not None:
            span.record_exception(error)
            span.set_status(StatusCode.ERROR, f"{type(error).__name__}: {error}")
        span.end()


def _request_key(context: object) -> object:
    if isinstance(context, SpanContext):
        return (context.trace_id, context.span_id)
    return id(context)
