"""An edited policy file takes effect in a running gateway without a restart: new policies, keys and limits; an
invalid edit changes nothing; cached answers of an unchanged policy stay cached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from gateway.auth import digest
from gateway.cache import MemoryStore
from tests.conftest import GatewayFactory, api_config, cache_settled, until
from tests.fakes.upstream import FakeUpstream

KEY = "tg-reload-test-key"


def _models(url: str, key: str | None = None) -> list[str]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    r = httpx.get(f"{url}/v1/models", headers=headers)
    return [m["id"] for m in r.json()["data"]] if r.status_code == 200 else []


def test_an_edited_policy_file_is_served_without_a_restart(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tiergate.yaml"
    cfg: dict[str, Any] = api_config(fresh_upstream.base_url)
    server, svc = gateway_factory(cfg, store=MemoryStore(100), watch=path)
    open_client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    q = [{"role": "user", "content": "the same question"}]
    open_client.chat.completions.create(model="mid", messages=q, temperature=0)  # stored in the cache
    cache_settled(svc)
    with pytest.raises(openai.NotFoundError):
        open_client.chat.completions.create(model="frugal", messages=q)

    # The operator adds a policy and a key with a limit, and saves.
    edited = {
        **cfg,
        "policies": {**cfg["policies"], "frugal": {"thresholds": [0.9, 0.95], "baseline_model": "gpt-4o"}},
        "keys": [{"name": "app", "sha256": digest(KEY), "rpm": 2}],
    }
    path.write_text(yaml.safe_dump(edited))
    until(lambda: "frugal" in _models(server.url, KEY), "the gateway to take the edited policy file")

    with pytest.raises(openai.AuthenticationError):  # keys are on now
        open_client.chat.completions.create(model="mid", messages=q)
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    again = client.chat.completions.with_raw_response.create(model="mid", messages=q, temperature=0)
    assert again.headers["x-tiergate-cache"] == "hit"  # the default policy did not change: its answers stand
    assert client.chat.completions.create(model="frugal", messages=q).choices[0].message.content
    with pytest.raises(openai.RateLimitError):  # the new key's limit: 2 a minute
        client.chat.completions.create(model="frugal", messages=q)

    # A broken save changes nothing: the gateway keeps serving the last valid policy.
    path.write_text(yaml.safe_dump(edited).replace("rpm: 2", "rpm: two"))
    until(lambda: "policy in force stays" in caplog.text, "the gateway to take the edited policy file")
    assert "frugal" in _models(server.url, KEY)
    assert svc.config.keys[0].rpm == 2
    records = svc.ledger.rows()
    assert [(r["policy"], r["status"], r["cache"]) for r in records] == [
        ("default", 200, "miss"),
        ("", 404, "bypass"),
        ("default", 200, "hit"),
        ("frugal", 200, "bypass"),
        ("frugal", 429, "bypass"),  # refused before routing, but under the policy it named (the 404 named none)
    ]
