"""/openapi.json documents what the gateway really serves: the chat endpoint, 400s in OpenAI's envelope, no 422s."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import GatewayFactory, api_config
from tests.fakes.upstream import FakeUpstream


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_openapi_has_the_chat_and_responses_endpoints_and_the_errors_as_sent(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    doc = httpx.get(f"{server.url}/openapi.json").json()
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    body = chat["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body == "#/components/schemas/ChatCompletionRequest"
    schemas = doc["components"]["schemas"]
    assert set(schemas["ChatCompletionRequest"]["required"]) == {"model", "messages"}
    assert {"400", "404", "503"} <= set(chat["responses"])
    assert set(chat["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    headers = {p["name"] for p in chat["parameters"] if p["in"] == "header"}
    assert {"x-tiergate-tags", "cache-control", "x-tiergate-cache-ttl"} <= headers
    stats = {p["name"] for p in doc["paths"]["/api/stats"]["get"]["parameters"]}
    assert {"since", "from", "to", "policy", "key", "user", "tag", "bucket"} <= stats
    resp = doc["paths"]["/v1/responses"]["post"]
    assert resp["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ResponsesRequest")
    assert set(schemas["ResponsesRequest"]["required"]) == {"model", "input"} and "429" in resp["responses"]
    ops = [op for path in doc["paths"].values() for op in path.values()]
    assert all("422" not in op["responses"] for op in ops)
    emb = doc["paths"]["/v1/embeddings"]["post"]
    assert emb["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/EmbeddingRequest")
    assert "400" in emb["responses"] and "400" in doc["paths"]["/v1/feedback"]["post"]["responses"]
    assert list(doc["paths"]["/api/stats.csv"]["get"]["responses"]["200"]["content"]) == ["text/csv"]
    for ref in _refs(doc):  # every reference resolves inside the document
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    # What the document says of an error is what an error is.
    r = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "auto"})
    assert r.status_code == 400
    assert set(r.json()) == set(schemas["ErrorResponse"]["properties"])
    assert set(r.json()["error"]) == set(schemas["ErrorDetail"]["properties"])
