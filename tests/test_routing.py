"""MethodRouter: every service in one table, each handler wrapped once, unknown methods left to grpc."""

from __future__ import annotations

from collections import namedtuple

import grpc

from service.adapters.grpc_api.routing import MethodRouter

Details = namedtuple("Details", "method invocation_metadata")


async def _echo(request, context):  # pragma: no cover - never called: the tests compare handlers
    return request


def _handler() -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(_echo)


def test_generic_and_registered_methods_are_wrapped_once_each() -> None:
    wrapped: list[str] = []

    def record(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        wrapped.append(method)
        return handler

    router = MethodRouter([record])
    router.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("pkg.Old", {"Call": _handler()})])
    router.add_registered_method_handlers("pkg.New", {"Call": _handler()})
    for _ in range(3):
        assert router.service(Details("/pkg.Old/Call", ())) is not None
        assert router.service(Details("/pkg.New/Call", ())) is not None
    assert wrapped == ["/pkg.Old/Call", "/pkg.New/Call"]


def test_wrappers_apply_innermost_first() -> None:
    order: list[str] = []

    def named(name: str):
        def wrap(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
            order.append(name)
            return handler
        return wrap

    router = MethodRouter([named("inner"), named("outer")])
    router.add_registered_method_handlers("pkg.S", {"M": _handler()})
    router.service(Details("/pkg.S/M", ()))
    assert order == ["inner", "outer"]


def test_unknown_methods_are_unimplemented_and_not_remembered() -> None:
    router = MethodRouter()
    router.add_registered_method_handlers("pkg.S", {"M": _handler()})
    for index in range(100):
        assert router.service(Details(f"/pkg.S/Nope{index}", ())) is None
    assert list(router._resolved) == []
