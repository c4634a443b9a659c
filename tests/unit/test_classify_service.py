"""gateway/classify.py: embeddings requests share the encoder with routing without holding it for their whole length."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np

from classifiers.base import Matrix
from classifiers.model import LinearComplexityModel
from gateway.classify import ClassifierService, embedding_chunks
from tests.fakes.encoder import HashEncoder


def test_chunks_keep_order_and_bound_texts_and_characters() -> None:
    texts = [f"{i:03d}" + "x" * (i % 7) * 10 for i in range(200)]
    chunks = embedding_chunks(texts, max_texts=16, max_chars=200)
    assert [t for c in chunks for t in c] == texts
    assert all(1 <= len(c) <= 16 and (len(c) == 1 or sum(map(len, c)) <= 200) for c in chunks)
    assert embedding_chunks(["a" * 500, "b"], max_chars=200) == [["a" * 500], ["b"]]  # a long text goes alone
    assert embedding_chunks([]) == []


class GatedEncoder(HashEncoder):
    """Records each call's texts; the first call waits until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []
        self.started, self.gate = threading.Event(), threading.Event()

    def encode(self, texts: Sequence[str]) -> Matrix:
        self.calls.append(list(texts))
        if len(self.calls) == 1:
            self.started.set()
            assert self.gate.wait(30), "the test never opened the gate"
        return super().encode(texts)


async def test_a_prompt_to_route_waits_for_one_chunk_of_a_long_embeddings_request_not_all_of_it() -> None:
    enc = GatedEncoder()
    svc = ClassifierService(enc, LinearComplexityModel(np.zeros(enc.dim + 4, dtype=np.float32), 0.0, enc.name, {}))
    try:
        texts = [f"document {i} " + "words " * 400 for i in range(40)]  # ~2.4k characters each: 3 a chunk
        embedding = asyncio.create_task(svc.embed(texts))
        assert await asyncio.to_thread(enc.started.wait, 30)
        scoring = asyncio.create_task(svc.score("Route me, please."))
        for _ in range(30_000):  # until the prompt's batch is in the pool's queue (after max_wait), chunk 1 running
            if svc.batcher.batch_sizes:
                break
            await asyncio.sleep(0.001)
        enc.gate.set()
        vecs = await embedding
        await scoring
    finally:
        svc.close()
    assert len(vecs) == 40 and np.allclose(vecs, enc.encode(texts))  # the same vectors, in order
    chunks = embedding_chunks(texts)
    assert len(chunks) == 14
    routed = next(i for i, call in enumerate(enc.calls) if any("Route me" in t for t in call))
    # Right after the chunk that was being encoded, ahead of the other 13.
    assert routed == 1 and enc.calls[0] == chunks[0] and enc.calls[2:-1] == chunks[1:]
