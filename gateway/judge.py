"""LLM-as-judge grading of a sample of cheap answers (router/policy.py: Judge; the prompt and the grade are
router/judging.py's), in the background, off the request path.

Each judge call is a billed request of its own: it is booked in the ledger (endpoint "judge", request id
"<the graded request's id>:judge") with its cost, whatever its outcome. Its grade is stored as a judgement of the
graded request, as POST /v1/feedback stores a client's, under the key id "judge:<model>", so `tiergate
export-labels` turns judged requests of policies with `record_prompts` into training rows. At most `max_pending`
calls wait or run at once per worker (`concurrency` of them in flight); past that a sampled answer is not graded.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool

from gateway.ledger import LedgerRecord
from gateway.provider import UpstreamError
from gateway.usage import content_tokens, usage_of
from router.judging import grade, grading_messages
from router.policy import Judge, ModelSpec
from router.pricing import PriceTable, Usage
from router.tokens import estimate_tokens

log = logging.getLogger("tiergate.judge")

AddFeedback = Callable[[str, float, str | None], Any]  # (request id, score, key id), blocking: called in a thread


class Completer(Protocol):
    async def complete(
        self, spec: ModelSpec, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> dict[str, Any]: ...


class Judging:
    def __init__(
        self,
        provider: Completer,
        prices: PriceTable,
        record: Callable[[LedgerRecord], None],
        add_feedback: AddFeedback | None,
        concurrency: int = 2,
        max_pending: int = 100,
        rng: random.Random | None = None,
    ) -> None:
        self._provider, self._prices, self._record, self._add = provider, prices, record, add_feedback
        self._gate = asyncio.Semaphore(concurrency)
        self._max_pending = max_pending
        self._rng = rng or random.Random()
        self._pending: set[asyncio.Task[None]] = set()

    def wants(self, judge: Judge | None, answered: ModelSpec | None) -> bool:
        """Whether to grade this answer: the policy judges, its model is below the judged tier, the sample says
        so, and there is room."""
        return (
            judge is not None
            and self._add is not None
            and answered is not None
            and answered.tier < judge.below_tier
            and len(self._pending) < self._max_pending
            and self._rng.random() < judge.sample
        )

    def submit(
        self, judge: ModelSpec, policy: str, request_id: str, request: list[dict[str, Any]], answer: str
    ) -> None:
        """Grade `answer` to `request` with the `judge` model, in the background."""
        task = asyncio.create_task(self._grade(judge, policy, request_id, request, answer))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for the grading in progress (tests; a shutdown cancels it instead, and books what was spent)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def _grade(
        self, judge: ModelSpec, policy: str, request_id: str, request: list[dict[str, Any]], answer: str
    ) -> None:
        messages = grading_messages(request, answer)
        rec = LedgerRecord(
            ts=time.time(),
            request_id=f"{request_id}:judge",
            policy=policy,
            requested_model=judge.name,
            routed_model=judge.name,
            tier=judge.tier,
            endpoint="judge",
        )
        started = time.perf_counter()
        reply = ""
        try:
            async with self._gate:
                body = await self._provider.complete(judge, messages, {"max_tokens": 4, "temperature": 0})
            choices = body.get("choices") or [{}]
            reply = str((choices[0].get("message") or {}).get("content") or "") if isinstance(choices[0], dict) else ""
            usage = usage_of(body)
            if usage is None:  # a server that reports none: estimated, as for any answer
                asked, said = content_tokens(messages), estimate_tokens(reply)
                usage, rec.usage_estimated = Usage(math.ceil(asked), math.ceil(said)), True
            rec.prompt_tokens, rec.completion_tokens = usage.prompt_tokens, usage.completion_tokens
            rec.cost_usd = self._prices.cost(judge.name, usage)
        except UpstreamError as e:
            rec.status, rec.error_type = e.status, "upstream_error"
            log.warning("judge %s could not grade %s: %s", judge.name, request_id, e)
            return
        except BaseException:
            rec.status, rec.error_type = 499, "client_closed"  # cancelled (the worker stopping)
            raise
        finally:
            rec.latency_ms = (time.perf_counter() - started) * 1000
            self._record(rec)
        score = grade(reply)
        if score is None:
            log.warning("judge %s gave no 1-10 grade for %s: %r", judge.name, request_id, reply[:80])
            return
        assert self._add is not None
        try:
            await run_in_threadpool(self._add, request_id, score, f"judge:{judge.name}")
        except Exception as e:  # the ledger is down: this label is lost, the request and the judge call are not
            log.warning("could not store the judge's grade of %s: %s", request_id, e)
