"""One method table for every gRPC service we serve, with each handler wrapped once, at first use.

Why not `grpc.aio` interceptors and the generated `add_*_to_server` calls straight onto the server:

- grpc.aio keeps one pending "request call" per *registered* method (newer generated stubs register
  theirs: health, reflection, KServe; about 25 methods in all) and `asyncio.wait`s on all of them for
  every incoming RPC, so each Predict paid for every method the server offers.
- Interceptors run a coroutine pipeline per RPC just to hand back the same handler.

Here the generated registration functions register into a `MethodRouter` instead of the server; the
server gets the router as its single generic handler. The server then waits on one pending call, and an
RPC costs one dict lookup to find its already-wrapped handler. Wrappers (metrics, tracing, undecodable
requests) keep a grpc handler's shape, so they compose like interceptors did.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

import grpc

HandlerWrapper = Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler]
"""(full method name "/package.Service/Method", handler) → the handler to serve instead."""


class MethodRouter(grpc.GenericRpcHandler):
    """Collects services the way a grpc server does, serves them as one generic handler.

    `wrappers` apply innermost first: the last one sees every call first (as the first interceptor did).
    Unknown methods return None, which grpc answers with UNIMPLEMENTED; they are not cached, so a client
    cannot grow the table.
    """

    def __init__(self, wrappers: Sequence[HandlerWrapper] = ()) -> None:
        self._wrappers = tuple(wrappers)
        self._generic: list[grpc.GenericRpcHandler] = []
        self._registered: dict[str, grpc.RpcMethodHandler] = {}
        self._resolved: dict[str, grpc.RpcMethodHandler] = {}

    # The registration surface of grpc.aio.Server that generated `add_*Servicer_to_server` functions use.
    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]) -> None:
        for method, handler in handlers.items():
            self._registered[f"/{service}/{method}"] = handler

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        handler = self._resolved.get(method)
        if handler is not None:
            return handler
        handler = self._registered.get(method)
        if handler is None:
            for generic in self._generic:
                handler = generic.service(handler_call_details)
                if handler is not None:
                    break
            else:
                return None
        for wrap in self._wrappers:
            handler = wrap(method, handler)
        self._resolved[method] = handler
        return handler
