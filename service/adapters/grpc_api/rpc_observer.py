"""Every unary RPC observed through the shared observation layer (service/observability/observation.py): metrics, the
server span, the access log.

The outcome (gRPC status code) is decided once here and fed to all three. Streaming RPCs (health Watch,
reflection) pass through. Applied as a `routing.MethodRouter` wrapper: each method's handler is wrapped once,
not per call.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import grpc

from service.observability.observation import RequestObserver
from service.observability.tracing import extract_context
from service.observability.warmup_marker import METADATA_KEY as WARMUP_METADATA_KEY, mark_warmup, reset_warmup

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
    """The model a request names: TF Serving's `model_spec.name`, KServe's `model_name` (ModelInfer) or `name`
    (ModelReady, ModelMetadata)."""
    spec = getattr(request, "model_spec", None)
    if spec is not None:
        return str(spec.name)
    name = getattr(request, "model_name", None)
    if name is None:
        name = getattr(request, "name", None)
    return name if isinstance(name, str) else None


def is_warmup_call(context: grpc.aio.ServicerContext) -> bool:
    """Whether the call carries the self-warm-up marker (sent by service/process/self_warmup.py)."""
    return any(key == WARMUP_METADATA_KEY for key, _ in context.invocation_metadata() or ())


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
    """Wraps each unary RPC handler so its outcome reaches the shared observation layer (service/observability/observation.py)
    with gRPC's own details: the status code, the peer, W3C context from the metadata (see `wrap`, applied by
    `routing.MethodRouter`)."""

    def __init__(self, observer: RequestObserver) -> None:
        self._observer = observer

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

    def _observe(
        self, behaviour: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]], service: str, method: str,
        *, observable: bool,
    ) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
        span_name = f"{service}/{method}"
        observer = self._observer
        traced = observable and observer.tracing

        async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if observer.expect_warmup and is_warmup_call(context):  # the server's own request: not counted
                token = mark_warmup()
                try:
                    return await behaviour(request, context)
                finally:
                    reset_warmup(token)
            observation = observer.begin(
                model=observer.model_label(requested_model(request)), method=method, span_name=span_name,
                # Tracing off: no context extraction nor attributes at all.
                parent=extract_context(context.invocation_metadata()) if traced else None,
                attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method,
                            **_peer_attributes(context.peer())} if traced else None,
                traced=observable,
            )
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
                observation.span.record_exception(error)
                raise
            finally:
                observation.finish(
                    code.name, server_error=code in _SERVER_ERRORS, detail=context.details() or "",
                    span_attributes={"rpc.grpc.status_code": code.value[0]},
                    log_extra={"peer": context.peer()} if observer.access_log_enabled else None,
                )

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
