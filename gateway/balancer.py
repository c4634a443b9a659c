"""Which server of a model a call goes to: a model with deployments spreads its calls over them in turn, passing
over those cooling down, and a call that fails on one tries the model's next before the next model.

Each server has a key for its cooldown: the model's name when it has one server (so a one-server model reads the
same everywhere), else `name#1`, `name#2`, ... in the order of the policy file (its own server first). Keys, not
addresses, are what /readyz and /metrics show: they may be public, the addresses behind them need not be.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.provider import api_key
from router.policy import ModelSpec, TiergateConfig

Server = tuple[str, ModelSpec]  # (cooldown key, the spec a call is made with)


class Deployments:
    def __init__(self, config: TiergateConfig, env: Mapping[str, str]) -> None:
        """Servers whose key variable is unset are left out, as models are."""
        self._servers: dict[str, tuple[Server, ...]] = {}
        for m in config.models:
            specs = m.expanded()
            keyed = [(m.name if len(specs) == 1 else f"{m.name}#{i + 1}", s) for i, s in enumerate(specs)]
            self._servers[m.name] = tuple((k, s) for k, s in keyed if api_key(s, env) is not None)
        self._turn: dict[str, int] = {}

    def keys(self, model: str) -> tuple[str, ...]:
        return tuple(k for k, _ in self._servers.get(model, ()))

    def order(self, model: ModelSpec, cooling: frozenset[str]) -> tuple[Server, ...]:
        """The servers to try for one call, in order: the next in turn first, the ones cooling down left out
        unless every one is (then all of them: the model was chosen, so it is tried)."""
        servers = self._servers.get(model.name) or ((model.name, model),)
        if len(servers) == 1:
            return servers
        i = self._turn.get(model.name, 0)
        self._turn[model.name] = (i + 1) % len(servers)
        turn = servers[i:] + servers[:i]
        if cooling:
            return tuple(s for s in turn if s[0] not in cooling) or turn
        return turn

    def cooling_models(self, cooling: frozenset[str]) -> frozenset[str]:
        """The models every server of which is cooling down: routing passes them over."""
        if not cooling:
            return cooling
        return frozenset(m for m, servers in self._servers.items() if servers and all(k in cooling for k, _ in servers))
