"""How a policy's route matches, against its `min_similarity`: small talk it should take, and tasks it must not.

    .venv/bin/python -m bench.routes [--config config/tiergate.yaml] [--policy default] [--route small-talk]
                                     [--per-file 500]

Three sets, none of them the route's own examples: bench/data/smalltalk.jsonl, 30 hand-written small-talk turns (to
be matched) and 12 tasks that open with a greeting or are about greetings (not to be matched: a task matched would
go to the route's cheap tier); and real prompts sampled from each file in ../shared/data (`--per-file` each, seed
7), benchmark and chat tasks, none small talk. Each prompt is embedded by the gateway's default encoder as it
embeds a prompt, and its cosine with the route's nearest example is compared with a range of thresholds.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np

import gateway  # noqa: F401  (offline environment variables)
from classifiers.features import clip, prompt_from_messages
from classifiers.route_examples import RouteExamples
from gateway.datasets import read_jsonl
from gateway.encoders import make_encoder
from gateway.policy_file import load
from gateway.settings import PACKAGE_ROOT, Settings

SETS = Path(__file__).parent / "data" / "smalltalk.jsonl"
DATA = PACKAGE_ROOT.parent / "shared" / "data"
THRESHOLDS = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


def real_prompts(per_file: int) -> list[str]:
    rng = random.Random(7)
    out: list[str] = []
    for path in sorted(DATA.glob("*.jsonl")):
        rows = list(read_jsonl(path))
        for r in rng.sample(rows, min(per_file, len(rows))):
            out.append(r["prompt"] if "prompt" in r else prompt_from_messages(r["messages"])[0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=PACKAGE_ROOT / "config" / "tiergate.yaml")
    ap.add_argument("--policy", default="default")
    ap.add_argument("--route", default="small-talk")
    ap.add_argument("--per-file", type=int, default=500)
    args = ap.parse_args()
    route = next(r for r in load(args.config).policies[args.policy].routes if r.name == args.route)
    settings = Settings()
    enc = make_encoder(settings.encoder)
    examples = RouteExamples.embed(enc, [route.examples])
    rows = list(read_jsonl(SETS))
    real = real_prompts(args.per_file)
    texts = [r["text"] for r in rows] + real
    sims = np.asarray([examples.similarities(v)[0] for v in enc.encode([clip(t) for t in texts])])
    small = sims[: len(rows)][[r["small_talk"] for r in rows]]
    tasks = sims[: len(rows)][[not r["small_talk"] for r in rows]]
    other = sims[len(rows) :]
    print(
        f"route {route.name!r} of policy {args.policy!r}: {len(route.examples)} examples, min_similarity "
        f"{route.min_similarity}; encoder {settings.encoder}\n"
    )
    print(
        f"| threshold | small talk matched (of {len(small)}) | greeting tasks matched (of {len(tasks)}) "
        f"| real prompts matched (of {len(other)}) |"
    )
    print("|---|---|---|---|")
    for t in THRESHOLDS:
        print(
            f"| {t:.2f} | {int((small >= t).sum())} ({(small >= t).mean():.0%}) | {int((tasks >= t).sum())} | "
            f"{int((other >= t).sum())} |"
        )
    top = int(np.argmax(tasks))
    print(
        f"\nHighest cosine of a task: {tasks.max():.3f} "
        f"({[r['text'] for r in rows if not r['small_talk']][top]!r}); of a real prompt: {other.max():.3f}."
    )


if __name__ == "__main__":
    main()
