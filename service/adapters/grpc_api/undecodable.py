"""Bytes that are not a valid request proto get INVALID_ARGUMENT, not UNKNOWN and a logged traceback.

grpc.aio deserializes a request before any handler runs, so a corrupt message would surface as
`UNKNOWN: Unexpected DecodeError` and an ERROR traceback per call (a cheap way to flood the logs).
This handler wrapper gives each unary-request method a deserializer that cannot raise: undecodable
bytes become a marker, and the wrapped handler answers it with INVALID_ARGUMENT naming the message type.
"""

from __future__ import annotations

import inspect
from typing import Any, Awaitable, Callable

import grpc


class _Undecodable:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _safe(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize_or_mark(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as error:  # protobuf's DecodeError, or anything a custom deserializer raises
            return _Undecodable(str(error) or type(error).__name__)

    return deserialize_or_mark


def _guarded(behavior: Callable[..., Any], method: str) -> Callable[..., Awaitable[Any]]:
    is_coroutine = inspect.iscoroutinefunction(behavior)  # decided once, not per call

    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if request.__class__ is _Undecodable:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"{method}: the request is not a valid message: {request.reason}"
            )
        if is_coroutine:
            return await behavior(request, context)
        result = behavior(request, context)
        return await result if inspect.isawaitable(result) else result

    return handle


def reject_undecodable_requests(full_method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A `routing.HandlerWrapper` for unary-request methods; streaming-request ones are left as they are."""
    if handler.request_deserializer is None or handler.request_streaming or handler.unary_unary is None:
        return handler  # unary-stream (health Watch): left as grpc serves it
    return grpc.unary_unary_rpc_method_handler(
        _guarded(handler.unary_unary, full_method),
        _safe(handler.request_deserializer),
        handler.response_serializer,
    )
