"""Short replies later in a conversation: scored alone, or with the user turns before them (features.scoring_text).

    .venv/bin/python -m bench.follow_ups [--per-file 700] [--seed 11]

No file in ../shared/data holds a conversation, so this builds two kinds from its prompts (Arena-Hard all 500,
`--per-file` sampled from MMLU and from LLMRouter), each labelled as `tiergate eval-router` labels a prompt ("the
source's weak model failed"):
- carry-on: the prompt, an assistant's offer, then one of bench/data/smalltalk.jsonl's 20 short replies that carry a
  conversation on ("ok", "go on", "great, now write the tests"). The label is the prompt's: the reply asks for more
  of the same work, and so assumes its difficulty.
- new task: another prompt, an assistant's answer, then the prompt. The label is the prompt's: a later turn that is
  a task of its own.
For each kind, ROC AUC of the shipped classifier's score against the label per source, and their mean: the last
user turn alone (what the gateway scored before session 26), the user turns always joined, joined only when the
last turn is shorter than a bar (a range of bars; the shipped rule is FOLLOW_UP_CHARS), and each prompt alone as a
single turn (the ceiling for carry-on). The classifier was trained on these sources, so every AUC here is higher
than a held-out one would be; the comparison between rows is the point.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

import gateway  # noqa: F401  (offline environment variables)
from bench.routes import DATA, SETS
from classifiers.features import FOLLOW_UP_CHARS, scored_prompt
from classifiers.labels import Example, examples
from classifiers.model import ComplexityClassifier
from gateway.classify import load_model
from gateway.datasets import read_jsonl
from gateway.encoders import make_encoder
from gateway.settings import Settings

BARS = (20, 40, 60, 100, 200)
OFFER = {"role": "assistant", "content": "Sure. Here is a first part; shall I go on?"}


def sample(per_file: int, rng: random.Random) -> list[Example]:
    out: list[Example] = []
    for name, n in (
        ("arena_hard_v01.jsonl", 500),
        ("mmlu_gpt4_vs_mixtral.jsonl", per_file),
        ("llmrouter_uiuc.jsonl", per_file),
    ):
        out += rng.sample(examples(read_jsonl(DATA / name)), n)
    return out


def chat(*user: str) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    for i, text in enumerate(user):
        msgs += [OFFER] if i else []
        msgs.append({"role": "user", "content": text})
    return msgs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-file", type=int, default=700)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    pool = sample(args.per_file, rng)
    replies = [r["text"] for r in read_jsonl(SETS) if r["later"] and not r["small_talk"]]
    settings = Settings()
    clf = ComplexityClassifier(make_encoder(settings.encoder), load_model(settings.classifier_artifact))
    prompts = [e.text for e in pool]
    labels = np.array([e.weak_fail for e in pool])
    sources = np.array([e.source for e in pool])
    reply = [rng.choice(replies) for _ in pool]
    before = [pool[(i + 1 + rng.randrange(len(pool) - 1)) % len(pool)].text for i in range(len(pool))]

    def scores(texts: Sequence[str], turns: int) -> np.ndarray[Any, np.dtype[np.float64]]:
        return np.array([c.score for c in clf.score_batch(list(texts), [turns] * len(texts))])

    def row(name: str, s: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        aucs = [float(roc_auc_score(labels[sources == k], s[sources == k])) for k in sorted(set(sources))]
        print(f"| {name} | " + " | ".join(f"{a:.3f}" for a in aucs) + f" | {np.mean(aucs):.3f} |")

    print(f"{len(pool)} prompts; encoder {settings.encoder}; shipped bar FOLLOW_UP_CHARS = {FOLLOW_UP_CHARS}\n")
    print("| scorer | " + " | ".join(sorted(set(sources))) + " | mean |")
    print("|---" * (len(set(sources)) + 2) + "|")
    row("each prompt alone, one turn (the ceiling for carry-on)", scores(prompts, 1))
    carry_joined = scores([f"{p}\n{r}" for p, r in zip(prompts, reply, strict=True)], 2)
    row("carry-on: the reply alone (before session 26)", scores(reply, 2))
    row("carry-on: the user turns joined", carry_joined)
    row(
        "carry-on: as shipped (scored_prompt)",
        scores([scored_prompt(chat(p, r))[0] for p, r in zip(prompts, reply, strict=True)], 2),
    )
    alone = scores(prompts, 2)
    joined = scores([f"{b}\n{p}" for b, p in zip(before, prompts, strict=True)], 2)
    row("new task: the prompt alone (before session 26)", alone)
    row("new task: the user turns joined", joined)
    for bar in BARS:
        short = np.array([len(p.strip()) < bar for p in prompts])
        row(
            f"new task: joined when the last turn is under {bar} characters ({short.sum()} prompts)",
            np.where(short, joined, alone),
        )
    row(
        "new task: as shipped (scored_prompt)",
        scores([scored_prompt(chat(b, p))[0] for b, p in zip(before, prompts, strict=True)], 2),
    )
    print(f"\nLongest reply in the carry-on set: {max(map(len, replies))} characters.")


if __name__ == "__main__":
    main()
