"""Interfaces shared by the classifier's parts: the encoder seam and the scored result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]


class Encoder(Protocol):
    """Turns texts into L2-normalised sentence embeddings, one row per text."""

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """How many tokens of a text `encode` reads; it ignores the rest."""
        ...

    def encode(self, texts: Sequence[str]) -> Matrix: ...

    def count_tokens(self, text: str) -> int:
        """The text's length in the encoder's tokens, special ones included, past `max_tokens` too."""
        ...


@dataclass(frozen=True)
class Complexity:
    """`score`: estimated probability that the cheapest tier's answer is not good enough (higher = harder)."""

    score: float


@dataclass(frozen=True)
class Assessment:
    """A prompt's complexity score with the embedding it was computed from (which the policy's routes also read)."""

    score: float
    embedding: Matrix
