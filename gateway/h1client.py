"""A small HTTP/1.1 client for the upstream hot path: pooled keep-alive connections, each request sent in one write,
responses parsed by httptools (the C parser uvicorn serves with).

Why not aiohttp: on this machine a call to the fake upstream cost 250-285 us of CPU through aiohttp's
ClientSession against ~60 us here, and 0.47-0.50 ms against 0.20-0.28 ms of wall time at p50 (docs/benchmarks.md):
more than the rest of an explicit-model request. What it leaves out, on purpose: redirects, cookies, proxies,
compression (it asks for none; an encoded body is refused), HTTP/2. An upstream that needs those goes through
litellm (`transport: litellm`).

Correctness points: a pooled connection the server has closed is never reused (its EOF is seen while idle); one
that dies before a single byte of the answer after being reused is retried once on a new connection (almost
always a keep-alive the server closed as we wrote, so the request never ran; urllib3 and aiohttp make the same
call); any other failure closes the connection and is the caller's to judge.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

# Chunks a stream's reader may fall behind by before the socket stops being read (back-pressure to the server).
_HIGH_WATER = 64


class HTTPError(ConnectionError):
    """The exchange failed below HTTP: refused, reset, closed early, or not HTTP."""


@dataclass(frozen=True)
class Endpoint:
    """Where a URL's requests go, and the bytes every request to it starts with."""

    host: str
    port: int
    tls: bool
    head: bytes  # request line and fixed headers, up to (not including) Content-Length

    @property
    def key(self) -> tuple[str, int, bool]:
        return self.host, self.port, self.tls


def endpoint(method: str, url: str, headers: Mapping[str, str]) -> Endpoint:
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    tls = u.scheme == "https"
    port = u.port or (443 if tls else 80)
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {u.netloc.rsplit('@', 1)[-1]}"]
    for k, v in headers.items():
        if any(c in k + v for c in "\r\n\0"):
            raise ValueError(f"header {k!r} contains a line break")  # would let a value inject headers
        lines.append(f"{k}: {v}")
    return Endpoint(u.hostname, port, tls, ("\r\n".join(lines) + "\r\n").encode("latin-1"))


