"""The classifier as a gateway service: loads the artifact, scores prompts in a worker thread pool.

Encoding is CPU work of milliseconds; doing it on the event loop would stall every other request, so it runs in
a small bounded pool (torch releases the GIL inside its kernels).
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from classifiers.base import Encoder
from classifiers.model import ComplexityClassifier, LinearComplexityModel


def load_model(path: Path) -> LinearComplexityModel:
    return LinearComplexityModel.from_dict(json.loads(path.read_text(encoding="utf-8")))


class ClassifierService:
    def __init__(self, encoder: Encoder, model: LinearComplexityModel, threads: int = 1) -> None:
        self.encoder = encoder
        self.classifier = ComplexityClassifier(encoder, model)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tiergate-classify")

    async def score(self, text: str, turns: int = 1) -> float:
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._pool, self.classifier.score_batch, [text], [turns])
        return result[0].score

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Embeddings for the /v1/embeddings endpoint and the token count it bills."""

        def work() -> tuple[list[list[float]], int]:
            vecs = self.encoder.encode(texts)
            return vecs.tolist(), sum(self.encoder.count_tokens(t) for t in texts)

        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
