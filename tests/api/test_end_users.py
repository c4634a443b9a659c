"""`end_user_budget` through the SDK against the fake upstream: the user who spent it is refused (429, no retry) on
chat and embeddings, another user and requests without a user are served, and a second gateway on the same ledger
holds the same budget."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.conftest import GatewayFactory, api_config, sdk
from tests.fakes.upstream import FakeUpstream

Q = [{"role": "user", "content": "a question of a few words"}]


def test_a_user_past_the_budget_is_refused_and_others_are_served(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, tmp_path: Path
) -> None:
    cfg = api_config(fresh_upstream.base_url)
    cfg["end_user_budget"] = {"usd": 1e-7, "per": "1d"}  # one answer of "mid" spends more
    ledger = str(tmp_path / "shared.sqlite3")
    one, svc = gateway_factory(cfg, ledger_url=ledger)
    client = sdk(one.url)
    client.chat.completions.create(model="mid", messages=Q, user="alice")
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="mid", messages=Q, user="alice", stream=True)
    assert e.value.code == "insufficient_quota" and "'alice' has spent" in e.value.message
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="all-minilm-l6-v2", input=["x"], user="alice")
    assert client.chat.completions.create(model="mid", messages=Q, user="bob").choices
    assert client.chat.completions.create(model="mid", messages=Q).choices  # no user: not held to it
    assert client.embeddings.create(model="all-minilm-l6-v2", input=["x"], user="carol").data
    rows = svc.ledger.rows()
    assert [(r["end_user"], r["status"]) for r in rows] == [
        ("alice", 200),
        ("alice", 429),
        ("alice", 429),
        ("bob", 200),
        (None, 200),
        ("carol", 200),
    ]
    assert rows[1]["policy"] == "default" and rows[1]["stream"]

    two, _ = gateway_factory(cfg, ledger_url=ledger)  # another gateway on the same ledger
    with pytest.raises(openai.RateLimitError):
        sdk(two.url).chat.completions.create(model="mid", messages=Q, user="alice")
    assert fresh_upstream.calls_for("mid") == 3  # alice's first, bob's, the userless one
