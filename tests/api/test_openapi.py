"""/openapi.json documents what the gateway really serves: the chat endpoint, 400s in OpenAI's envelope, no 422s."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema

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
    headers = {p["name"]: p["schema"] for p in chat["parameters"] if p["in"] == "header"}
    assert {"x-tiergate-tags", "cache-control", "x-tiergate-cache-ttl"} <= set(headers)
    # What the gateway accepts, as patterns (tests/unit/test_openapi_headers.py checks them against the parsers).
    assert headers["x-tiergate-cache-ttl"]["pattern"].startswith("^(?:[1-9]")
    assert all("pattern" in headers[h] for h in ("x-tiergate-tags", "x-tiergate-min-tier", "x-tiergate-max-cost-usd"))
    stats = {p["name"] for p in doc["paths"]["/api/stats"]["get"]["parameters"]}
    assert {"since", "from", "to", "policy", "key", "user", "tag", "bucket"} <= stats
    completions = doc["paths"]["/v1/completions"]["post"]
    assert completions["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/CompletionRequest")
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


def _schema_valid(doc: dict[str, Any], name: str, body: Any) -> bool:
    """Whether `body` is valid against the document's schema `name`, references resolved inside the document."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema).is_valid(body)


def test_the_documented_schemas_refuse_what_the_gateway_refuses_and_allow_what_it_serves(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    # A client generated from /openapi.json validates before it sends: where the schema and the gateway disagree,
    # it either sends what is refused or refuses what would be served. Each body here is judged by both.
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    doc = httpx.get(f"{server.url}/openapi.json").json()
    user = {"role": "user", "content": "What is 2+2?"}
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("/v1/chat/completions", "ChatCompletionRequest", {"model": "mid", "messages": [user]}),
        ("/v1/chat/completions", "ChatCompletionRequest", {"model": "mid", "messages": [{"role": "user"}]}),
        (
            "/v1/chat/completions",
            "ChatCompletionRequest",
            {"model": "mid", "messages": [user, {"role": "tool", "content": "4"}]},
        ),
        ("/v1/embeddings", "EmbeddingRequest", {"model": "all-minilm-l6-v2", "input": "hello"}),
        ("/v1/embeddings", "EmbeddingRequest", {"model": "all-minilm-l6-v2", "input": ["hello", "world"]}),
        ("/v1/embeddings", "EmbeddingRequest", {"model": "all-minilm-l6-v2", "input": []}),
        ("/v1/embeddings", "EmbeddingRequest", {"model": "all-minilm-l6-v2", "input": ["x"] * 2049}),
        ("/v1/embeddings", "EmbeddingRequest", {"model": "all-minilm-l6-v2", "input": ""}),
        ("/v1/embeddings", "EmbeddingRequest", {"model": "all-minilm-l6-v2", "input": ["a", ""]}),
        ("/v1/responses", "ResponsesRequest", {"model": "mid", "input": "hi", "background": False}),
        ("/v1/responses", "ResponsesRequest", {"model": "mid", "input": "hi", "background": True}),
        ("/v1/responses", "ResponsesRequest", {"model": "mid", "input": "hi", "previous_response_id": "resp_1"}),
        ("/v1/responses", "ResponsesRequest", {"model": "mid", "input": "hi", "conversation": "conv_1"}),
        ("/v1/completions", "CompletionRequest", {"model": "mid", "prompt": "hi", "echo": False, "suffix": ""}),
        ("/v1/completions", "CompletionRequest", {"model": "mid", "prompt": ["hi"]}),
        ("/v1/completions", "CompletionRequest", {"model": "mid", "prompt": ["hi", "there"]}),
        ("/v1/completions", "CompletionRequest", {"model": "mid", "prompt": [1, 2]}),
        ("/v1/completions", "CompletionRequest", {"model": "mid", "prompt": "hi", "echo": True}),
        ("/v1/completions", "CompletionRequest", {"model": "mid", "prompt": "hi", "logprobs": 1}),
    ]
    verdicts = []
    for path, name, body in cases:
        status = httpx.post(f"{server.url}{path}", json=body, timeout=60).status_code
        verdicts.append((path, body, status, _schema_valid(doc, name, body)))
    assert [(p, b, s) for p, b, s, valid in verdicts if valid != (s == 200)] == []
    expected = [True, False, False, True, True, False, False, False, False, True, False, False, False]
    expected += [True, True, False, False, False, False]
    assert [valid for *_, valid in verdicts] == expected
    # Query parameters with a closed set of values or a fixed form say so, and the gateway holds to it.
    params = {p["name"]: p["schema"] for p in doc["paths"]["/api/stats"]["get"]["parameters"]}
    assert set(params["bucket"]["enum"]) == {"hour", "day", ""}
    for bucket in ("hour", "day", "", "week"):
        status = httpx.get(f"{server.url}/api/stats", params={"bucket": bucket}).status_code
        assert (status == 200) == (bucket in params["bucket"]["enum"]), bucket
    tag = re.compile(params["tag"]["pattern"])
    for value in ("team-a", "", "a,b", "spaced out", "x" * 65):
        status = httpx.get(f"{server.url}/api/stats", params={"tag": value}).status_code
        assert (status == 200) == (tag.search(value) is not None), value
    csv_table = next(p for p in doc["paths"]["/api/stats.csv"]["get"]["parameters"] if p["name"] == "table")
    for table in ("models", "series", "users", "tags", "keys"):
        status = httpx.get(f"{server.url}/api/stats.csv", params={"table": table}).status_code
        assert (status == 200) == (table in csv_table["schema"]["enum"]), table


def test_errors_a_route_can_answer_are_documented_and_a_405_names_every_method(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    doc = httpx.get(f"{server.url}/openapi.json").json()
    r = httpx.get(f"{server.url}/v1/models/no-such-model")
    assert r.status_code == 404 and "404" in doc["paths"]["/v1/models/{model_id}"]["get"]["responses"]
    r = httpx.get(f"{server.url}/v1/key")  # this configuration has no keys
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_keys"
    assert "404" in doc["paths"]["/v1/key"]["get"]["responses"]
    stored = doc["paths"]["/v1/responses/{response_id}"]
    assert set(stored) == {"get", "delete"}
    for method in ("GET", "DELETE"):
        assert httpx.request(method, f"{server.url}/v1/responses/resp_1").status_code == 404
    r = httpx.request("PUT", f"{server.url}/v1/responses/resp_1")
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "DELETE"}
    ids = [op["operationId"] for path in doc["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
