"""Features cached per text on disk, so training and evaluation on any subset embed each prompt once per machine."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from classifiers.base import Encoder, Matrix
from classifiers.model import featurize
from gateway.settings import cache_dir


def _key(text: str, turns: int) -> str:
    return hashlib.sha256(f"{turns}\x00{text}".encode()).hexdigest()[:24]


class FeatureCache:
    """Append-only shards (`<n>.npy` rows + `<n>.keys`), loaded whole: 23k rows of 388 floats is 36 MB."""

    def __init__(self, encoder: Callable[[], Encoder], name: str, root: Path | None = None) -> None:
        self.dir = (root or cache_dir()) / "features" / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self._make_encoder = encoder  # loaded only when some text is not cached yet
        self._encoder: Encoder | None = None
        self._rows: dict[str, Matrix] = {}
        for keys in sorted(self.dir.glob("*.keys")):
            mat = np.load(keys.with_suffix(".npy"))
            for k, row in zip(keys.read_text().split(), mat, strict=True):
                self._rows[k] = row

    def features(self, texts: Sequence[str], turns: Sequence[int]) -> Matrix:
        keys = [_key(t, n) for t, n in zip(texts, turns, strict=True)]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self._rows}.items())
        if missing:
            idx = [i for _, i in missing]
            if self._encoder is None:
                self._encoder = self._make_encoder()
            new = featurize(self._encoder, [texts[i] for i in idx], [turns[i] for i in idx])
            shard = self.dir / f"{len(list(self.dir.glob('*.keys'))):05d}"
            np.save(shard.with_suffix(".npy"), new)
            shard.with_suffix(".keys").write_text("\n".join(k for k, _ in missing))  # last: marks the shard whole
            for (k, _), row in zip(missing, new, strict=True):
                self._rows[k] = row
        return np.stack([self._rows[k] for k in keys]).astype(np.float32)
