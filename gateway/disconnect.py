"""A request's upstream work cancelled when its client goes away before the answer begins.

uvicorn does not cancel an app whose client disconnects. Without this, a chat request whose client gave up (its
timeout, a closed tab) kept its upstream call going to the end, holding a local server's slot that a waiting request
could have had, and its record said 200 for an answer nobody received. Once the body is read, the next `receive()`
returns only when the client disconnects (or the response is complete), so one pending `receive()` is the watch.

The watch is armed by the pipeline only once it is about to call a model, after the cache: a pending `receive()` is a
task, and armed on every request it cost a cache hit 12-25 us on top of its own ~50 (measured in process), to guard
work that waits on no one. Streams are watched by Starlette's StreamingResponse once they begin; this covers them
until their first chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

T = TypeVar("T")


class Watch:
    """Runs one request's work (`run`); once armed, the client's disconnect cancels it."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task: asyncio.Task[Any] | None = None  # the request's own task, which the work runs in
        self._pending: asyncio.Future[Message] | None = None
        self._running = False
        self.gone = False

    def arm(self) -> None:
        """Called by the work before it waits on an upstream: from here on, the client leaving cancels it."""
        if self._running and self._pending is None:
            self._pending = asyncio.ensure_future(self._receive())
            self._pending.add_done_callback(self._on_message)

    def _on_message(self, pending: asyncio.Future[Message]) -> None:
        # Only while the work runs: once it has returned, a cancellation would hit whatever the task awaits next.
        if not self._running or self._task is None or pending.cancelled() or pending.exception() is not None:
            return
        if pending.result()["type"] == "http.disconnect":
            self.gone = True
            self._task.cancel()

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """`await work`; ClientDisconnect if the client left while it ran armed. The work sees an ordinary
        cancellation (the pipeline records it as 499, with what the upstream call had cost)."""
        self._task, self._running = asyncio.current_task(), True
        try:
            result = await work
        except asyncio.CancelledError:
            if not self.gone or self._task is None:
                raise  # cancelled from outside (the server stopping): not ours to absorb
            self._task.uncancel()
            raise ClientDisconnect() from None
        finally:
            self._running = False
            if self._pending is not None:
                self._pending.cancel()
        if self.gone:
            # The client left as the work ended, after its last await: the answer is made (and recorded) but has no
            # one to go to, and the cancellation requested stays pending on this task. Raised here, the caller
            # returns without awaiting anything more, so that cancellation ends the task instead of failing a send.
            raise ClientDisconnect()
        return result
