"""`tiergate eval-router` on a file with a known answer, with the real MiniLM encoder.

In both tasks the weak model fails exactly on multi-step proof requests and passes simple lookups; the strong
model passes everything. A router trained on one task must find that on the other: APGR well above random.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

EASY = ["What is the capital of {}?", "Spell the word {}.", "What colour is a {}?", "Say hi to {}."]
HARD = [
    "Prove rigorously, step by step, that the sequence defined by {} converges, and bound its rate.",
    "Derive a closed form for the recurrence in {} and prove it by strong induction.",
    "Formally prove the correctness of the algorithm {} using loop invariants and termination arguments.",
]
POOLED = "all groups, each held out"
NOUNS = ["France", "banana", "Tom", "tomato", "Peru", "river", "Kenya", "apple", "cloud", "Oslo", "lemon", "sky"]


def _rows() -> list[dict[str, object]]:
    rows = []
    for task in ("alpha", "beta"):
        for i in range(120):
            hard = i % 3 == 0
            tmpl = (HARD if hard else EASY)[i % (3 if hard else 4)]
            noun = f"{NOUNS[i % len(NOUNS)]} {task} {i}"
            rows.append(
                {
                    "id": f"syn/{task}/{i}",
                    "task": task,
                    "prompt": tmpl.format(noun),
                    "scores": {"weak-7b": 0.0 if hard else 1.0, "strong-xl": 1.0},
                }
            )
    return rows


def test_eval_router_finds_a_transferable_signal(tmp_path: Path) -> None:
    data = tmp_path / "syn.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in _rows()) + "\n")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "eval-router",
            "--data",
            str(data),
            "--strong",
            "strong-xl",
            "--weak",
            "weak-7b",
            "--out-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TIERGATE_CACHE": str(tmp_path / "cache")},
    )
    assert p.returncode == 0, p.stderr
    table = (tmp_path / "out" / "router-eval.md").read_text()
    rows = re.findall(r"^\| ([^|]+) \| (\d+) \| [\d.]+ \| [\d.]+ \| ([\w-]+) \| ([\d.]+) \|", table, re.M)
    apgr = {(g, r): float(v) for g, _, r, v in rows}
    # The pooled row ranks both tasks' prompts together, each scored by the routers fitted without its own task.
    assert {(g, int(n)) for g, n, _, _ in rows} == {("custom:alpha", 120), ("custom:beta", 120), (POOLED, 240)}
    for task in ("custom:alpha", "custom:beta", POOLED):
        assert apgr[(task, "random")] == 0.5
        assert apgr[(task, "oracle")] > 0.8
        assert apgr[(task, "tiergate-v1")] > 0.75, table
        assert apgr[(task, "logreg-embed")] > 0.75, table
    assert (tmp_path / "out" / "router-eval.png").stat().st_size > 10_000
