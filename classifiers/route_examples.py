"""The embeddings of a policy's route examples (router/policy.py: Route), and a prompt's cosine with each route's
nearest example: what router/routes.py decides on. Compute only; the gateway builds it when a policy is loaded."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from classifiers.base import Encoder, Matrix
from classifiers.features import clip


class RouteExamples:
    """One matrix of example embeddings per route, in the policy's order."""

    def __init__(self, per_route: Sequence[Matrix]) -> None:
        self._per_route = list(per_route)

    @classmethod
    def embed(cls, encoder: Encoder, examples: Sequence[Sequence[str]]) -> RouteExamples:
        """`examples[i]`: route i's texts, embedded as the classifier embeds a prompt (clipped the same way), in one
        encoder call."""
        flat = [clip(t) for texts in examples for t in texts]
        vecs = encoder.encode(flat) if flat else np.zeros((0, encoder.dim), dtype=np.float32)
        bounds = np.cumsum([0, *(len(t) for t in examples)])
        return cls([vecs[a:b] for a, b in pairwise(bounds)])

    def __len__(self) -> int:
        return len(self._per_route)

    def similarities(self, embedding: Matrix) -> list[float]:
        """Per route, the cosine of `embedding` (L2-normalised) with its nearest example."""
        return [float(np.max(m @ embedding)) for m in self._per_route]
