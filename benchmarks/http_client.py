"""A lean HTTP/1.1 keep-alive client for the load generator: pre-built request bytes written on a raw asyncio
connection, answers parsed by httptools (llhttp, the parser uvicorn uses).

A general-purpose client (aiohttp's) spends 0.3-0.4 ms of CPU per request on headers, cookies and stream
objects; on a 2-core machine that CPU is taken from the server being measured, so REST would read slower
than it is next to a gRPC client whose work is done in C. This client does what wrk does: one connection per
concurrent caller, the request's bytes written once, the answer's status and body read, nothing else.
"""

from __future__ import annotations

import asyncio
from collections import deque

import httptools


class HttpError(Exception):
    """The connection failed or the answer was not valid HTTP; the name is what the load report counts."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[int] | None = None
        self.reusable = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(HttpError(f"invalid HTTP answer: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._fail(HttpError("connection closed by the server"))

    # httptools callbacks
    def on_message_complete(self) -> None:
        if not self._parser.should_keep_alive():
            self.reusable = False
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(self._parser.get_status_code())

    def _fail(self, error: Exception) -> None:
        self.reusable = False
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)

    async def exchange(self, request: bytes) -> int:
        """Send one request; the answer's HTTP status (its body is read and dropped)."""
        self._answer = asyncio.get_running_loop().create_future()
        assert self._transport is not None
        self._transport.write(request)
        return await self._answer

    def close(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.close()


class HttpClient:
    """POSTs pre-serialized bodies to one URL path over a pool of keep-alive connections."""

    def __init__(self, host: str, port: int, path: str, content_type: str = "application/json") -> None:
        self._host, self._port = host, port
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
            "Connection: keep-alive\r\nContent-Length: "
        ).encode("ascii")
        self._idle: deque[_Connection] = deque()
        self._all: set[_Connection] = set()

    def build(self, body: bytes) -> bytes:
        """The request's bytes, built once and sent many times."""
        return self._head + str(len(body)).encode("ascii") + b"\r\n\r\n" + body

    async def post(self, request: bytes, timeout: float) -> int:
        """One exchange on an idle connection (a new one if none is idle); raises HttpError or TimeoutError."""
        connection = self._idle.pop() if self._idle else await self._connect()
        try:
            async with asyncio.timeout(timeout):
                status = await connection.exchange(request)
        except BaseException:
            connection.close()  # an answer may still arrive on it: never reuse it
            self._all.discard(connection)
            raise
        if connection.reusable:
            self._idle.append(connection)
        else:
            connection.close()
            self._all.discard(connection)
        return status

    async def _connect(self) -> _Connection:
        try:
            _, connection = await asyncio.get_running_loop().create_connection(_Connection, self._host, self._port)
        except OSError as error:
            raise HttpError(f"cannot connect: {error}") from None
        self._all.add(connection)
        return connection

    def close(self) -> None:
        for connection in self._all:
            connection.close()
        self._all.clear()
        self._idle.clear()
