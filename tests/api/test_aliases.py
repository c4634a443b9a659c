"""Apps that keep the model names they were written for (`model="gpt-4o"`) are routed all the same, through the
policy file's `aliases`; the ledger keeps what they asked for, /v1/models lists the names."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from gateway.auth import digest
from tests.conftest import GatewayFactory, api_config, sdk
from tests.fakes.upstream import FakeUpstream

STRICT_KEY = "tg-strict-secret"


def _cfg(base_url: str, **extra: Any) -> dict[str, Any]:
    cfg = api_config(base_url)
    cfg["aliases"] = {"gpt-4o": "default", "gpt-3.5-turbo": "mid", "gpt-4*": "default", "claude-*": "strict"}
    return {**cfg, **extra}


def test_an_app_asking_for_gpt_4o_is_routed_and_the_ledger_keeps_what_it_asked(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, svc = gateway_factory(_cfg(fresh_upstream.base_url))
    client = sdk(server.url)
    easy = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert easy.headers["x-tiergate-model"] == "local-small" and easy.headers["x-tiergate-policy"] == "default"
    assert "x-tiergate-score" in easy.headers  # classified, not sent to gpt-4o as named
    hard = client.chat.completions.with_raw_response.create(
        model="gpt-4-turbo-preview", messages=[{"role": "user", "content": "prove it [score=0.9]"}]
    )
    assert hard.headers["x-tiergate-model"] == "gpt-4o"
    named = client.chat.completions.with_raw_response.create(
        model="gpt-3.5-turbo", messages=[{"role": "user", "content": "x [score=0.9]"}]
    )
    assert named.headers["x-tiergate-model"] == "mid" and "x-tiergate-score" not in named.headers
    with client.responses.with_streaming_response.create(model="gpt-4o", input="hi", stream=True) as s:
        assert s.headers["x-tiergate-model"] == "local-small"
        list(s.iter_lines())
    rows = svc.ledger.rows()
    assert [(r["requested_model"], r["routed_model"]) for r in rows] == [
        ("gpt-4o", "local-small"),
        ("gpt-4-turbo-preview", "gpt-4o"),
        ("gpt-3.5-turbo", "mid"),
        ("gpt-4o", "local-small"),
    ]
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="llama-3", messages=[{"role": "user", "content": "hi"}])
    assert "gpt-3.5-turbo" in e.value.message  # the 404 lists the aliases among the names to use


def test_models_lists_aliases_and_a_restricted_key_is_routed_by_its_own_policy(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    cfg = _cfg(fresh_upstream.base_url, keys=[{"name": "s", "sha256": digest(STRICT_KEY), "policies": ["strict"]}])
    server, _ = gateway_factory(cfg)
    auth = {"authorization": f"Bearer {STRICT_KEY}"}
    data = {m["id"]: m for m in httpx.get(f"{server.url}/v1/models", headers=auth).json()["data"]}
    assert data["gpt-3.5-turbo"]["kind"] == "alias" and data["gpt-3.5-turbo"]["routes_to"] == "mid"
    assert data["gpt-4o"]["kind"] == "chat" and data["gpt-4o"]["routes_to"] == "strict"  # not its `default`
    assert "gpt-4*" not in data and "claude-*" not in data  # patterns are not names
    one = httpx.get(f"{server.url}/v1/models/claude-3-opus", headers=auth).json()
    assert (one["kind"], one["routes_to"]) == ("alias", "strict")
    r = sdk(server.url, STRICT_KEY).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert r.headers["x-tiergate-policy"] == "strict"  # the alias's `default` is not this key's to use


def test_an_app_asking_for_openai_embeddings_gets_the_model_an_alias_names(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    aliases = {"text-embedding-3-small": "all-minilm-l6-v2", "text-embedding-*": "all-minilm-l6-v2", "gpt-*": "default"}
    server, svc = gateway_factory(_cfg(fresh_upstream.base_url, aliases=aliases))
    client = sdk(server.url)
    for asked in ("text-embedding-3-small", "text-embedding-ada-002"):
        emb = client.embeddings.create(model=asked, input=["How do I reset my password?"])
        assert emb.model == "all-minilm-l6-v2"  # the model that answered, as for chat
        assert (
            emb.data[0].embedding
            == client.embeddings.create(model="all-minilm-l6-v2", input="How do I reset my password?").data[0].embedding
        )
    with pytest.raises(openai.NotFoundError) as e:
        client.embeddings.create(model="gpt-4o-embed", input="x")  # an alias to a policy: not an embedder
    assert "text-embedding-3-small" in e.value.message  # the 404 lists the embedding aliases
    with pytest.raises(openai.NotFoundError) as chat:
        client.chat.completions.create(model="text-embedding-3-small", messages=[{"role": "user", "content": "x"}])
    assert "embedding model" in chat.value.message
    rows = [r for r in svc.ledger.rows() if r["status"] == 200]
    assert [(r["requested_model"], r["routed_model"]) for r in rows] == [
        ("text-embedding-3-small", "all-minilm-l6-v2"),
        ("all-minilm-l6-v2", "all-minilm-l6-v2"),
        ("text-embedding-ada-002", "all-minilm-l6-v2"),
        ("all-minilm-l6-v2", "all-minilm-l6-v2"),
    ]
    listed = {m["id"]: m for m in httpx.get(f"{server.url}/v1/models").json()["data"]}
    assert listed["text-embedding-3-small"]["routes_to"] == "all-minilm-l6-v2"
