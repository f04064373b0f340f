"""The load generator's HTTP/1.1 client against a loopback server that answers in each way HTTP allows."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.http_client import HttpClient, HttpError

ANSWERS = {
    b"/length": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
    b"/close": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    b"/busy": b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n",
    b"/garbage": b"NOT HTTP AT ALL\r\n\r\n",
}


async def _serve(connections: list[int]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                path = head.split(b" ")[1]
                if path == b"/silent":
                    continue  # never answers
                writer.write(ANSWERS[path])
                await writer.drain()
                if path in (b"/close", b"/garbage"):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _exchange(path: str, times: int = 3, timeout: float = 5.0) -> tuple[list[object], int]:
    connections: list[int] = []
    server = await _serve(connections)
    port = server.sockets[0].getsockname()[1]
    client = HttpClient("127.0.0.1", port, path)
    request = client.build(b'{"x": 1}')
    outcomes: list[object] = []
    for _ in range(times):
        try:
            outcomes.append(await client.post(request, timeout))
        except (HttpError, TimeoutError) as error:
            outcomes.append(type(error).__name__)
    client.close()
    server.close()
    await server.wait_closed()
    return outcomes, len(connections)


@pytest.mark.parametrize("path", ["/length", "/chunked"])
async def test_answers_are_read_whole_and_the_connection_is_kept(path):
    outcomes, connections = await _exchange(path)
    assert outcomes == [200, 200, 200]
    assert connections == 1


async def test_a_connection_the_server_closes_is_replaced():
    outcomes, connections = await _exchange("/close")
    assert outcomes == [200, 200, 200]
    assert connections == 3


async def test_an_error_status_is_returned_not_raised():
    outcomes, _ = await _exchange("/busy", times=1)
    assert outcomes == [429]


async def test_an_answer_that_is_not_http_fails_that_request_only():
    outcomes, connections = await _exchange("/garbage", times=2)
    assert outcomes == ["HttpError", "HttpError"]
    assert connections == 2


async def test_a_timed_out_connection_is_never_reused():
    outcomes, connections = await _exchange("/silent", times=2, timeout=0.2)
    assert outcomes == ["TimeoutError", "TimeoutError"]
    assert connections == 2


async def test_an_unreachable_server_is_an_http_error():
    client = HttpClient("127.0.0.1", 1, "/x")
    with pytest.raises(HttpError):
        await client.post(client.build(b"{}"), 1.0)
