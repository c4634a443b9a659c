from __future__ import annotations

from gateway.cache import MemoryStore


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
