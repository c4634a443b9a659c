"""The fitted complexity model: logistic regression over [embedding, scalar features], stored as plain JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from classifiers.base import Assessment, Complexity, Encoder, Matrix
from classifiers.features import SCALAR_NAMES, clip, scalars

ARTIFACT_FORMAT = "tiergate-linear-v1"


@dataclass(frozen=True)
class LinearComplexityModel:
    """score = sigmoid(w · [embedding, scalars] + b). JSON, not pickle: an artifact can't run code when loaded."""

    weights: Matrix
    bias: float
    encoder_name: str
    meta: Mapping[str, Any]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LinearComplexityModel:
        if d.get("format") != ARTIFACT_FORMAT:
            raise ValueError(f"not a {ARTIFACT_FORMAT} artifact (format={d.get('format')!r})")
        if list(d["scalar_features"]) != list(SCALAR_NAMES):
            raise ValueError(f"artifact features {d['scalar_features']} differ from this code's {SCALAR_NAMES}")
        w = np.asarray(d["weights"], dtype=np.float32)
        return cls(w, float(d["bias"]), str(d["encoder"]), dict(d.get("meta", {})))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": ARTIFACT_FORMAT,
            "encoder": self.encoder_name,
            "scalar_features": list(SCALAR_NAMES),
            "weights": [round(float(x), 7) for x in self.weights],
            "bias": round(self.bias, 7),
            "meta": dict(self.meta),
        }

    def score_features(self, x: Matrix) -> list[float]:
        z = x @ self.weights + self.bias
        return [float(v) for v in 1.0 / (1.0 + np.exp(-z))]


def featurize(encoder: Encoder, texts: Sequence[str], turns: Sequence[int]) -> Matrix:
    clipped = [clip(t) for t in texts]
    return with_scalars(encoder.encode(clipped), clipped, turns)


def with_scalars(embeddings: Matrix, clipped: Sequence[str], turns: Sequence[int]) -> Matrix:
    """The model's input: each clipped text's embedding, then its scalar features."""
    return np.hstack([embeddings, scalars(clipped, turns)]).astype(np.float32)


class ComplexityClassifier:
    """Encoder + fitted model: texts in, complexity scores out. Synchronous; the gateway runs it off the loop."""

    def __init__(self, encoder: Encoder, model: LinearComplexityModel) -> None:
        expected = encoder.dim + len(SCALAR_NAMES)
        if model.weights.shape != (expected,):
            raise ValueError(f"artifact has {model.weights.shape[0]} weights, encoder needs {expected}")
        self.encoder = encoder
        self.model = model

    def score_batch(self, texts: Sequence[str], turns: Sequence[int] | None = None) -> list[Complexity]:
        return [Complexity(a.score) for a in self.assess_batch(texts, turns)]

    def assess_batch(self, texts: Sequence[str], turns: Sequence[int] | None = None) -> list[Assessment]:
        """Scores with the embeddings they were computed from (featurize's steps, the embeddings kept)."""
        if not texts:
            return []
        t = list(turns) if turns is not None else [1] * len(texts)
        clipped = [clip(x) for x in texts]
        vecs = self.encoder.encode(clipped)
        scores = self.model.score_features(with_scalars(vecs, clipped, t))
        return [Assessment(s, v) for s, v in zip(scores, vecs, strict=True)]
