"""What every gRPC protocol adapter (TF Serving's and KServe v2) needs alike: serving errors as gRPC status
codes, applied once around every handler, and the client's deadline on the event loop's clock."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Awaitable, Callable, TypeVar

import grpc

from service.errors import CANONICAL_CODES, ServingError, code_for

_log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[ServingError], grpc.StatusCode] = {
    error: grpc.StatusCode[name] for error, name in CANONICAL_CODES.items()
}

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def status_code_for(error: ServingError) -> grpc.StatusCode:
    return code_for(error, STATUS_BY_ERROR, grpc.StatusCode.INTERNAL)


def maps_errors_to_status(handler: Handler) -> Handler:
    """A client gets a status it can act on; an unexpected fault is logged and answered INTERNAL."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await handler(self, request, context)
        except ServingError as error:
            await context.abort(status_code_for(error), str(error))
        except (grpc.aio.AbortError, grpc.aio.UsageError):  # context.abort() inside the handler
            raise
        except Exception:
            _log.exception("unexpected error in %s", handler.__qualname__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal server error (logged on the server)")

    return wrapper  # type: ignore[return-value]


def deadline_of(context: grpc.aio.ServicerContext) -> float | None:
    """The client's deadline on the event loop's clock, so queued items past it are never computed."""
    remaining = context.time_remaining()
    if remaining is None:
        return None
    return asyncio.get_running_loop().time() + remaining
