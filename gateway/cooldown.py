"""Which models (or servers of a model) routing passes over for now because their calls keep failing: a circuit
breaker per server, keyed as gateway/balancer.py names them (a one-server model by its name).

A model whose calls fail `failures` times within `window_s` (outages, timeouts, rate limits, its own auth errors;
see `UpstreamError.model_fault`) is skipped by routing for `cooldown_s`, so requests stop paying a timeout or an
error round trip on it before their fallback answers. When the cooldown ends the model is tried again on probation:
its next failure starts another cooldown at once, a success clears it. The state lives in one worker (each learns
from its own calls, as each pays for them) and survives a policy reload. Under `tiergate serve --workers N` the
workers also pass each other the cooldowns they start (`shared` / `adopt`, through the metrics snapshots every
second: gateway/app.py), so a server one worker found down is passed over by all within about a second, rather than
each worker paying its own failures first.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.provider import UpstreamError
from router.policy import Cooldown

log = logging.getLogger("tiergate.cooldown")

_NONE: frozenset[str] = frozenset()
_LONGEST_WAIT_S = 3600.0  # a Retry-After beyond an hour is more likely a mistake than a plan


@dataclass
class _Model:
    failures: deque[float] = field(default_factory=deque)  # monotonic times of recent failures
    until: float = 0.0  # monotonic end of the current cooldown; 0 = none
    probation: bool = False  # the last cooldown ended and no call has succeeded since
    started: int = 0  # cooldowns begun, for /metrics
    last_error: str = ""
    own: bool = False  # the current cooldown began here (shared with the other workers), not adopted from one
    since_epoch: float = 0.0  # wall time the current cooldown began


@dataclass(frozen=True)
class CoolingDown:
    """One model's cooldown as /v1/models and /readyz show it."""

    model: str
    until_epoch: float
    reason: str


class Cooldowns:
    def __init__(
        self,
        settings: Cooldown,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings  # replaced by a policy reload; the counts carry over
        self._clock, self._wall = clock, wall
        self._models: dict[str, _Model] = {}
        self._cooling: frozenset[str] = _NONE
        self._next_expiry = 0.0
        self.on_start: Callable[[str, float, str], None] | None = None  # (server, seconds, last error): alerts
        self._answered: dict[str, float] = {}  # server -> wall time of its last answer here

    def cooling(self) -> frozenset[str]:
        """The models to pass over now. Called for every routed request, so it is a comparison when none is."""
        if self._cooling and self._clock() >= self._next_expiry:
            now = self._clock()
            for name in self._cooling:
                m = self._models[name]
                if m.until <= now:
                    m.until, m.probation = 0.0, True
                    log.info("model %s: cooldown over, trying it again", name)
            self._refresh()
        return self._cooling

    def failed(self, err: UpstreamError, server: str | None = None, unchecked: bool = False) -> None:
        """A call failed; `server` is the key of the server it went to (gateway/balancer.py), by default the
        model's name. `unchecked`: the request carried parameters, content parts or tool calls the gateway passed on
        without knowing them (gateway/protocol.py: carries_unchecked). A 500 to such a request is not counted:
        llama-server answers some of its own parameters' bad values (`reasoning_format: "nonsense"`, `grammar` beside
        `json_schema`), a `video_url` part and a `custom` tool call with a 500, and counted, a few such requests
        cooled the local model down for every client. Fully checked requests still count a sick server's 500s."""
        s = self.settings
        if s.failures == 0 or not err.model_fault or (unchecked and err.status == 500):
            return
        now = self._clock()
        name = server or err.model
        m = self._models.setdefault(name, _Model())
        m.last_error = f"HTTP {err.status}: {err.message}"[:200]
        if m.until > now:
            return  # already cooling (a call that began before it did)
        if err.retry_after_s and err.status in (429, 503):
            # The server said when to come back: until then every call would be refused too.
            wait = min(err.retry_after_s, _LONGEST_WAIT_S)
            m.failures.clear()
            m.until, m.probation, m.started = now + wait, False, m.started + 1
            m.own, m.since_epoch = True, self._wall()
            log.warning("model %s: cooling down for %gs, as its Retry-After asks (%s)", name, wait, m.last_error)
            self._refresh()
            if self.on_start is not None:
                self.on_start(name, wait, m.last_error)
            return
        m.failures.append(now)
        while m.failures and m.failures[0] <= now - s.window_s:
            m.failures.popleft()
        if m.probation or len(m.failures) >= s.failures:
            n = len(m.failures)
            m.failures.clear()
            m.until, m.probation, m.started = now + s.cooldown_s, False, m.started + 1
            m.own, m.since_epoch = True, self._wall()
            log.warning(
                "model %s: cooling down for %gs after %s (last: %s)",
                name,
                s.cooldown_s,
                f"{n} failures within {s.window_s:g}s" if n >= s.failures else "failing again on probation",
                m.last_error,
            )
            self._refresh()
            if self.on_start is not None:
                self.on_start(name, s.cooldown_s, m.last_error)

    def succeeded(self, server: str) -> None:
        """A call answered. That also ends a cooldown early: a request naming the model goes to it regardless."""
        self._answered[server] = self._wall()  # a cooldown another worker began before this is not taken up
        m = self._models.get(server)
        if m is None or not (m.failures or m.probation or m.until):
            return
        if m.probation or m.until:
            log.info("model %s: answering again", server)
        m.failures.clear()
        m.probation = False
        if m.until:
            m.until = 0.0
            self._refresh()

    def status(self) -> list[CoolingDown]:
        """The models cooling down now, with when each cooldown ends (wall clock) and why it began."""
        now, wall = self._clock(), self._wall()
        return [
            CoolingDown(name, wall + (self._models[name].until - now), self._models[name].last_error)
            for name in sorted(self.cooling())
        ]

    def shared(self) -> list[list[Any]]:
        """The cooldowns this worker began and that are still running, for the other workers:
        [server, until (epoch s), began (epoch s), last error]."""
        now, wall = self._clock(), self._wall()
        return [
            [name, wall + (m.until - now), m.since_epoch, m.last_error]
            for name in self.cooling()
            if (m := self._models[name]).own
        ]

    def adopt(self, entries: list[list[Any]]) -> None:
        """Cooldowns other workers began (their `shared()`): each server is passed over here too, until the same
        end, unless it already is for longer or has answered here since that cooldown began."""
        now, wall = self._clock(), self._wall()
        changed = False
        for name, until_epoch, since_epoch, reason in entries:
            m = self._models.setdefault(str(name), _Model())
            until = now + (float(until_epoch) - wall)
            if until <= max(now, m.until) or float(since_epoch) <= self._answered.get(str(name), 0.0):
                continue
            m.until, m.probation, m.own, m.since_epoch = until, False, False, float(since_epoch)
            m.last_error = str(reason)
            log.info("model %s: cooling down for %.0fs, as another worker found (%s)", name, until - now, reason)
            changed = True
        if changed:
            self._refresh()

    def started(self) -> dict[str, int]:
        """Cooldowns begun per model since the worker started."""
        return {name: m.started for name, m in self._models.items() if m.started}

    def _refresh(self) -> None:
        now = self._clock()
        active = {name: m.until for name, m in self._models.items() if m.until > now}
        self._cooling = frozenset(active) if active else _NONE
        self._next_expiry = min(active.values(), default=0.0)
