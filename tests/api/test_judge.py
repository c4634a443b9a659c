"""A policy's `judge` through the SDK against the fake upstream: the local model's answers (whole and streamed) are
graded by the judge model in the background, each grade is kept as a judgement of its request and each judge call
as a billed record of its own; answers of stronger models are not graded; export-labels turns the graded requests
into training rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import GatewayFactory, api_config, sdk, until
from tests.fakes.upstream import FakeUpstream

EASY = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2? [score=0.1]"}]
MEDIUM = [{"role": "user", "content": "Explain monads [score=0.5]"}]


def test_cheap_answers_are_graded_and_booked(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-fake")
    fresh_upstream.script("gpt-4o", reply="8")
    cfg = api_config(fresh_upstream.base_url)
    cfg["policies"]["default"]["judge"] = {"model": "gpt-4o", "sample": 1.0}
    cfg["policies"]["default"]["record_prompts"] = True
    ledger = tmp_path / "judged.sqlite3"
    server, svc = gateway_factory(cfg, ledger_url=str(ledger))
    client = sdk(server.url)
    whole = client.chat.completions.with_raw_response.create(model="auto", messages=EASY)
    assert whole.headers["x-tiergate-model"] == "local-small"
    with client.chat.completions.with_streaming_response.create(model="auto", messages=EASY, stream=True) as s:
        streamed = s.headers["x-request-id"]
        list(s.parse())
    assert (
        client.chat.completions.with_raw_response.create(model="auto", messages=MEDIUM).headers["x-tiergate-model"]
        == "flaky"
    )  # tier 1: not graded

    def judgements() -> list[tuple[str, float, str]]:
        rows = svc.ledger.reader.query("SELECT request_id, score, key_id FROM feedback")
        return [(str(r[0]), float(r[1]), str(r[2])) for r in rows]

    until(lambda: len(judgements()) == 2, "two grades")
    assert sorted(judgements()) == sorted(
        [
            (whole.headers["x-request-id"], pytest.approx(7 / 9), "judge:gpt-4o"),
            (streamed, pytest.approx(7 / 9), "judge:gpt-4o"),
        ]
    )
    graded = [r for r in fresh_upstream.received if r["model"] == "gpt-4o"]
    assert len(graded) == 2 and "What is 2+2?" in graded[0]["messages"][1]["content"]
    assert "echo: What is 2+2?" in graded[0]["messages"][1]["content"]  # the answer it grades
    until(lambda: len(svc.ledger.rows("endpoint = 'judge'")) == 2, "the judge calls booked")
    calls = svc.ledger.rows("endpoint = 'judge'")
    assert {r["request_id"] for r in calls} == {f"{whole.headers['x-request-id']}:judge", f"{streamed}:judge"}
    assert all(r["routed_model"] == "gpt-4o" and r["cost_usd"] > 0 and r["status"] == 200 for r in calls)

    out = tmp_path / "labels.jsonl"
    run = [sys.executable, "-m", "gateway.cli", "export-labels", "--ledger", str(ledger), "--out", str(out)]
    assert subprocess.run(run, capture_output=True, text=True, timeout=120).returncode == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 2 and all(r["scores"] == {"local-small": pytest.approx(7 / 9)} for r in rows)


def test_a_judge_that_fails_costs_a_record_and_no_grade(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-fake")
    fresh_upstream.script("gpt-4o", status=503)
    cfg = api_config(fresh_upstream.base_url)
    cfg["policies"]["default"]["judge"] = {"model": "gpt-4o", "sample": 1.0}
    server, svc = gateway_factory(cfg)
    sdk(server.url).chat.completions.create(model="auto", messages=EASY)
    until(lambda: len(svc.ledger.rows("endpoint = 'judge'")) == 1, "the failed judge call booked")
    (call,) = svc.ledger.rows("endpoint = 'judge'")
    assert call["status"] == 503 and call["cost_usd"] == 0.0
    assert svc.ledger.reader.query("SELECT COUNT(*) FROM feedback") == [(0,)]
