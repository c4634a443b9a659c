from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway.batching import MicroBatcher


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.threads: set[str] = set()
        self.fail = fail

    def __call__(self, texts: Sequence[str], turns: Sequence[int]) -> list[float]:
        self.calls.append(list(texts))
        self.threads.add(threading.current_thread().name)
        if self.fail:
            raise RuntimeError("encoder broke")
        return [len(t) / 100 + n for t, n in zip(texts, turns, strict=True)]


async def test_concurrent_prompts_share_batches_and_get_their_own_scores() -> None:
    rec = Recorder()
    with ThreadPoolExecutor(1, thread_name_prefix="enc") as pool:
        b = MicroBatcher(rec, pool, max_batch=8, max_wait_ms=50)
        texts = [f"prompt {'x' * i}" for i in range(20)]
        scores = await asyncio.gather(*(b.score(t, 1) for t in texts))
    assert scores == [len(t) / 100 + 1 for t in texts]
    assert [len(c) for c in rec.calls] == [8, 8, 4]  # full batches go at once, the rest after max_wait
    assert rec.threads == {"enc_0"}  # never on the event loop's thread


async def test_a_lone_prompt_waits_at_most_max_wait() -> None:
    rec = Recorder()
    with ThreadPoolExecutor(1) as pool:
        b = MicroBatcher(rec, pool, max_batch=32, max_wait_ms=5)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await b.score("alone", 2) == pytest.approx(2.05)
        assert loop.time() - t0 < 1.0
    assert list(b.batch_sizes) == [1]


async def test_batch_failure_reaches_every_waiter_and_the_next_batch_works() -> None:
    rec = Recorder(fail=True)
    with ThreadPoolExecutor(1) as pool:
        b = MicroBatcher(rec, pool, max_batch=2, max_wait_ms=1)
        results = await asyncio.gather(b.score("a"), b.score("b"), return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        rec.fail = False
        assert await b.score("c") == pytest.approx(1.01)


async def test_cancelled_waiter_does_not_break_its_batch() -> None:
    rec = Recorder()
    with ThreadPoolExecutor(1) as pool:
        b = MicroBatcher(rec, pool, max_batch=3, max_wait_ms=20)
        t1 = asyncio.ensure_future(b.score("a"))
        t2 = asyncio.ensure_future(b.score("bb"))
        await asyncio.sleep(0)
        t1.cancel()
        assert await t2 == pytest.approx(1.02)


async def test_with_no_wait_a_lone_prompt_goes_at_once_and_a_busy_encoder_collects_a_batch() -> None:
    gate = threading.Event()
    rec = Recorder()

    def slow(texts: Sequence[str], turns: Sequence[int]) -> list[float]:
        gate.wait(5)
        return rec(texts, turns)

    with ThreadPoolExecutor(1) as pool:
        b = MicroBatcher(slow, pool, max_batch=8, max_wait_ms=0)
        first = asyncio.ensure_future(b.score("first"))
        await asyncio.sleep(0.05)
        assert list(b.batch_sizes) == [1]  # sent without waiting for company
        rest = [asyncio.ensure_future(b.score(f"p{i}")) for i in range(11)]
        await asyncio.sleep(0.05)
        assert list(b.batch_sizes) == [1]  # the one slot is busy: the others queue
        gate.set()
        await asyncio.gather(first, *rest)
    assert list(b.batch_sizes) == [1, 8, 3]  # they left together, max_batch at a time


async def test_idle_gateway_scores_on_the_loop_thread_and_a_busy_one_hands_off() -> None:
    rec = Recorder()
    idle = [True]
    with ThreadPoolExecutor(1, thread_name_prefix="enc") as pool:
        b = MicroBatcher(rec, pool, max_batch=8, inline_if=lambda: idle[0])
        assert await b.score("alone", 1) == pytest.approx(1.05)
        assert rec.threads == {threading.current_thread().name} and b.inline_runs == 1
        idle[0] = False  # another request is in progress: the loop must stay free for it
        assert await b.score("busy", 1) == pytest.approx(1.04)
        assert rec.threads == {threading.current_thread().name, "enc_0"} and b.inline_runs == 1


async def test_inline_scoring_never_jumps_the_queue_of_a_busy_encoder() -> None:
    gate = threading.Event()
    rec = Recorder()

    def slow(texts: Sequence[str], turns: Sequence[int]) -> list[float]:
        if threading.current_thread().name.startswith("enc"):
            gate.wait(5)
        return rec(texts, turns)

    with ThreadPoolExecutor(1, thread_name_prefix="enc") as pool:
        b = MicroBatcher(slow, pool, max_batch=8, inline_if=lambda: False)
        first = asyncio.ensure_future(b.score("first"))
        await asyncio.sleep(0.05)
        b._inline_if = lambda: True  # the other request finished, but the encoder is still busy with its prompt
        second = asyncio.ensure_future(b.score("second"))
        await asyncio.sleep(0.05)
        assert not second.done() and b.inline_runs == 0  # it queued behind the busy slot instead
        gate.set()
        assert await asyncio.gather(first, second) == [pytest.approx(1.05), pytest.approx(1.06)]
    assert rec.threads == {"enc_0"}


async def test_inline_failure_reaches_its_caller() -> None:
    with ThreadPoolExecutor(1) as pool:
        b = MicroBatcher(Recorder(fail=True), pool, inline_if=lambda: True)
        with pytest.raises(RuntimeError, match="encoder broke"):
            await b.score("x")


async def test_batch_history_is_bounded() -> None:
    with ThreadPoolExecutor(1) as pool:
        b = MicroBatcher(lambda texts, turns: [0.0] * len(texts), pool, inline_if=lambda: True)
        for _ in range(5000):
            await b.score("x")
    assert b.inline_runs == 5000 and len(b.batch_sizes) == 4096  # a gateway's lifetime of batches is not kept


def test_bad_settings_rejected() -> None:
    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError):
        MicroBatcher(Recorder(), pool, max_batch=0)
