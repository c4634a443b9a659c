"""Cache stores: Redis when a URL is configured, else an in-process LRU with the same semantics.

A cache must never fail a request. Redis calls have a short timeout; after a failure the store is skipped for a
short back-off (so an outage costs each request nothing), logged once, and retried afterwards: recovery needs no
restart. /readyz asks the store itself (`probe`), so an idle worker's readiness is current.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("tiergate.cache")


class CacheStore(Protocol):
    name: str

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: int) -> None: ...

    async def probe(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryStore:
    """LRU with per-entry expiry; bounded by entry count."""

    name = "memory"

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    async def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= self._clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        self._data[key] = (self._clock() + ttl_s, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    async def probe(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


class RedisStore:
    name = "redis"

    def __init__(self, url: str, timeout_ms: float = 50.0, backoff_s: float = 1.0, prefix: str = "tiergate:") -> None:
        import redis.asyncio as redis

        t = timeout_ms / 1000.0
        self._client = redis.Redis.from_url(url, socket_timeout=t, socket_connect_timeout=t, retry_on_timeout=False)
        self._prefix = prefix
        self._backoff = backoff_s
        self._down_until = 0.0
        self._ok = True

    def _skip(self) -> bool:
        return time.monotonic() < self._down_until

    def _failed(self, op: str, exc: Exception) -> None:
        if self._ok:
            log.warning(
                "redis %s failed (%s); bypassing the cache for %.1fs at a time", op, type(exc).__name__, self._backoff
            )
        self._ok = False
        self._down_until = time.monotonic() + self._backoff

    async def get(self, key: str) -> bytes | None:
        if self._skip():
            return None
        try:
            value = await self._client.get(self._prefix + key)
        except Exception as e:  # redis errors, timeouts, refused connections: all mean "no cache now"
            self._failed("get", e)
            return None
        self._ok = True
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        if self._skip():
            return
        try:
            await self._client.set(self._prefix + key, value, ex=ttl_s)
        except Exception as e:
            self._failed("set", e)
            return
        self._ok = True

    async def probe(self) -> bool:
        """Asks Redis now (a PING within the timeout), for /readyz. Requests only find out about Redis as they use it,
        so a worker whose last call failed (an outage, or one call past its timeout under load) would report
        `degraded` for as long as it stays idle, Redis long back; and one idle through an outage would not see it."""
        try:
            await self._client.ping()
        except Exception as e:
            self._failed("ping", e)
            return False
        if not self._ok:
            log.info("redis answers again; the cache is back")
        self._ok, self._down_until = True, 0.0
        return True

    async def close(self) -> None:
        await self._client.aclose()
