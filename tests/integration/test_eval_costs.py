"""`tiergate eval-costs` on a three-model file with a known answer, with the real MiniLM encoder.

The cheap model answers lookups and fails proofs; the mid model also fails proofs; the dear model passes all. A
router that learned "proofs need the dear model" on two tasks matches the dear model's quality on the third for
a fraction of its cost, where mixing models at random needs nearly all of it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.integration.test_eval_router import EASY, HARD, NOUNS

COST = {"small": 1e-5, "mid": 1e-4, "big": 1e-3}


def _rows() -> list[dict[str, object]]:
    rows = []
    for task in ("alpha", "beta", "gamma"):
        for i in range(90):
            hard = i % 3 == 0
            tmpl = (HARD if hard else EASY)[i % (3 if hard else 4)]
            rows.append(
                {
                    "id": f"syn/{task}/{i}",
                    "task": task,
                    "orig_split": "test" if i % 5 == 0 else "train",
                    "prompt": tmpl.format(f"{NOUNS[i % len(NOUNS)]} {task} {i}"),
                    "scores": {"small": 0.0 if hard else 1.0, "mid": 0.0 if hard else 1.0, "big": 1.0},
                    "cost_usd": COST,
                }
            )
    return rows


def test_eval_costs_reports_aiq_and_the_cost_to_match_the_dear_model(tmp_path: Path) -> None:
    data = tmp_path / "syn.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in _rows()) + "\n")
    cmd = [sys.executable, "-m", "gateway.cli", "eval-costs", "--data", str(data), "--reference", "big"]
    p = subprocess.run(
        [*cmd, "--out-dir", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "TIERGATE_CACHE": str(tmp_path / "cache")},
    )
    assert p.returncode == 0, p.stderr
    table = (tmp_path / "out" / "cost-quality.md").read_text()
    got: dict[tuple[str, str], tuple[float, str]] = {}
    for split, router, aiq, match in re.findall(r"\| ([^|]+) \| \d+ \| ([^|]+) \| ([\d.]+) \| ([^|]+) \|", table):
        got[(split.strip(), router.strip())] = (float(aiq), match.strip())
    for split in ("task gamma held out", "original test rows"):
        tier_aiq, tier_match = got[(split, "tiergate-v1")]
        rand_aiq, rand_match = got[(split, "single models (random mix)")]
        oracle_aiq, _ = got[(split, "oracle")]
        assert oracle_aiq >= tier_aiq > rand_aiq + 0.05, table
        share = int(re.search(r"\((\d+)%\)", tier_match).group(1))  # type: ignore[union-attr]
        assert share < 60, table  # the dear model's quality for well under its cost
        assert int(re.search(r"\((\d+)%\)", rand_match).group(1)) > 90, table  # type: ignore[union-attr]
    assert (tmp_path / "out" / "cost-quality.png").stat().st_size > 10_000
