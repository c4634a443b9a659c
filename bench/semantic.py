"""Semantic cache precision and recall against the similarity threshold, with and without the near-miss guard.

    .venv/bin/python -m bench.semantic

On bench/data/semantic_pairs.jsonl: 50 paraphrase pairs that should hit and 50 near-misses (negation, numbers,
dates, names, units, antonyms) that must not. A pair "hits" when cosine >= threshold (and, guarded, when
classifiers.nearmiss.compatible agrees). Precision = right hits / all hits; recall = right hits / 50.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import gateway  # noqa: F401  (offline environment variables)
from classifiers.nearmiss import compatible
from gateway.encoders import TorchEncoder

PAIRS = Path(__file__).parent / "data" / "semantic_pairs.jsonl"


def table() -> list[tuple[float, float, float, float, float]]:
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()]
    enc = TorchEncoder()
    a, b = enc.encode([r["a"] for r in rows]), enc.encode([r["b"] for r in rows])
    cos = (a * b).sum(axis=1)
    want = np.asarray([r["should_hit"] for r in rows])
    guard = np.asarray([compatible(r["a"], r["b"]) for r in rows])
    out = []
    for t in np.arange(0.70, 0.99, 0.02):
        res = [float(t)]
        for g in (np.ones_like(guard), guard):
            hit = (cos >= t) & g
            tp = int((hit & want).sum())
            res += [tp / max(1, int(hit.sum())) if hit.any() else 1.0, tp / int(want.sum())]
        out.append(tuple(res))  # type: ignore[arg-type]
    return out  # type: ignore[return-value]


def scaling() -> list[tuple[int, float, float]]:
    """Search time and memory of one scope of the in-process index at growing sizes (random unit vectors)."""
    import time

    from classifiers.semantic_index import ScopedIndex

    rng = np.random.default_rng(0)
    out = []
    for n in (2_000, 10_000, 100_000):
        idx = ScopedIndex(384, per_scope=n)
        vecs = rng.standard_normal((n, 384)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        for i in range(n):
            idx.add("s", vecs[i], "", str(i))
        q = vecs[0]
        ts = []
        for _ in range(50):
            t = time.perf_counter()
            idx.search("s", q)
            ts.append(time.perf_counter() - t)
        out.append((n, float(np.median(ts) * 1000), n * 384 * 4 / 2**20))
    return out


def main() -> None:
    print("| threshold | precision, cosine only | recall | precision, with guard | recall |\n|---|---|---|---|---|")
    for t, p0, r0, p1, r1 in table():
        print(f"| {t:.2f} | {p0:.3f} | {r0:.2f} | {p1:.3f} | {r1:.2f} |")
    print("\n| entries in one scope | search p50 (ms) | vectors (MB) |\n|---|---|---|")
    for n, ms, mb in scaling():
        print(f"| {n:,} | {ms:.3f} | {mb:.0f} |")


if __name__ == "__main__":
    main()
