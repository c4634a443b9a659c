"""`tiergate train` on exported traffic beside a reference file of a known source, with the real encoder."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.train_cmd import train


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_weak_names_the_traffic_side_and_known_sources_keep_their_own(tmp_path: Path) -> None:
    hard = ["Prove that there are infinitely many primes of the form 4k+3.", "Write a lock-free queue in C++."]
    easy = ["Say hello to my friend.", "What colour is the sky?"]
    traffic = _write(
        tmp_path / "traffic.jsonl",
        [
            {"id": f"tiergate/tg-{i}", "prompt": f"{t} ({i})", "scores": {"local-small": float(t in easy)}}
            for i in range(6)
            for t in hard + easy
        ]
        + [{"id": "tiergate/tg-big", "prompt": "Anything", "scores": {"gpt-4o": 1.0}}],  # not a label for local
    )
    reference = _write(
        tmp_path / "rb.jsonl",
        [
            {
                "id": f"routerbench/{i}",
                "prompt": f"{t} [{i}]",
                "scores": {"mistralai/mixtral-8x7b-chat": float(t in easy), "gpt-4-1106-preview": 1.0},
            }
            for i in range(6)
            for t in hard + easy
        ],
    )
    out = tmp_path / "artifact.json"
    assert train([traffic, reference], out, "local-small", 1.0) == 0
    meta = json.loads(out.read_text())["meta"]
    assert meta["examples"] == {"custom": 24, "routerbench": 24}
    assert set(meta["validation"]) == {"leave_out_custom_auc", "leave_out_routerbench_auc"}
