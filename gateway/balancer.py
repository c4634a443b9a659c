"""Which server of a model a call goes to: a model with deployments sends each call to the least busy of them
(fewest calls in flight from this worker, a full one last; ties in turn, turns shared by `weight`), or with
`balance: weighted` to whichever's turn it is by weight alone (a canary's 10% stays 10% under load), passing over
those cooling down; a call that fails on one tries the model's next before the next model.

Each server has a key for its cooldown: the model's name when it has one server (so a one-server model reads the
same everywhere), else `name#1`, `name#2`, ... in the order of the policy file (its own server first). Keys, not
addresses, are what /readyz and /metrics show: they may be public, the addresses behind them need not be.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.inflight import InFlight
from gateway.provider import api_key
from router.policy import ModelSpec, TiergateConfig

Server = tuple[str, ModelSpec]  # (cooldown key, the spec a call is made with)


class Deployments:
    def __init__(self, config: TiergateConfig, env: Mapping[str, str], inflight: InFlight | None = None) -> None:
        """Servers whose key variable is unset are left out, as models are. `inflight` is the worker's count of
        calls per server; its caps become this policy's."""
        self._servers: dict[str, tuple[Server, ...]] = {}
        for m in config.models:
            keyed = zip(self.server_keys(m), m.expanded(), strict=True)
            self._servers[m.name] = tuple((k, s) for k, s in keyed if api_key(s, env) is not None)
        self._turn: dict[str, list[float]] = {}  # each model's servers' credit in the weighted turns
        self.inflight = inflight or InFlight()
        caps = {k: s.max_concurrency for servers in self._servers.values() for k, s in servers if s.max_concurrency}
        self.inflight.configure(caps)
        self._overflow = frozenset(m.name for m in config.models if m.when_full == "overflow" and self._servers[m.name])

    @staticmethod
    def server_keys(model: ModelSpec) -> list[str]:
        """The keys of every server of the model, key variable set or not, in the order of `expanded()`."""
        n = len(model.deployments) + 1
        return [model.name] if n == 1 else [f"{model.name}#{i + 1}" for i in range(n)]

    def keys(self, model: str) -> tuple[str, ...]:
        return tuple(k for k, _ in self._servers.get(model, ()))

    def capacity(self, model: str) -> int | None:
        """The calls the model's servers take at once from this worker: the sum of their caps (a deployment's own,
        or the model's), as its calls in flight are summed over them. None when one of them has no cap, or none has
        its key."""
        caps = [s.max_concurrency for _, s in self._servers.get(model, ())]
        return sum(c for c in caps if c is not None) if caps and None not in caps else None

    def order(self, model: ModelSpec, cooling: frozenset[str]) -> tuple[Server, ...]:
        """The servers to try for one call, in order: the next in turn first, the ones cooling down left out
        unless every one is (then all of them: the model was chosen, so it is tried)."""
        servers = self._servers.get(model.name) or ((model.name, model),)
        if len(servers) == 1:
            return servers
        i = self._next_turn(model.name, servers)
        turn = servers[i:] + servers[:i]
        if cooling:
            turn = tuple(s for s in turn if s[0] not in cooling) or turn
        busy = self.inflight
        if model.balance == "weighted":
            return tuple(sorted(turn, key=lambda s: busy.full(s[0])))  # stable: the turn decides, full ones last
        return tuple(sorted(turn, key=lambda s: (busy.full(s[0]), busy.count(s[0]))))  # stable: ties keep the turn

    def _next_turn(self, model: str, servers: tuple[Server, ...]) -> int:
        """Whose turn it is: smooth weighted round robin (as nginx balances upstreams), so with weights 3 and 1 the
        turns go a a b a, spread out rather than bunched; with equal weights, plain turns in the file's order."""
        credit = self._turn.setdefault(model, [0.0] * len(servers))
        weights = [s.weight for _, s in servers]
        for j, w in enumerate(weights):
            credit[j] += w
        i = max(range(len(servers)), key=credit.__getitem__)  # the first of equals: the file's order
        credit[i] -= sum(weights)
        return i

    def full_models(self) -> frozenset[str]:
        """Models with `when_full: overflow` every server of which is full now: routing passes them over."""
        if not self._overflow:
            return frozenset()
        busy = self.inflight
        return frozenset(m for m in self._overflow if all(busy.full(k) for k, _ in self._servers[m]))

    def cooling_models(self, cooling: frozenset[str]) -> frozenset[str]:
        """The models every server of which is cooling down: routing passes them over."""
        if not cooling:
            return cooling
        return frozenset(m for m, servers in self._servers.items() if servers and all(k in cooling for k, _ in servers))
