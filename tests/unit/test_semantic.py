"""The near-miss guard and the bounded index. Guard examples are not the benchmark's pairs."""

from __future__ import annotations

import numpy as np
import pytest

from classifiers.nearmiss import compatible, critical
from classifiers.semantic_index import ScopedIndex


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Show me flights to Rome in July.", "Show me flights to Rome in June."),
        ("Is it legal to park here?", "Is it not legal to park here?"),
        ("Convert 3 liters to gallons.", "Convert 4 liters to gallons."),
        ("Draft a reply to Alice.", "Draft a reply to Bob."),
        ("Which country has the highest GDP?", "Which country has the lowest GDP?"),
        ("Ship it on Friday.", "Ship it on Saturday."),
        ("Price in dollars, please: 20 euros", "Price in euros, please: 20 dollars"),
        ("Things to do before a marathon", "Things to do after a marathon"),
    ],
)
def test_guard_vetoes_near_misses(a: str, b: str) -> None:
    assert not compatible(a, b), (critical(a), critical(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I bake sourdough bread?", "What's the way to bake a sourdough loaf?"),
        ("Tell me about Rome.", "Can you tell me about Rome?"),
        ("What's 12 plus 30?", "What is 12 + 30?"),
        ("Why doesn't my code compile?", "Why does my code not compile?"),
    ],
)
def test_guard_lets_paraphrases_through(a: str, b: str) -> None:
    assert compatible(a, b), (critical(a), critical(b))


def test_sentence_initial_capitals_are_not_names() -> None:
    assert critical("Please list three fruits. Then sort them.") == []
    # A name opening a sentence is skipped too (it can't be told from a capitalised word): a known limitation.
    assert critical("Send it to Paris. Paris is nice.") == ["paris"]


def _unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def test_index_finds_nearest_in_scope_only() -> None:
    idx = ScopedIndex(dim=3, per_scope=10)
    idx.add("s1", _unit([1, 0, 0]), "x", "kx")
    idx.add("s1", _unit([0, 1, 0]), "y", "ky")
    idx.add("s2", _unit([0, 0, 1]), "z", "kz")
    m = idx.search("s1", _unit([0.1, 1, 0]))
    assert m is not None and m.key == "ky" and m.similarity > 0.99
    assert idx.search("s3", _unit([1, 0, 0])) is None
    assert idx.search("s2", _unit([1, 0, 0])).key == "kz"  # type: ignore[union-attr]


def test_index_is_bounded_per_scope_and_in_scopes() -> None:
    idx = ScopedIndex(dim=2, per_scope=3, scopes=2)
    for i in range(5):
        idx.add("a", _unit([1, i]), f"t{i}", f"k{i}")
    assert len(idx) == 3  # the ring overwrote the two oldest
    m = idx.search("a", _unit([1, 0]))
    assert m is not None and m.key not in ("k0", "k1")
    idx.add("b", _unit([1, 0]), "b", "kb")
    idx.add("c", _unit([1, 0]), "c", "kc")  # the least recently used scope ("a") goes
    assert idx.search("a", _unit([1, 0])) is None and len(idx) == 2
    idx.add("b", _unit([0, 1]), "b2", "kb")  # same key: refreshed in place, not duplicated
    assert len(idx) == 2
