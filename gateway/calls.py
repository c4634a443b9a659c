"""How a routing decision's chain of models is called: each model's servers in the balancer's order (least busy
first, gateway/balancer.py), a slot on the server (gateway/inflight.py), the policy's retries of a passing failure
(router/policy.py: Retry), then the next model; every call's outcome feeds the cooldowns (gateway/cooldown.py)."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.balancer import Deployments
from gateway.cooldown import Cooldowns
from gateway.errors import InvalidRequest, Unavailable, UpstreamFailed
from gateway.inflight import Busy, Slot
from gateway.provider import UpstreamError
from gateway.trace import Trace
from router.policy import ModelSpec, Retry
from router.select import Decision

T = TypeVar("T")


class Calls:
    def __init__(self, deployments: Deployments, cooldowns: Cooldowns, retry: Retry) -> None:
        self.deployments, self.cooldowns, self.retry = deployments, cooldowns, retry
        self._jitter = random.Random()  # spreads the retry waits of calls that failed together

    @staticmethod
    def _exhausted(errors: list[UpstreamError], unchecked: bool = False) -> UpstreamFailed | InvalidRequest:
        if errors and all(e.context_exceeded for e in errors):
            # Every server tried counted the prompt longer than its window, though the router's estimate
            # (router/tokens.py) let it through: a tokenizer that splits the text finer than the estimate assumes. The
            # client's to shorten, as OpenAI reports it; not an outage to retry (a 502 would be), and no cooldown
            # (router's own check: router/select.py).
            said = "; ".join(f"{e.model}: {e.message[:200]}" for e in errors)
            return InvalidRequest(
                f"The request is too long for every model tried ({said}).", "messages", "context_length_exceeded"
            )
        # A server's own words are passed on only for a 500 to a request carrying what the gateway passed on unchecked
        # (gateway/cooldown.py): there they are likely about the request (llama-server: "Unknown reasoning format:
        # x"), and the client can act on them. Elsewhere they are the operator's business (a 401 names a key).
        detail = "; ".join(
            f"{e.model}: HTTP {e.status}" + (f" ({e.message[:200]})" if unchecked and e.status == 500 else "")
            for e in errors
        )
        status = 504 if errors and all(e.status in (408, 504) for e in errors) else 502
        hint = ""
        if unchecked and any(e.status == 500 for e in errors):
            hint = (
                " The request carries parameters or content the gateway passes on unchecked; a server may refuse them."
            )
        return UpstreamFailed(f"Every candidate model failed upstream ({detail}).{hint}", status)

    @staticmethod
    def _client_fault(e: UpstreamError) -> InvalidRequest:
        return InvalidRequest(
            f"The upstream model {e.model} rejected the request: {e.message}", None, "upstream_rejected"
        )

    async def first_success(
        self, trace: Trace, decision: Decision, attempt: Callable[[ModelSpec], Awaitable[T]]
    ) -> tuple[T, Slot]:
        """Try the chain in order; a retryable failure moves on (after the policy's retries of that model, if any),
        the client's own fault stops at once. Returns the result with the slot its call holds on its server
        (gateway/inflight.py), for the caller to release when the answer has been read: at once for a whole answer,
        when the stream ends for a stream."""
        errors: list[UpstreamError] = []
        full: list[Busy] = []
        retry = self.retry
        too_long = 0  # the largest context window of a model that counted the prompt longer than it
        for i, spec in enumerate(decision.chain + decision.weaker):
            if i >= len(decision.chain) and spec.capabilities.context_window <= too_long:
                continue  # best effort is for models that failed, not for a prompt too long for a window this size
            for n in itertools.count():
                outcome = await self._try_model(trace, spec, attempt, errors, full)
                if not isinstance(outcome, UpstreamError):
                    if outcome is None:
                        break  # full, and no slot freed in time: the next model
                    if spec.tier < decision.min_tier:
                        trace.degraded = True  # one of `weaker` answered (router/select.py): every adequate one failed
                    return outcome
                if outcome.context_exceeded:
                    too_long = max(too_long, spec.capabilities.context_window)
                if not (outcome.model_fault and outcome.status in retry.on_status):
                    break
                wait = retry.wait_s(n, outcome.retry_after_s, self._jitter.random())
                if wait is None:
                    break
                await asyncio.sleep(wait)
        if full and not errors:
            raise trace.fail(
                Unavailable(
                    f"Every candidate model stayed at its max_concurrency ({'; '.join(map(str, full))}).",
                    None,
                    "model_busy",
                )
            )
        raise trace.fail(self._exhausted(errors, trace.unchecked))

    async def _try_model(
        self,
        trace: Trace,
        spec: ModelSpec,
        attempt: Callable[[ModelSpec], Awaitable[T]],
        errors: list[UpstreamError],
        full: list[Busy],
    ) -> tuple[T, Slot] | UpstreamError | None:
        """One round over a model's servers: the result and its slot, the last retryable failure (each is added to
        `errors`), or None if the model stayed full for its whole wait (added to `full`)."""
        inflight = self.deployments.inflight
        last: UpstreamError | None = None
        for server, target in self.deployments.order(spec, self.cooldowns.cooling()):  # its other servers first
            slot = inflight.try_acquire(server)
            if slot is None:
                try:
                    # The least busy server is full: so are the others. Wait for it; if none frees up in time, go
                    # on to the next model (the wait is not the model's failure: no cooldown, no retry).
                    slot = await inflight.acquire(server, spec.timeout_s)
                except Busy as b:
                    full.append(b)
                    trace.fallbacks.append(spec.name)
                    return None
            try:
                result = await attempt(target)
            except UpstreamError as e:
                slot.release()
                self.cooldowns.failed(e, server, trace.unchecked)
                if not e.retryable:
                    raise trace.fail(self._client_fault(e)) from e
                errors.append(e)
                trace.fallbacks.append(spec.name)
                last = e
                continue
            except BaseException:
                slot.release()
                # Cancelled mid-call (the client left, the server stopping): the record names the model that was
                # asked, and the pipeline books what its prompt cost.
                trace.routed, trace.server = spec, server
                raise
            self.cooldowns.succeeded(server)
            trace.routed, trace.server = spec, server
            return result, slot
        return last
