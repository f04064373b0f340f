"""Cross-cutting concerns of every unary RPC, in one place: metrics, the server span, the access log.

The outcome (gRPC status code) is decided once here and fed to all three, so a dashboard, a trace and a
log line never disagree about what a request got. Streaming RPCs (health Watch, reflection) pass through.
Applied as a `routing.MethodRouter` wrapper: each method's handler is wrapped once, not per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Awaitable, Callable, Iterator

import grpc
from opentelemetry.trace import INVALID_SPAN, NoOpTracer, SpanKind, StatusCode, Tracer

from ..metrics import UNKNOWN_MODEL, ServingMetrics
from ..self_warmup import is_warmup_call, mark_warmup, reset_warmup
from ..tracing import extract_context

access_log = logging.getLogger("service.access")

HEALTH_SERVICE = "grpc.health.v1.Health"  # probes: counted, but neither traced nor access-logged

# Server-side span status per OpenTelemetry's gRPC conventions: these codes are the server's fault.
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def requested_model(request: Any) -> str | None:
    """The model an inference request names (TF Serving's `model_spec.name`, KServe's `model_name`)."""
    spec = getattr(request, "model_spec", None)
    if spec is not None:
        return str(spec.name)
    name = getattr(request, "model_name", None)
    return name if isinstance(name, str) else None


def _peer_attributes(peer: str | None) -> dict[str, Any]:
    """`ipv4:127.0.0.1:5555` / `ipv6:[::1]:5555` → network.peer.address / network.peer.port."""
    if not peer or not peer.startswith(("ipv4:", "ipv6:")):
        return {}
    address, _, port = peer.split(":", 1)[1].rpartition(":")
    attributes: dict[str, Any] = {"network.peer.address": address.strip("[]")}
    if port.isdigit():
        attributes["network.peer.port"] = int(port)
    return attributes


class RpcObserver:
    """Wraps each unary RPC handler so its outcome reaches the request metrics, the server span and the
    access log (see `wrap`, applied by `routing.MethodRouter`)."""

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
        self._tracing = not isinstance(tracer, NoOpTracer)
        self._is_served = is_served
        self._access_log = access_log_enabled
        # The server's own warm-up requests are looked for only while it sends them (see expecting_warmup).
        self._expect_warmup = False
        # Metric children are built once per label set, so the per-call cost is a dict lookup.
        self._series: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._counters: dict[tuple[str, str, grpc.StatusCode], Any] = {}

    @contextlib.contextmanager
    def expecting_warmup(self) -> Iterator[None]:
        """While the server sends itself warm-up requests: leave those out of metrics, traces and logs."""
        self._expect_warmup = True
        try:
            yield
        finally:
            self._expect_warmup = False

    def wrap(self, full_method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """A `routing.HandlerWrapper`: unary-unary handlers observed, streaming ones as they are."""
        if handler.unary_unary is None:
            return handler
        service, _, method = full_method.lstrip("/").partition("/")  # "/package.Service/Method"
        observed = self._observe(handler.unary_unary, service, method, observable=service != HEALTH_SERVICE)
        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _request_series(self, model: str, method: str) -> tuple[Any, Any]:
        """(in-flight gauge, latency histogram) children for this model and method."""
        series = self._series.get((model, method))
        if series is None:
            series = self._series[(model, method)] = (
                self._metrics.inflight.labels(model=model),
                self._metrics.request_seconds.labels(model=model, method=method),
            )
        return series

    def _request_counter(self, model: str, method: str, code: grpc.StatusCode) -> Any:
        counter = self._counters.get((model, method, code))
        if counter is None:
            counter = self._counters[(model, method, code)] = self._metrics.requests.labels(
                model=model, method=method, code=code.name
            )
        return counter

    def _model_label(self, request: Any) -> str:
        name = requested_model(request)
        if name is None:
            return ""
        return name if self._is_served(name) else UNKNOWN_MODEL

    def _observe(
        self, behaviour: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]], service: str, method: str,
        *, observable: bool,
    ) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
        span_name = f"{service}/{method}"
        traced = observable and self._tracing

        def server_span(context: grpc.aio.ServicerContext) -> Any:
            return self._tracer.start_as_current_span(
                span_name,
                context=extract_context(context.invocation_metadata()),
                kind=SpanKind.SERVER,
                attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method,
                            **_peer_attributes(context.peer())},
                record_exception=False,
                set_status_on_exception=False,
            )

        async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if self._expect_warmup and is_warmup_call(context):  # the server's own request: not counted
                token = mark_warmup()
                try:
                    return await behaviour(request, context)
                finally:
                    reset_warmup(token)
            started = time.perf_counter()
            model = self._model_label(request)
            inflight, request_seconds = self._request_series(model, method)
            inflight.inc()
            # Tracing off: no span scope at all (no context extraction, attach/detach or attributes).
            span_scope = server_span(context) if traced else None
            span = span_scope.__enter__() if span_scope is not None else INVALID_SPAN
            code = grpc.StatusCode.OK
            try:
                response = await behaviour(request, context)
                code = _status_of(context) or grpc.StatusCode.OK
                return response
            except asyncio.CancelledError:
                remaining = context.time_remaining()
                expired = remaining is not None and remaining <= 0
                code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
                raise
            except grpc.aio.AbortError:
                code = _status_of(context) or grpc.StatusCode.UNKNOWN
                raise
            except Exception as error:
                code = grpc.StatusCode.UNKNOWN
                span.record_exception(error)
                raise
            finally:
                seconds = time.perf_counter() - started
                inflight.dec()
                self._request_counter(model, method, code).inc()
                request_seconds.observe(seconds)
                if self._access_log and observable:  # while the span is current: the line carries its ids
                    access_log.info(
                        "%s %s %.1f ms", span_name, code.name, seconds * 1e3,
                        extra={"rpc": span_name, "model": model, "code": code.name,
                               "duration_ms": round(seconds * 1e3, 3), "peer": context.peer()},
                    )
                if span_scope is not None:
                    span.set_attribute("rpc.grpc.status_code", code.value[0])
                    if code in _SERVER_ERRORS:
                        span.set_status(StatusCode.ERROR, context.details() or code.name)
                    span_scope.__exit__(None, None, None)

        return observed


def _status_of(context: grpc.aio.ServicerContext) -> grpc.StatusCode | None:
    """The code a handler set (context.abort / set_code), if any."""
    code = context.code()
    if code is None or isinstance(code, grpc.StatusCode):
        return code
    for status in grpc.StatusCode:  # some grpc versions hand back the raw integer
        if status.value[0] == code:
            return status
    return grpc.StatusCode.UNKNOWN
