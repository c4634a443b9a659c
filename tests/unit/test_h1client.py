"""gateway/h1client.py against small scripted HTTP servers on loopback (real sockets): reuse, stale connections,
the one retry, body framings, back-pressure, and the failures it must report instead of returning garbage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from gateway.h1client import H1Pool, HTTPError, endpoint

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def _read_request(r: asyncio.StreamReader) -> bytes:
    head = await r.readuntil(b"\r\n\r\n")
    length = next(int(v) for k, v in (ln.split(b": ", 1) for ln in head.split(b"\r\n")[1:-2]) if k == b"Content-Length")
    return await r.readexactly(length)


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """Calls handler(reader, writer, n-th request on this connection) until it returns False; yields the URL and
    the number of requests handled per connection."""
    per_conn: list[int] = []

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        per_conn.append(0)
        i = len(per_conn) - 1
        try:
            while True:
                more = await handler(r, w, per_conn[i])
                per_conn[i] += 1  # a request answered (or dropped on purpose), not a client's hang-up
                if not more:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1/x?q=1", per_conn
    finally:
        srv.close()


async def _echo(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
    body = await _read_request(r)
    w.write(_ok(b"echo:" + body))
    await w.drain()
    return True


async def test_keep_alive_reuses_one_connection_and_sends_the_fixed_head() -> None:
    seen: list[bytes] = []

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        head = await r.readuntil(b"\r\n\r\n")
        seen.append(head)
        body = await r.readexactly(int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]))
        w.write(_ok(body))
        return True

    async with server(handler) as (url, per_conn):
        pool = H1Pool()
        ep = endpoint("POST", url, {"Authorization": "Bearer k"})
        for i in range(3):
            resp = await pool.send(ep, b"body%d" % i)
            assert (resp.status, await resp.read()) == (200, b"body%d" % i)
        pool.close()
    assert per_conn == [3]
    assert seen[0].startswith(b"POST /v1/x?q=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"Authorization: Bearer k\r\nContent-Length: 5\r\n\r\n" in seen[0]


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def once(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        await _echo(r, w, n)
        return False  # serve one request, then close (an idle timeout on the server's side)

    async with server(once) as (url, per_conn):
        pool = H1Pool()
        ep = endpoint("POST", url, {})
        assert await (await pool.send(ep, b"a")).read() == b"echo:a"
        await asyncio.sleep(0.05)  # the server's FIN arrives while the connection sits in the pool
        assert await (await pool.send(ep, b"b")).read() == b"echo:b"
        pool.close()
    assert per_conn == [1, 1]


async def test_a_reused_connection_that_dies_without_an_answer_is_retried_once() -> None:
    async def drop_second(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        if n == 1:
            await _read_request(r)
            return False  # read it, close without a byte: the race of a keep-alive timeout
        return await _echo(r, w, n)

    async with server(drop_second) as (url, per_conn):
        pool = H1Pool()
        ep = endpoint("POST", url, {})
        assert await (await pool.send(ep, b"a")).read() == b"echo:a"
        assert await (await pool.send(ep, b"b")).read() == b"echo:b"
        pool.close()
    assert per_conn == [2, 1]  # b reached the first connection, was dropped, and was answered on a second


async def test_a_new_connection_that_dies_is_an_error_not_a_retry() -> None:
    async def drop(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        await _read_request(r)
        return False

    async with server(drop) as (url, per_conn):
        with pytest.raises(HTTPError, match="closed before"):
            await H1Pool().send(endpoint("POST", url, {}), b"a")
    assert per_conn == [1]


async def test_chunked_and_close_delimited_bodies() -> None:
    async def chunked(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        await _read_request(r)
        if n == 0:
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            return True
        w.write(b"HTTP/1.1 201 Created\r\nConnection: close\r\n\r\nuntil the end")
        await w.drain()
        return False

    async with server(chunked) as (url, _):
        pool = H1Pool()
        ep = endpoint("POST", url, {})
        assert await (await pool.send(ep, b"")).read() == b"abcde"
        resp = await pool.send(ep, b"")
        assert (resp.status, await resp.read()) == (201, b"until the end")
        pool.close()


async def test_a_slow_reader_gets_every_byte_of_a_long_stream() -> None:
    pieces = [b"data: %d\n\n" % i for i in range(500)]

    async def stream(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        await _read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for p in pieces:
            w.write(b"%x\r\n%s\r\n" % (len(p), p))
            await w.drain()
        w.write(b"0\r\n\r\n")
        return True

    async with server(stream) as (url, per_conn):
        pool = H1Pool()
        got = b""
        async for piece in (await pool.send(endpoint("POST", url, {}), b"")).iter():
            got += piece
            await asyncio.sleep(0)  # slower than the server: the reader falls behind, reading pauses and resumes
        assert got == b"".join(pieces)
        assert await (await pool.send(endpoint("POST", url, {}), b"x")).read() == b"".join(pieces)
        pool.close()
    assert per_conn == [2]  # the finished stream's connection went back to the pool


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"SMTP ready\r\n\r\n", "invalid HTTP response"),
        (_ok(b"\x1f\x8b...", b"Content-Encoding: gzip\r\n"), "compressed"),
    ],
)
async def test_what_is_not_a_plain_http_answer_is_refused(reply: bytes, message: str) -> None:
    async def bad(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        await _read_request(r)
        w.write(reply)
        await w.drain()
        await asyncio.sleep(0.1)
        return False

    async with server(bad) as (url, _):
        with pytest.raises(HTTPError, match=message):
            await (await H1Pool().send(endpoint("POST", url, {}), b"")).read()


def test_urls_and_headers_that_would_corrupt_the_request_are_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        endpoint("POST", "http://h/x", {"Authorization": "Bearer k\r\nX-Evil: 1"})
    with pytest.raises(ValueError, match="not an http"):
        endpoint("POST", "ftp://h/x", {})
    ep = endpoint("POST", "https://api.example.com/v1/chat/completions", {})
    assert (ep.host, ep.port, ep.tls) == ("api.example.com", 443, True)


async def test_in_flight_exchanges_per_host_are_bounded_and_the_rest_wait() -> None:
    open_now, most = 0, 0

    async def slow(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int) -> bool:
        nonlocal open_now, most
        body = await _read_request(r)
        open_now += 1
        most = max(most, open_now)
        await asyncio.sleep(0.05)
        open_now -= 1
        w.write(_ok(body))
        return True

    async with server(slow) as (url, per_conn):
        pool = H1Pool(max_per_host=2)
        ep = endpoint("POST", url, {})

        async def call(i: int) -> bytes:
            return await (await pool.send(ep, b"%d" % i)).read()

        assert await asyncio.gather(*(call(i) for i in range(6))) == [b"%d" % i for i in range(6)]
        pool.close()
    assert most == 2 and len(per_conn) == 2 and sum(per_conn) == 6  # two connections, reused by the waiters
