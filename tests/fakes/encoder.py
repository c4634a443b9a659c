"""A fake encoder: fixed, deterministic vectors from a text's hash, for tests that must not load MiniLM."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from classifiers.base import Matrix


class HashEncoder:
    name = "hash-encoder"

    def __init__(self, dim: int = 8) -> None:
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return 256  # as MiniLM's; count_tokens counts words

    def encode(self, texts: Sequence[str]) -> Matrix:
        rows = []
        for t in texts:
            v = np.frombuffer(hashlib.sha256(t.encode()).digest()[: self._dim * 4], dtype=np.uint32).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self._dim)

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2
