"""How a policy's routes match, against their `min_similarity`: small talk they should take, and what they must not.

    .venv/bin/python -m bench.routes [--config config/tiergate.yaml] [--policy default] [--route NAME ...]
                                     [--per-file 500]

The sets, none of them among the routes' examples: bench/data/smalltalk.jsonl holds 30 hand-written small-talk turns
(to be matched; 14 of them closings, read as a later turn of a conversation, the rest as its opening), 12 tasks that
open with a greeting or are about greetings (not to be matched: a task matched would go to the route's cheap tier),
and 20 short replies later in a conversation that carry its work on ("ok", "go ahead", "great, now write the
tests"; not to be matched: they ask for more of what came before). Real prompts are sampled from each file in
../shared/data (`--per-file` each, seed 7), benchmark and chat tasks, none small talk. Each text is embedded by the
gateway's default encoder as it embeds a prompt, and matched as the gateway matches it (router/routes.py), at the
routes' own thresholds and with every route's threshold set in turn to each value of a range.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from pathlib import Path

import gateway  # noqa: F401  (offline environment variables)
from classifiers.features import clip, prompt_from_messages
from classifiers.route_examples import RouteExamples
from gateway.datasets import read_jsonl
from gateway.encoders import make_encoder
from gateway.policy_file import load
from gateway.settings import PACKAGE_ROOT, Settings
from router.policy import Route
from router.routes import match

SETS = Path(__file__).parent / "data" / "smalltalk.jsonl"
DATA = PACKAGE_ROOT.parent / "shared" / "data"
THRESHOLDS = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
LATER = 2  # the user turns of a conversation's later reply


def real_prompts(per_file: int) -> list[tuple[str, int]]:
    """(text to classify, user turns) of prompts sampled from each data file."""
    rng = random.Random(7)
    out: list[tuple[str, int]] = []
    for path in sorted(DATA.glob("*.jsonl")):
        rows = list(read_jsonl(path))
        for r in rng.sample(rows, min(per_file, len(rows))):
            out.append((r["prompt"], 1) if "prompt" in r else prompt_from_messages(r["messages"]))
    return out


def matched(routes: Sequence[Route], sims: Sequence[list[float]], turns: Sequence[int]) -> list[str | None]:
    found = [match(routes, s, n) for s, n in zip(sims, turns, strict=True)]
    return [None if m is None else m.name for m in found]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=PACKAGE_ROOT / "config" / "tiergate.yaml")
    ap.add_argument("--policy", default="default")
    ap.add_argument("--route", nargs="*", help="these of the policy's routes (default: all)")
    ap.add_argument("--per-file", type=int, default=500)
    args = ap.parse_args()
    routes = [r for r in load(args.config).policies[args.policy].routes if not args.route or r.name in args.route]
    settings = Settings()
    enc = make_encoder(settings.encoder)
    examples = RouteExamples.embed(enc, [r.examples for r in routes])
    rows = list(read_jsonl(SETS))
    sets = {
        "small talk, opening": [(r["text"], 1) for r in rows if r["small_talk"] and not r["later"]],
        "small talk, later turn": [(r["text"], LATER) for r in rows if r["small_talk"] and r["later"]],
        "greeting tasks": [(r["text"], 1) for r in rows if not r["small_talk"] and not r["later"]],
        "replies that carry on": [(r["text"], LATER) for r in rows if not r["small_talk"] and r["later"]],
        "real prompts": real_prompts(args.per_file),
    }
    sims = {k: [examples.similarities(v) for v in enc.encode([clip(t) for t, _ in v])] for k, v in sets.items()}
    turns = {k: [n for _, n in v] for k, v in sets.items()}
    print(
        f"policy {args.policy!r}: "
        + "; ".join(
            f"route {r.name!r} ({len(r.examples)} examples, min_similarity {r.min_similarity}, max_turns {r.max_turns})"
            for r in routes
        )
        + f"; encoder {settings.encoder}\n"
    )
    print("| threshold | " + " | ".join(f"{k} matched (of {len(v)})" for k, v in sets.items()) + " |")
    print("|---" * (len(sets) + 1) + "|")
    for t in (None, *THRESHOLDS):
        at = routes if t is None else [r.model_copy(update={"min_similarity": t}) for r in routes]
        counts = [sum(m is not None for m in matched(at, sims[k], turns[k])) for k in sets]
        print(f"| {'as configured' if t is None else f'{t:.2f}'} | " + " | ".join(map(str, counts)) + " |")
    for k in ("greeting tasks", "replies that carry on", "real prompts"):
        readable = [
            (max(sim for sim, r in zip(s, routes, strict=True) if r.max_turns is None or n <= r.max_turns), t)
            for s, n, (t, _) in zip(sims[k], turns[k], sets[k], strict=True)
            if any(r.max_turns is None or n <= r.max_turns for r in routes)
        ]
        if readable:
            top, text = max(readable)
            print(f"\nHighest cosine among {k} with a route read at their turn: {top:.3f} ({text[:80]!r})")
    wrong = [
        (t, m)
        for k in ("greeting tasks", "replies that carry on", "real prompts")
        for (t, _), m in zip(sets[k], matched(routes, sims[k], turns[k]), strict=True)
        if m is not None
    ]
    print(
        "\nMatched as configured though they must not be: "
        + (", ".join(f"{t[:60]!r} -> {m}" for t, m in wrong) or "none")
    )


if __name__ == "__main__":
    main()
