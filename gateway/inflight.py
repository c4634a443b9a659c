"""Calls in flight to each server, in this worker: what least-busy balancing reads (gateway/balancer.py), and the
cap a model's `max_concurrency` sets, with a first-come-first-served wait for a slot beyond it.

Keys are the balancer's server keys (the model's name, or `name#i` for a model with deployments). Every call
holds a `Slot` from when it is sent until its answer (or its stream) has ended. The counts are per worker, like
cooldowns: N workers may have N x `max_concurrency` calls in flight to one server. One `InFlight` lives as long as
the worker and is handed from pipeline to pipeline on a policy reload, so calls that began under the old policy
still count against the new one's caps.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass


class Busy(Exception):
    """No slot on the server freed up within the wait."""

    def __init__(self, server: str, waited_s: float) -> None:
        super().__init__(f"{server}: every slot stayed taken for {waited_s:g}s")
        self.server = server
        self.waited_s = waited_s


@dataclass(frozen=True)
class ServerLoad:
    in_flight: int
    max_concurrency: int | None
    waiting: int


class Slot:
    """One call's claim on a server; `release` is idempotent, so every exit path may call it."""

    __slots__ = ("_owner", "key")

    def __init__(self, owner: InFlight, key: str) -> None:
        self._owner: InFlight | None = owner
        self.key = key

    def release(self) -> None:
        if self._owner is not None:
            owner, self._owner = self._owner, None
            owner._release(self.key)


class InFlight:
    def __init__(self) -> None:
        self._count: dict[str, int] = {}
        self._caps: dict[str, int] = {}
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}

    def configure(self, caps: Mapping[str, int]) -> None:
        """The caps of the policy now in force (server key: max calls in flight); a raised cap lets waiters in."""
        self._caps = dict(caps)
        for key in list(self._waiters):
            self._wake(key)

    def gauges(self) -> dict[str, list[int]]:
        """load() as plain JSON values, for the metrics shared across workers: server: [in flight, waiting]."""
        return {k: [v.in_flight, v.waiting] for k, v in self.load().items()}

    def count(self, key: str) -> int:
        return self._count.get(key, 0)

    def full(self, key: str) -> bool:
        cap = self._caps.get(key)
        return cap is not None and self._count.get(key, 0) >= cap

    def try_acquire(self, key: str) -> Slot | None:
        """A slot now, or None if the server is full or others are already waiting for one (no queue jumping)."""
        if self.full(key) or self._waiters.get(key):
            return None
        self._count[key] = self._count.get(key, 0) + 1
        return Slot(self, key)

    async def acquire(self, key: str, timeout_s: float) -> Slot:
        """A slot, waiting for one in turn for up to `timeout_s`; raises Busy if none frees up in time."""
        if (slot := self.try_acquire(key)) is not None:
            return slot
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiters.setdefault(key, deque())
        queue.append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except BaseException as e:
            # Timed out or cancelled. If a release handed us the slot in the same moment, give it back.
            if fut.done() and not fut.cancelled():
                self._release(key)
            else:
                fut.cancel()
            self._forget(key, fut)
            if isinstance(e, TimeoutError):
                raise Busy(key, timeout_s) from None
            raise
        return Slot(self, key)  # the releaser counted us in (`_wake`)

    def load(self) -> dict[str, ServerLoad]:
        """Every server called since the worker started, or with a cap: its calls in flight and waiting."""
        keys = set(self._count) | set(self._caps) | {k for k, q in self._waiters.items() if q}
        return {k: ServerLoad(self._count.get(k, 0), self._caps.get(k), len(self._waiters.get(k) or ())) for k in keys}

    def _release(self, key: str) -> None:
        self._count[key] -= 1  # an idle server keeps its entry, at 0, so its gauge reads 0 rather than vanishing
        self._wake(key)

    def _wake(self, key: str) -> None:
        queue = self._waiters.get(key)
        while queue and not self.full(key):
            fut = queue.popleft()
            if not fut.done():
                self._count[key] = self._count.get(key, 0) + 1  # the slot passes straight to the waiter
                fut.set_result(None)
        if queue is not None and not queue:
            del self._waiters[key]

    def _forget(self, key: str, fut: asyncio.Future[None]) -> None:
        queue = self._waiters.get(key)
        if queue is not None:
            with suppress(ValueError):  # already taken off by `_wake`
                queue.remove(fut)
            if not queue:
                del self._waiters[key]
