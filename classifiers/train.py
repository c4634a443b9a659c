"""Fit the linear complexity model on featurised examples, each source weighted equally.

Each source also gets an indicator column while fitting. It absorbs that source's base rate, so the shared
weights learn what makes a prompt hard *within* its source rather than which source a prompt looks like
(a chat prompt is not hard because Arena-Hard's chat prompts were). At inference the indicators are gone and the
bias is that of an average source.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from classifiers.base import Matrix
from classifiers.model import LinearComplexityModel


def source_weights(sources: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Each source gets the same total weight, so 14k MMLU rows don't drown 500 real chat prompts."""
    counts = Counter(sources)
    k = len(counts)
    return np.asarray([len(sources) / (k * counts[s]) for s in sources], dtype=np.float64)


def fit(
    x: Matrix,
    labels: Sequence[int],
    sources: Sequence[str],
    encoder_name: str,
    c: float = 0.5,
    meta: Mapping[str, Any] | None = None,
) -> LinearComplexityModel:
    y = np.asarray(labels, dtype=np.int64)
    if len(set(y.tolist())) < 2:
        raise ValueError("training needs both labels (some prompts the weak model fails, some it passes)")
    names = sorted(set(sources))
    indicators = np.asarray([[float(s == n) for n in names] for s in sources], dtype=np.float32)
    clf = LogisticRegression(C=c, max_iter=3000)
    clf.fit(np.hstack([x, indicators]), y, sample_weight=source_weights(sources))
    d = x.shape[1]
    return LinearComplexityModel(
        weights=clf.coef_[0][:d].astype(np.float32),
        bias=float(clf.intercept_[0] + clf.coef_[0][d:].mean()),
        encoder_name=encoder_name,
        meta=dict(meta or {}),
    )
