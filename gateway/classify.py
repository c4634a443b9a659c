"""The classifier as a gateway service: loads the artifact, scores prompts in a worker thread pool.

Encoding is CPU work of milliseconds; doing it on the event loop would stall every other request, so it runs in
a small bounded pool (torch and onnxruntime release the GIL inside their kernels), micro-batched across requests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from classifiers.base import Assessment, Encoder, Matrix
from classifiers.model import ComplexityClassifier, LinearComplexityModel
from gateway.batching import MicroBatcher

# One chunk of an embeddings request: at most this many texts, and this many characters (~2,000 tokens, tens of ms of
# encoding on one core) unless a single text is longer.
CHUNK_TEXTS = 64
CHUNK_CHARS = 8_000


def embedding_chunks(texts: list[str], max_texts: int = CHUNK_TEXTS, max_chars: int = CHUNK_CHARS) -> list[list[str]]:
    """`texts` in order, cut into runs of at most `max_texts` texts and `max_chars` characters (a longer text alone)."""
    chunks: list[list[str]] = []
    chunk: list[str] = []
    size = 0
    for t in texts:
        if chunk and (len(chunk) == max_texts or size + len(t) > max_chars):
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(t)
        size += len(t)
    if chunk:
        chunks.append(chunk)
    return chunks


def load_model(path: Path) -> LinearComplexityModel:
    return LinearComplexityModel.from_dict(json.loads(path.read_text(encoding="utf-8")))


class ClassifierService:
    def __init__(
        self,
        encoder: Encoder,
        model: LinearComplexityModel,
        threads: int = 1,
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
        inline_if: Callable[[], bool] | None = None,
    ) -> None:
        self.encoder = encoder
        self.classifier = ComplexityClassifier(encoder, model)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tiergate-classify")
        # Each prompt's embedding comes back with its score: a policy's routes read it (router/routes.py), so a
        # routed prompt is encoded once either way.
        self.batcher = MicroBatcher(
            self.classifier.assess_batch, self._pool, max_batch, max_wait_ms, threads, inline_if
        )

    async def score(self, text: str, turns: int = 1) -> float:
        return (await self.batcher.score(text, turns)).score

    async def assess(self, text: str, turns: int = 1) -> Assessment:
        return await self.batcher.score(text, turns)

    async def count_tokens(self, texts: list[str]) -> list[int]:
        """Each text's length in the encoder's tokens, untruncated: off the event loop, and a chunk at a time as
        `embed` encodes, so that prompts to route are not held behind 2,048 long texts' tokenising either."""
        loop = asyncio.get_running_loop()

        def work(chunk: list[str]) -> list[int]:
            return [self.encoder.count_tokens(t) for t in chunk]

        counts: list[int] = []
        for chunk in embedding_chunks(texts):
            counts += await loop.run_in_executor(self._pool, work, chunk)
        return counts

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Embeddings for the /v1/embeddings endpoint (each of a text's first `encoder.max_tokens` tokens).

        Encoded a chunk at a time (`embedding_chunks`), each handed to the encoder's pool when the one before is
        done, so prompts that routing needs scored meanwhile queue behind one chunk, not the whole request: one
        request of 2,048 long inputs held the encoder ~54 s, and every `auto` request on that worker waited for it."""
        loop = asyncio.get_running_loop()

        def work(chunk: list[str]) -> list[list[float]]:
            return self.encoder.encode(chunk).tolist()  # type: ignore[no-any-return]

        vecs: list[list[float]] = []
        for chunk in embedding_chunks(texts):
            vecs += await loop.run_in_executor(self._pool, work, chunk)
        return vecs

    async def embed_one(self, text: str) -> Matrix:
        """One L2-normalised vector, off the event loop (the semantic cache's encoder)."""
        vecs: Matrix = await asyncio.get_running_loop().run_in_executor(self._pool, self.encoder.encode, [text])
        first: Matrix = vecs[0]
        return first

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
