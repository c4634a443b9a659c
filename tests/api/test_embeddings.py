"""/v1/embeddings: a configured model through litellm, and the in-process encoder's input checks."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import GatewayFactory, api_config, sdk
from tests.fakes.upstream import FakeUpstream


def test_configured_embedding_model_goes_through_litellm(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    cfg = api_config(fresh_upstream.base_url)
    cfg["embedding_models"] = [
        {"name": "hosted-embed", "litellm_model": "openai/text-embedding-3-small", "api_base": fresh_upstream.base_url},
        {
            "name": "own-price",
            "litellm_model": "openai/text-embedding-3-small",
            "api_base": fresh_upstream.base_url,
            "price": {"input_per_mtok": 1.0, "output_per_mtok": 0.0},
        },
    ]
    server, svc = gateway_factory(cfg)
    client = sdk(server.url)
    r = client.embeddings.create(model="hosted-embed", input=["abc", "de"], encoding_format="float")
    assert [d.embedding for d in r.data] == [[3.0, 1.0, 0.0], [2.0, 1.0, 0.0]]
    assert r.model == "hosted-embed"
    assert fresh_upstream.received[-1]["model"] == "text-embedding-3-small"
    client.embeddings.create(model="own-price", input=["a b c"], encoding_format="float")
    client.embeddings.create(model="all-minilm-l6-v2", input=["a b c"], encoding_format="float")
    first, second, local = svc.ledger.rows()
    assert first["endpoint"] == "embeddings" and first["prompt_tokens"] == 2 and first["routed_model"] == "hosted-embed"
    # Recorded at a price: litellm's table for text-embedding-3-small ($0.02 a million tokens), the policy's own
    # where it has one; the in-process MiniLM costs nothing.
    assert first["cost_usd"] == pytest.approx(2 * 0.02 / 1e6)
    assert second["cost_usd"] == pytest.approx(3 * 1.0 / 1e6)
    assert (local["routed_model"], local["cost_usd"]) == ("all-minilm-l6-v2", 0.0)
    # Nothing was routed, so nothing saved: the stats must not show a negative saving for what they cost.
    assert [r["baseline_cost_usd"] for r in (first, second, local)] == [r["cost_usd"] for r in (first, second, local)]
    (model,) = [m for m in httpx.get(f"{server.url}/api/stats").json()["models"] if m["model"] == "hosted-embed"]
    assert model["cost_usd"] > 0 and model["saved_usd"] == 0


def test_in_process_encoder_base64_and_float_agree(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    server, _ = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    b64 = client.embeddings.create(model="all-minilm-l6-v2", input="hello world")  # the SDK asks for base64
    flt = client.embeddings.create(model="all-minilm-l6-v2", input="hello world", encoding_format="float")
    assert b64.data[0].embedding == pytest.approx(flt.data[0].embedding, abs=1e-6)
    assert len(flt.data[0].embedding) == 8  # the fake encoder's dimension


def test_embedding_errors(gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="nope", input="x")
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="all-minilm-l6-v2", input=[[1, 2, 3]])
    assert e.value.param == "input"
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="all-minilm-l6-v2", input="x", dimensions=64)
    assert e.value.param == "dimensions"
    assert [r["status"] for r in svc.ledger.rows()] == [404, 400, 400]


def test_a_text_longer_than_the_encoder_reads_is_refused_unless_truncation_is_asked_for(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream
) -> None:
    """The encoder reads its first 256 tokens (the fake: words + 2); past that, an embedding would silently be of a
    prefix. Refused as OpenAI refuses a text past its window, naming the input; `truncate: true` (as Text
    Embeddings Inference takes it) embeds the prefix and bills what was read."""
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    client = sdk(server.url)
    fits, long = "word " * 254, "word " * 300  # 256 and 302 tokens
    assert len(client.embeddings.create(model="all-minilm-l6-v2", input=fits).data) == 1
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="all-minilm-l6-v2", input=["short", long])
    assert isinstance(e.value.body, dict)
    assert (e.value.body["param"], e.value.body["code"]) == ("input.1", "context_length_exceeded")
    assert "302 tokens long" in e.value.body["message"] and "at most 256" in e.value.body["message"]
    r = client.embeddings.create(model="all-minilm-l6-v2", input=["short", long], extra_body={"truncate": True})
    assert len(r.data) == 2 and r.usage.prompt_tokens == 3 + 256
    assert [row["status"] for row in svc.ledger.rows()] == [200, 400, 200]
    assert svc.ledger.rows()[-1]["prompt_tokens"] == 259
