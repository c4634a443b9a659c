from __future__ import annotations

import asyncio

from gateway.cache import MemoryStore
from gateway.protocol import ChatCompletionRequest
from gateway.response_cache import ChatCache
from router.policy import TiergateConfig
from tests.conftest import api_config


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def test_memory_store_expires_and_evicts_least_recently_used() -> None:
    clock = Clock()
    store = MemoryStore(max_entries=2, clock=clock)
    await store.set("a", b"1", ttl_s=10)
    await store.set("b", b"2", ttl_s=10)
    assert await store.get("a") == b"1"  # a is now the most recently used
    await store.set("c", b"3", ttl_s=10)
    assert await store.get("b") is None and await store.get("a") == b"1" and await store.get("c") == b"3"
    clock.t = 10.0
    assert await store.get("a") is None  # expired at its TTL


class GatedStore(MemoryStore):
    """A store whose writes wait for the test to open the gate: a slow Redis."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        await self.gate.wait()
        await super().set(key, value, ttl_s)


async def test_pending_counts_stores_until_they_are_written() -> None:
    """What tests/conftest.py's cache_settled waits on: a store is pending from when it is scheduled until written."""
    store = GatedStore()
    config = TiergateConfig.model_validate(api_config("http://127.0.0.1:9/v1"))
    cache = ChatCache(store, config)
    req = ChatCompletionRequest.model_validate({"model": "mid", "messages": [{"role": "user", "content": "hi"}]})
    cache.save(req, "mid", "default", "k", {"model": "mid", "choices": []}, 60)
    await asyncio.sleep(0.01)
    assert cache.pending == 1 and await store.get("k") is None
    store.gate.set()
    await cache.drain()
    assert cache.pending == 0 and await store.get("k") is not None
