"""Dynamic micro-batching: concurrent requests' prompts are scored together in one encoder call.

A prompt is sent as soon as an encoder slot is free (`slots`, the executor's threads); while every slot is busy,
prompts queue and leave together, up to `max_batch` at a time, when one frees. So a lone request never waits, and
under load batches grow by themselves. `max_wait_ms` > 0 additionally holds a prompt that much for company even
when a slot is free (more batching, at a latency cost). The work runs in the executor, never on the event loop;
a failure of the batch function fails every waiter in that batch.

One exception to "never on the event loop": with `inline_if` given, a prompt that finds the encoder idle, nothing
queued and `inline_if()` true (the gateway passes "no other request in progress") is scored on the loop's own
thread. Handing it to the encoder thread costs two cross-thread wake-ups, ~0.3 ms on this machine
(docs/benchmarks.md), and buys nothing when no other request is there to use the loop meanwhile. A request that
arrives during that call is read when it ends: an `auto` one would have waited for the one encoder slot anyway;
one naming a model waits up to one classification (~7 ms) that it would not have, the price of the shortcut.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

T = TypeVar("T")
# One result per prompt, in order: a score, or a score with its embedding (gateway/classify.py).
BatchFn = Callable[[Sequence[str], Sequence[int]], list[T]]


class MicroBatcher(Generic[T]):
    def __init__(
        self,
        fn: BatchFn[T],
        executor: Executor,
        max_batch: int = 32,
        max_wait_ms: float = 0.0,
        slots: int = 1,
        inline_if: Callable[[], bool] | None = None,
    ) -> None:
        if max_batch < 1 or max_wait_ms < 0 or slots < 1:
            raise ValueError("max_batch and slots must be >= 1 and max_wait_ms >= 0")
        self._fn = fn
        self._executor = executor
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.slots = slots
        self._inflight = 0
        self._pending: list[tuple[str, int, asyncio.Future[T]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._inline_if = inline_if
        # For benchmarks and tests: how full the most recent batches were (bounded: a gateway runs for months).
        self.batch_sizes: deque[int] = deque(maxlen=4096)
        self.inline_runs = 0

    async def score(self, text: str, turns: int = 1) -> T:
        if self._inline_if is not None and self._inflight == 0 and not self._pending and self._inline_if():
            self.inline_runs += 1
            self.batch_sizes.append(1)
            return self._fn([text], [turns])[0]
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._pending.append((text, turns, fut))
        if self.max_wait == 0 or len(self._pending) >= self.max_batch:
            self._dispatch()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait, self._on_timer)
        return await fut

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()

    def _dispatch(self) -> None:
        while self._pending and self._inflight < self.slots:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            self._start(batch)

    def _start(self, batch: list[tuple[str, int, asyncio.Future[T]]]) -> None:
        self._inflight += 1
        self.batch_sizes.append(len(batch))
        texts = [t for t, _, _ in batch]
        turns = [n for _, n, _ in batch]
        job = asyncio.get_running_loop().run_in_executor(self._executor, self._fn, texts, turns)

        def deliver(done: asyncio.Future[list[T]]) -> None:
            self._inflight -= 1
            err = done.exception()
            for i, (_, _, fut) in enumerate(batch):
                if fut.done():  # the waiter was cancelled (client went away)
                    continue
                if err is not None:
                    fut.set_exception(err)
                else:
                    fut.set_result(done.result()[i])
            self._dispatch()  # what queued while every slot was busy goes now

        job.add_done_callback(deliver)
