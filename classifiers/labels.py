"""Turn rows of the shared outcome schema into training examples: text, turns, labels, source and task.

The four sources grade different models, so labels are read relative to each source:
- `label` (what v1 trains on): 1 when at least half of the row's models were not good enough (score < 0.5), a
  graded "hard for this source's models" that uses every model's outcome, not one model's;
- `weak_fail` (what evaluation uses): 1 when the source's weak model failed.
Source base rates (Arena-Hard prompts fail far more often than MMLU ones) are removed in training, not here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from classifiers.features import scored_prompt

# (id prefix, weak model, strong model): the weak side is a mid-size open model, the strong side GPT-4 class
# (for llmrouter_uiuc, which has none, the Nemotron 51B, as its README suggests).
KNOWN_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("routerbench", "mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"),
    ("routellm/mmlu", "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"),
    ("arena_hard", "gpt-3.5-turbo-0125", "gpt-4-0314"),
    ("llmrouter_uiuc", "llama-3.1-8b-instruct", "llama-3.1-nemotron-51b-instruct"),
)
PASS = 0.5
# Outcomes that measure answer extraction, not ability (the data README says to leave them out).
EXCLUDED_MODELS = frozenset({"llama3-chatqa-1.5-70b", "llama3-chatqa-1.5-8b"})


class BadRows(ValueError):
    """Rows that cannot be labelled: no model's outcome in any of them, or an outcome that is not a number."""


def outcomes(row: Mapping[str, Any]) -> dict[str, float]:
    """A row's `scores` (model -> outcome in [0, 1]) as numbers, those left out (None, EXCLUDED_MODELS) dropped."""
    scores = row.get("scores") or {}
    if not isinstance(scores, Mapping):
        raise BadRows(f"row {row.get('id', '?')}: `scores` is not an object of model -> outcome")
    out: dict[str, float] = {}
    for m, v in scores.items():
        if v is None or m in EXCLUDED_MODELS:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise BadRows(f"row {row.get('id', '?')}: the outcome of {m} is {v!r}, not a number")
        out[m] = float(v)
    return out


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    turns: int
    label: int
    weak_fail: int
    source: str
    task: str
    split: str


def source_of(row: Mapping[str, Any]) -> tuple[str, str, str] | None:
    rid = str(row.get("id", ""))
    return next((s for s in KNOWN_SOURCES if rid.startswith(s[0])), None)


def weakest_model(rows: list[Mapping[str, Any]]) -> str:
    """For a file of unknown origin: the model with the lowest mean score is the weak side."""
    totals: dict[str, list[float]] = {}
    for r in rows:
        for m, s in outcomes(r).items():
            totals.setdefault(m, []).append(s)
    if not totals:
        raise BadRows("no row has a model's outcome in `scores`, so there are no labels to learn from")
    return min(totals, key=lambda m: (sum(totals[m]) / len(totals[m]), m))


def row_text(row: Mapping[str, Any]) -> tuple[str, int]:
    """What the gateway would score for the row (a conversation's text as in classifiers/features.py:
    scoring_text). RouterBench rows carry their question without the few-shot examples in `query`: real traffic
    looks so."""
    if isinstance(row.get("messages"), list):
        return scored_prompt(row["messages"])
    return str(row.get("query") or row.get("prompt") or ""), 1


def examples(rows: Iterable[Mapping[str, Any]], weak: str | None = None) -> list[Example]:
    """Label rows; `weak` overrides the per-source weak model (needed for files of unknown origin)."""
    rows = list(rows)
    fallback_weak = weak or (weakest_model(rows) if any(source_of(r) is None for r in rows) else "")
    out: list[Example] = []
    for r in rows:
        src = source_of(r)
        name, weak_model = (src[0], weak or src[1]) if src else ("custom", fallback_weak)
        scores = outcomes(r)
        score = scores.get(weak_model)
        text, turns = row_text(r)
        if score is None or not text:
            continue
        fail_share = sum(v < PASS for v in scores.values()) / len(scores)
        out.append(
            Example(
                id=str(r.get("id", len(out))),
                text=text,
                turns=turns,
                label=int(fail_share >= 0.5),
                weak_fail=int(score < PASS),
                source=name,
                task=str(r.get("task") or r.get("category") or ""),
                split=str(r.get("orig_split", "")),
            )
        )
    return out
