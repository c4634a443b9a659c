"""The semantic cache's vectors: exact cosine search, in process, bounded per scope and in scopes.

Redis 7 here has no vector search, so vectors live in the worker. A scope (policy, model, system prompt and
parameters) holds at most `per_scope` entries in a ring (the oldest is overwritten); at most `scopes` scopes
are kept (least recently used go). Search is one matrix-vector product. Measured (bench/semantic.py, one core):
2,000 entries per scope (the default) 3 MB and 0.07 ms a search; 10,000: 15 MB, 0.6 ms; 100,000: 146 MB and
14 ms a search, as much as a cache miss's own overhead, which is why the bound exists.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from classifiers.base import Matrix


@dataclass
class _Scope:
    vecs: Matrix
    texts: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    next: int = 0


@dataclass(frozen=True)
class Match:
    similarity: float
    text: str
    key: str


class ScopedIndex:
    def __init__(self, dim: int, per_scope: int = 2000, scopes: int = 1000) -> None:
        self.dim, self.per_scope, self.max_scopes = dim, per_scope, scopes
        self._scopes: OrderedDict[str, _Scope] = OrderedDict()

    def add(self, scope: str, vec: Matrix, text: str, key: str) -> None:
        s = self._scopes.get(scope)
        if s is None:
            s = self._scopes[scope] = _Scope(np.zeros((self.per_scope, self.dim), dtype=np.float32))
            while len(self._scopes) > self.max_scopes:
                self._scopes.popitem(last=False)
        self._scopes.move_to_end(scope)
        if key in s.keys:  # refreshing an entry: overwrite in place
            i = s.keys.index(key)
        elif len(s.keys) < self.per_scope:
            i = len(s.keys)
            s.keys.append(key)
            s.texts.append(text)
        else:
            i, s.next = s.next, (s.next + 1) % self.per_scope
        s.vecs[i], s.texts[i], s.keys[i] = vec, text, key

    def search(self, scope: str, vec: Matrix) -> Match | None:
        s = self._scopes.get(scope)
        if s is None or not s.keys:
            return None
        self._scopes.move_to_end(scope)
        sims = s.vecs[: len(s.keys)] @ vec
        i = int(np.argmax(sims))
        return Match(float(sims[i]), s.texts[i], s.keys[i])

    def __len__(self) -> int:
        return sum(len(s.keys) for s in self._scopes.values())
