"""What the two HTTP adapters share (TF Serving's REST API and KServe v2 over HTTP, on one aiohttp server):
each request observed like a gRPC one (metrics, server span continuing the client's W3C context, access log),
and the request body read within the request's deadline."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Mapping

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from opentelemetry import propagate

from service.errors import DeadlineExceededError, InvalidInputError
from service.observability.observation import RequestObserver

Respond = Callable[[], Awaitable[tuple[web.Response, str]]]  # the response and its canonical status code


async def observed(
    observer: RequestObserver | None, request: web.Request, model: str | None, method: str, route: str,
    respond: Respond, status_by_code: Mapping[str, int],
) -> web.Response:
    """Run `respond`, observed: `method` labels the metrics, `route` names the span; a client that goes away
    is recorded as CANCELLED (499)."""
    if observer is None:
        return (await respond())[0]
    traced = observer.tracing
    observation = observer.begin(
        model=observer.model_label(model), method=method, span_name=f"{request.method} {route}",
        parent=propagate.extract(request.headers) if traced else None,
        attributes=http_attributes(request, route) if traced else None,
    )
    code = "UNKNOWN"
    try:
        response, code = await respond()
        return response
    except asyncio.CancelledError:  # the client went away
        code = "CANCELLED"
        raise
    finally:
        status = status_by_code.get(code, 500) if code != "CANCELLED" else 499
        observation.finish(
            code, server_error=status >= 500, span_attributes={"http.response.status_code": status},
            log_extra={"peer": request.remote, "http_status": status} if observer.access_log_enabled else None,
        )


def http_attributes(request: web.Request, route: str) -> dict[str, Any]:
    """OpenTelemetry's HTTP server span attributes."""
    attributes: dict[str, Any] = {
        "http.request.method": request.method, "http.route": route, "url.path": request.path,
        "url.scheme": request.scheme,
    }
    if request.remote:
        attributes["network.peer.address"] = request.remote
    agent = request.headers.get("User-Agent")
    if agent:
        attributes["user_agent.original"] = agent
    return attributes


async def read_body(request: web.Request, deadline: float | None) -> bytes:
    """The body; one that does not arrive by the request's deadline (a slow client holding a connection and a
    buffer) is refused with DEADLINE_EXCEEDED."""
    try:
        async with asyncio.timeout_at(deadline):
            return await request.read()
    except TimeoutError:
        raise DeadlineExceededError(
            "the request body did not arrive before its deadline (--rest_api_timeout_in_ms)"
        ) from None
    except RequestPayloadError as error:  # e.g. Content-Encoding: gzip on a body that is not gzip
        raise InvalidInputError(f"the request body cannot be read: {error}") from None