class _Conn(asyncio.Protocol):
    """One connection; one exchange at a time. Parser callbacks fill in the current response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers_done = self.complete = self.keep_alive = False
        self.retry_after: bytes | None = None
        self.got_bytes = self.length_known = self.encoded = False
        self.chunks: deque[bytes] = deque()
        self.error: Exception | None = None
        self._wake: asyncio.Future[None] | None = None
        self._paused = False

    # -- asyncio.Protocol ------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports don't subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(HTTPError(f"invalid HTTP response: {e}"))
            self.close()
            return
        if len(self.chunks) > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.headers_done and not self.complete and not self.length_known:
            self.complete = True  # a body delimited by the connection's end (no length, not chunked)
        elif not self.complete:
            self._fail(HTTPError(f"connection closed before the response ended ({exc or 'EOF'})"))
        self._notify()

    # -- httptools callbacks ---------------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        n = name.lower()
        if n in (b"content-length", b"transfer-encoding"):
            self.length_known = True
        elif n == b"content-encoding" and value.strip().lower() != b"identity":
            self.encoded = True
        elif n == b"retry-after":  # a 429's or 503's "come back then": the cooldown honours it
            self.retry_after = value

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        self._notify()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self._notify()

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # only valid now: the parser resets after this call
        self._notify()

    # -- for the pool ----------------------------------------------------------------------------------------
    def _fail(self, err: Exception) -> None:
        if self.error is None:
            self.error = err

    def _notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def wait(self) -> None:
        """Until the parser reports something or the connection fails; raises the failure."""
        if self.error is None:
            self._wake = asyncio.get_running_loop().create_future()
            await self._wake
            self._wake = None
        if self.error is not None:
            raise self.error

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()
        return data

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self._reset()
        self.transport.write(data)

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Response:
    """An answer whose headers have arrived; read the body whole with `read()` or in pieces with `iter()`."""

    def __init__(self, pool: H1Pool, key: tuple[str, int, bool], conn: _Conn, read_timeout: float | None) -> None:
        self._pool, self._key, self._conn, self._timeout = pool, key, conn, read_timeout
        self.status = conn.status
        self.retry_after = conn.retry_after.decode("latin-1") if conn.retry_after is not None else None
        self._done = False

    async def iter(self) -> AsyncGenerator[bytes, None]:
        """Body bytes as they arrive (each wait bounded by the read timeout). Leaving early closes the connection."""
        c = self._conn
        try:
            while True:
                if c.chunks:
                    yield c.take()
                    continue
                if c.complete:
                    break
                async with asyncio.timeout(self._timeout):
                    await c.wait()
        finally:
            self.release()

    async def read(self) -> bytes:
        parts = [piece async for piece in self.iter()]
        return b"".join(parts)

    def release(self) -> None:
        """Back to the pool if the exchange finished cleanly, else closed. Idempotent."""
        if not self._done:
            self._done = True
            self._pool.release(self._key, self._conn)


class H1Pool:
    """Keep-alive connections per (host, port, TLS), created on demand; idle ones expire after `idle_s`.

    At most `max_per_host` exchanges per host are in flight; more wait for a free one (inside the caller's
    deadline). Without a bound, a burst of long LLM calls would open a socket each until the process ran out of
    file descriptors, failing requests that could simply have queued."""

    def __init__(self, max_per_host: int = 256, max_idle_per_host: int = 64, idle_s: float = 30.0) -> None:
        self._idle: dict[tuple[str, int, bool], deque[_Conn]] = {}
        self._slots: dict[tuple[str, int, bool], asyncio.Semaphore] = {}
        self._max_per_host = max_per_host
        self._max_idle = max_idle_per_host
        self._idle_s = idle_s
        self._tls: ssl.SSLContext | None = None

    def _slot(self, key: tuple[str, int, bool]) -> asyncio.Semaphore:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = asyncio.Semaphore(self._max_per_host)
        return slot

    def _checkout(self, key: tuple[str, int, bool]) -> _Conn | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            c = idle.pop()  # the most recently used: the least likely to have been closed by the server
            if not c.closed and now - c.idle_since < self._idle_s:
                return c
            c.close()
        return None

    async def _connect(self, ep: Endpoint) -> _Conn:
        loop = asyncio.get_running_loop()
        tls = None
        if ep.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        host = ep.host if tls else None
        _, conn = await loop.create_connection(_Conn, ep.host, ep.port, ssl=tls, server_hostname=host)
        return conn

    def release(self, key: tuple[str, int, bool], conn: _Conn) -> None:
        """The end of an exchange `send` started: its slot frees, its connection is pooled or closed."""
        self._slot(key).release()
        idle = self._idle.setdefault(key, deque())
        if conn.reusable() and len(idle) < self._max_idle:
            conn.idle_since = time.monotonic()
            idle.append(conn)
        else:
            conn.close()

    async def send(self, ep: Endpoint, body: bytes, read_timeout: float | None = None) -> Response:
        """Send one request and wait for the answer's status and headers. Connection failures raise HTTPError
        (or OSError while connecting); the caller bounds the whole call with its own timeout."""
        data = ep.head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        slot = self._slot(ep.key)
        await slot.acquire()
        try:
            return await self._exchange(ep, data, read_timeout)
        except BaseException:
            slot.release()  # on success the Response holds the slot until it is released
            raise

    async def _exchange(self, ep: Endpoint, data: bytes, read_timeout: float | None) -> Response:
        for attempt in (0, 1):
            conn = self._checkout(ep.key)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(ep)
            conn.send(data)
            try:
                while not conn.headers_done:
                    async with asyncio.timeout(read_timeout):
                        await conn.wait()
            except HTTPError:
                conn.close()
                if reused and not conn.got_bytes and attempt == 0:
                    continue  # closed by the server as we wrote: the request never ran
                raise
            except BaseException:
                conn.close()
                raise
            if conn.encoded:
                conn.close()
                raise HTTPError("the upstream sent a compressed body although none was asked for")
            return Response(self, ep.key, conn, read_timeout)
        raise AssertionError("unreachable")

    def close(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()
