"""settle_heap: what a serving process holds after start-up leaves the collector's view (so full collections,
which stop the event loop, no longer scan it) and start-up garbage is collected first."""

from __future__ import annotations

import gc
import weakref


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_settle_heap_collects_garbage_then_freezes_the_rest() -> None:
    from gateway.app import settle_heap

    gc.disable()  # no automatic collection may free the cycle before settle_heap does
    try:
        ballast = [[i] for i in range(200_000)]  # stands in for a worker's modules, model and config
        garbage = _Cycle()
        alive = weakref.ref(garbage)
        del garbage  # a reference cycle: only a collection can free it
        assert alive() is not None
        settle_heap()
        assert alive() is None
        assert gc.get_freeze_count() >= len(ballast)
    finally:
        gc.unfreeze()  # the test process builds many apps; it must not keep their cycles forever
        gc.enable()
