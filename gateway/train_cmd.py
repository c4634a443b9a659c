"""`tiergate train`: label outcome files, embed, validate honestly, fit on all, write the artifact with its metrics.

Validation is leave-one-source-out (train on the other sources, score the held-out one) and, for RouterBench,
its original test rows, each as ROC AUC against "the source's weak model failed"; the numbers go into the
artifact's `meta` and the model card quotes them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

from sklearn.metrics import roc_auc_score

from classifiers.base import Encoder, Matrix
from classifiers.labels import Example, examples, source_of
from classifiers.train import fit
from gateway.datasets import BadInput, labelling, read_jsonl
from gateway.encoders import MINILM_NAME
from gateway.feature_cache import FeatureCache
from gateway.onnx_encoder import OnnxEncoder


def _training_encoder() -> Encoder:
    # ONNX fp32 gives torch's vectors (cosine 1.0000 on 2046 prompts, docs/benchmarks.md) at twice the speed, on
    # every core; the cache is keyed by the model's name, so either encoder's rows serve the other.
    return OnnxEncoder(quantized=False, threads=os.cpu_count() or 1)


def features(exs: list[Example]) -> Matrix:
    """Features for these examples; each text is embedded once per machine (see gateway.feature_cache)."""
    cache = FeatureCache(_training_encoder, MINILM_NAME)
    return cache.features([e.text for e in exs], [e.turns for e in exs])


def auc(y: list[int], p: list[float]) -> float | None:
    return round(float(roc_auc_score(y, p)), 4) if len(set(y)) == 2 else None


def train(paths: list[Path], out: Path, weak: str | None, c: float) -> int:
    exs: list[Example] = []
    for p in paths:
        rows = list(read_jsonl(p))
        # `--weak` names the weak side of files of unknown origin (e.g. exported traffic); the known sources keep
        # their own, so one command can train on both.
        with labelling(p):
            exs.extend(examples(rows, weak if any(source_of(r) is None for r in rows) else None))
    if not exs:
        print("no labelled rows found", file=sys.stderr)
        return 1
    if len({e.label for e in exs}) < 2:
        # Checked before the embeddings are computed (minutes, for a large file), and said in one line: it was a
        # ValueError's traceback from the fit.
        said = "failed" if exs[0].label else "passed"
        raise BadInput(
            f"{', '.join(map(str, paths))}: the weak model {said} every one of the {len(exs)} labelled prompts, so"
            " there is nothing to tell apart: training needs prompts of both kinds"
        )
    counts = Counter(e.source for e in exs)
    print(f"{len(exs)} labelled prompts: {dict(counts)}", file=sys.stderr)
    encoder_name = MINILM_NAME
    t0 = time.perf_counter()
    x = features(exs)
    print(f"features {x.shape} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    y = [e.label for e in exs]
    src = [e.source for e in exs]
    metrics: dict[str, object] = {}
    if len(counts) > 1:
        for held in sorted(counts):
            tr = [i for i, s in enumerate(src) if s != held]
            te = [i for i, s in enumerate(src) if s == held]
            if len({y[i] for i in tr}) < 2:  # the other sources hold one kind only: no model to validate
                metrics[f"leave_out_{held}_auc"] = None
                continue
            m = fit(x[tr], [y[i] for i in tr], [src[i] for i in tr], encoder_name, c)
            metrics[f"leave_out_{held}_auc"] = auc([exs[i].weak_fail for i in te], m.score_features(x[te]))
    test = [i for i, e in enumerate(exs) if e.split.endswith("test") and e.source == "routerbench"]
    held_out = set(test)
    tr = [i for i in range(len(exs)) if i not in held_out]
    if test and len({y[i] for i in tr}) > 1:
        m = fit(x[tr], [y[i] for i in tr], [src[i] for i in tr], encoder_name, c)
        metrics["routerbench_test_rows_auc"] = auc([exs[i].weak_fail for i in test], m.score_features(x[test]))
    for k, v in metrics.items():
        print(f"  {k}: {v}", file=sys.stderr)
    meta = {
        "trained_at": time.strftime("%Y-%m-%d"),
        "data": [p.name for p in paths],
        "examples": dict(counts),
        "positive_rate": {s: round(sum(y[i] for i in range(len(y)) if src[i] == s) / n, 4) for s, n in counts.items()},
        "c": c,
        "validation": metrics,
    }
    model = fit(x, y, src, encoder_name, c, meta)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(model.to_dict(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0
