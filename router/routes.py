"""Which of a policy's routes a prompt matches, given its similarity to each route's examples (router/policy.py:
Route). Pure: the embeddings and their cosines are computed by the caller."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from router.policy import Route


@dataclass(frozen=True)
class RouteMatch:
    name: str
    tier: int
    similarity: float  # the cosine with the route's nearest example


def match(routes: Sequence[Route], similarities: Sequence[float], turns: int) -> RouteMatch | None:
    """The route whose nearest example is most similar to the prompt, among those at or above their own
    `min_similarity` (`similarities[i]` belongs to `routes[i]`) that are read at the conversation's `turns` (its
    number of user turns); the first in the file's order on a tie."""
    if len(routes) != len(similarities):
        raise ValueError(f"{len(routes)} routes but {len(similarities)} similarities")
    best: RouteMatch | None = None
    for r, sim in zip(routes, similarities, strict=True):
        if r.max_turns is not None and turns > r.max_turns:
            continue
        if sim >= r.min_similarity and (best is None or sim > best.similarity):
            best = RouteMatch(r.name, r.tier, float(sim))
    return best
