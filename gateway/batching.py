"""Dynamic micro-batching: concurrent requests' prompts are scored together in one encoder call.

A prompt waits at most `max_wait_ms` for company; a batch is sent as soon as it holds `max_batch` prompts. The work
runs in the given executor, never on the event loop. A failure of the batch function fails every waiter in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

BatchFn = Callable[[Sequence[str], Sequence[int]], list[float]]


class MicroBatcher:
    def __init__(self, fn: BatchFn, executor: Executor, max_batch: int = 32, max_wait_ms: float = 2.0) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError("max_batch must be >= 1 and max_wait_ms >= 0")
        self._fn = fn
        self._executor = executor
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._pending: list[tuple[str, int, asyncio.Future[float]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self.batch_sizes: list[int] = []  # for benchmarks and tests: how full batches were

    async def score(self, text: str, turns: int = 1) -> float:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[float] = loop.create_future()
        self._pending.append((text, turns, fut))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait, self._flush)
        return await fut

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        self.batch_sizes.append(len(batch))
        texts = [t for t, _, _ in batch]
        turns = [n for _, n, _ in batch]
        job = asyncio.get_running_loop().run_in_executor(self._executor, self._fn, texts, turns)

        def deliver(done: asyncio.Future[list[float]]) -> None:
            err = done.exception()
            for i, (_, _, fut) in enumerate(batch):
                if fut.done():  # the waiter was cancelled (client went away)
                    continue
                if err is not None:
                    fut.set_exception(err)
                else:
                    fut.set_result(done.result()[i])

        job.add_done_callback(deliver)
