"""End to end on real parts: the official openai SDK → `tiergate serve` → litellm → llama.cpp / a hosted fake."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from gateway.policy_file import load
from gateway.settings import PACKAGE_ROOT
from router.tokens import estimate_tokens
from tests.integration.conftest import Gateway

# Classifier v1 is weak (see classifiers/MODEL_CARD.md): these tests check that real scores drive real routing,
# with one prompt v1 scores clearly easy and one it scores clearly hard under the shipped default policy.
EASY = "Write a short poem about the sea."
HARD = (
    "Implement a lock-free concurrent hash map in C++ with memory reclamation via hazard pointers and explain "
    "the linearizability argument."
)
DEFAULT = load(PACKAGE_ROOT / "config" / "tiergate.yaml").policies["default"]


def _client(g: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{g.url}/v1", api_key="unused", max_retries=0, timeout=120)


def _ledger(g: Gateway, request_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 10  # records are written off the request path, within milliseconds
    while time.monotonic() < deadline:
        with sqlite3.connect(g.ledger) as c:
            c.row_factory = sqlite3.Row
            row = c.execute("SELECT * FROM requests WHERE request_id = ?", (request_id,)).fetchone()
        if row is not None:
            return dict(row)
        time.sleep(0.05)
    raise AssertionError(f"no ledger record for {request_id}")


def test_easy_prompt_is_answered_by_local_llama_cpp(tiergate: Gateway) -> None:
    r = _client(tiergate).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": EASY}], max_tokens=24, temperature=0
    )
    assert r.headers["x-tiergate-model"] == "smollm2-local"
    assert float(r.headers["x-tiergate-score"]) < DEFAULT.thresholds[0]
    body = r.parse()
    assert body.choices[0].message.content and body.choices[0].message.content.strip()
    assert body.usage is not None and body.usage.prompt_tokens > 5 and body.usage.completion_tokens > 0
    row = _ledger(tiergate, r.headers["x-request-id"])
    assert row["routed_model"] == "smollm2-local" and row["cost_usd"] == 0.0
    assert row["prompt_tokens"] == body.usage.prompt_tokens
    assert row["baseline_cost_usd"] > 0  # what gpt-4o would have cost for the same tokens


def test_easy_prompt_streams_from_local_llama_cpp(tiergate: Gateway) -> None:
    with _client(tiergate).chat.completions.with_streaming_response.create(
        model="auto",
        messages=[{"role": "user", "content": EASY}],
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    ) as r:
        assert r.headers["x-tiergate-model"] == "smollm2-local"
        chunks = list(r.parse())
        rid = r.headers["x-request-id"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    row = _ledger(tiergate, rid)
    assert row["stream"] == 1 and row["completion_tokens"] == chunks[-1].usage.completion_tokens


def test_several_answers_from_local_llama_cpp(tiergate: Gateway) -> None:
    r = _client(tiergate).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": EASY}], max_tokens=8, n=2
    )
    assert r.headers["x-tiergate-model"] == "smollm2-local"
    body = r.parse()
    assert [c.index for c in body.choices] == [0, 1]
    assert all((c.message.content or "").strip() for c in body.choices)
    row = _ledger(tiergate, r.headers["x-request-id"])
    # This llama.cpp counts one answer's tokens for n > 1 (llama.cpp PR #27318; a hosted OpenAI model counts all of
    # them). The ledger counts every answer: one cut at max_tokens is that many tokens exactly, any other its
    # estimate, and never less than the server counted (at most 8 here). The client is told the same.
    assert body.usage is not None
    each = [
        8 if c.finish_reason == "length" else math.ceil(estimate_tokens(c.message.content or "")) for c in body.choices
    ]
    tokens, prompt = row["completion_tokens"], row["prompt_tokens"]
    assert isinstance(tokens, int) and isinstance(prompt, int) and row["usage_estimated"] == 1
    assert sum(each) <= tokens <= max(8, sum(each))
    assert (body.usage.completion_tokens, body.usage.total_tokens) == (tokens, prompt + tokens)
    long = [{"role": "user", "content": "Tell me a long story about a dragon and a knight."}]
    both_cut = _client(tiergate).chat.completions.with_raw_response.create(
        model="smollm2-local", messages=long, max_tokens=8, n=2
    )
    cut = both_cut.parse()
    assert [c.finish_reason for c in cut.choices] == ["length", "length"] and cut.usage is not None
    assert (cut.usage.completion_tokens, _ledger(tiergate, both_cut.headers["x-request-id"])["completion_tokens"]) == (
        16,
        16,
    )
    # Streamed, it sends one usage chunk per answer, the first among the other answer's content: the ledger adds them
    # up, and the client gets one usage chunk, the last, for both (as OpenAI sends it).
    s = _client(tiergate).chat.completions.with_raw_response.create(
        model="smollm2-local", messages=long, max_tokens=8, n=2, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(s.parse())
    assert [i for i, c in enumerate(chunks) if c.usage is not None] == [len(chunks) - 1]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 16
    assert _ledger(tiergate, s.headers["x-request-id"])["completion_tokens"] == 16


def test_more_answers_than_llama_server_has_slots_go_to_a_model_that_can_give_them(tiergate: Gateway) -> None:
    """llama-server refuses `n` above its slots (-np 4) with a 400, so an easy prompt asking for 6 answers got a 400
    from the local model, where a hosted one could answer. The shipped config declares the local model's
    `max_choices`, and routing passes over it."""
    client = _client(tiergate)
    r = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": EASY}], max_tokens=4, n=6
    )
    assert r.headers["x-tiergate-model"] in ("gpt-4o-mini", "gpt-4o")
    assert len(r.parse().choices) == 6
    four = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": EASY}], max_tokens=4, n=4
    )
    assert four.headers["x-tiergate-model"] == "smollm2-local" and len(four.parse().choices) == 4


def test_the_responses_api_on_local_llama_cpp(tiergate: Gateway) -> None:
    client = _client(tiergate)
    raw = client.responses.with_raw_response.create(model="auto", input=EASY, max_output_tokens=16)
    assert raw.headers["x-tiergate-model"] == "smollm2-local"
    r = raw.parse()
    assert r.output_text.strip() and r.usage is not None and 0 < r.usage.output_tokens <= 16
    assert r.status in ("completed", "incomplete")  # incomplete when it used all 16 tokens, as OpenAI says
    assert r.output[-1].status == r.status  # and so is the item the cut fell in
    row = _ledger(tiergate, raw.headers["x-request-id"])
    assert (row["endpoint"], row["completion_tokens"]) == ("responses", r.usage.output_tokens)
    # A schema-constrained answer, streamed: text.format becomes llama.cpp's grammar.
    fmt = {
        "type": "json_schema",
        "name": "colour",
        "schema": {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]},
    }
    with client.responses.stream(
        model="smollm2-local",
        input="Name a colour.",
        max_output_tokens=100,
        temperature=0,
        text={"format": fmt},  # type: ignore[typeddict-item]
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text and isinstance(json.loads(final.output_text)["colour"], str)
    # Log-probabilities when `include` asks for them, per token of the text, streamed on the deltas as well.
    asked = client.responses.create(
        model="smollm2-local",
        input=EASY,
        max_output_tokens=16,
        include=["message.output_text.logprobs"],
        top_logprobs=2,
    )
    part = asked.output[0].content[0]
    assert part.type == "output_text" and part.logprobs and asked.usage is not None
    assert len(part.logprobs) == asked.usage.output_tokens and "".join(t.token for t in part.logprobs) == part.text
    assert all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in part.logprobs)
    with client.responses.stream(
        model="smollm2-local", input=EASY, max_output_tokens=16, include=["message.output_text.logprobs"]
    ) as stream:
        per_delta = [e.logprobs for e in stream if e.type == "response.output_text.delta"]
    assert per_delta and all(per_delta)


def test_the_completions_api_on_local_llama_cpp(tiergate: Gateway) -> None:
    client = _client(tiergate)
    raw = client.completions.with_raw_response.create(model="auto", prompt=EASY, temperature=0)
    assert raw.headers["x-tiergate-model"] == "smollm2-local"
    r = raw.parse()
    assert r.object == "text_completion" and r.choices[0].text.strip() and r.usage is not None
    assert 0 < r.usage.completion_tokens <= 16  # OpenAI's default max_tokens for this API, sent for the app
    row = _ledger(tiergate, raw.headers["x-request-id"])
    assert (row["endpoint"], row["completion_tokens"]) == ("completions", r.usage.completion_tokens)
    # Streamed, two answers at once (llama-server's slots), each with its own index, then the summed usage.
    chunks = list(
        client.completions.create(
            model="smollm2-local", prompt=EASY, max_tokens=8, n=2, stream=True, stream_options={"include_usage": True}
        )
    )
    texts = {i: "".join(c.choices[0].text for c in chunks if c.choices and c.choices[0].index == i) for i in (0, 1)}
    assert all(t.strip() for t in texts.values()), texts
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None and 2 <= usage.completion_tokens <= 16


def test_json_mode_on_llama_cpp_is_grammar_constrained(tiergate: Gateway) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    r = _client(tiergate).chat.completions.with_raw_response.create(
        model="smollm2-local",
        messages=[{"role": "user", "content": "Invent a person."}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
        max_tokens=80,
        temperature=0,
    )
    assert r.headers["x-tiergate-model"] == "smollm2-local"
    choice = r.parse().choices[0]
    assert choice.finish_reason == "stop" and choice.message.content is not None
    person = json.loads(choice.message.content)
    assert set(person) == {"name", "age"} and isinstance(person["age"], int)


def test_a_stream_the_client_cuts_is_recorded_with_what_was_generated(tiergate: Gateway) -> None:
    with _client(tiergate).chat.completions.with_streaming_response.create(
        model="smollm2-local",
        messages=[{"role": "user", "content": "Tell a very long story about a dragon who learns to cook."}],
        max_tokens=400,
        temperature=0.8,  # never served from the cache
        stream=True,
        stream_options={"include_usage": True},
    ) as r:
        rid = r.headers["x-request-id"]
        events = r.parse()
        got = [next(events) for _ in range(6)]  # then the client goes away, long before the usage chunk
    assert all(c.usage is None for c in got)
    row = _ledger(tiergate, rid)
    assert (row["status"], row["error_type"], row["usage_estimated"]) == (499, "client_closed", 1)
    assert row["prompt_tokens"] > 10 and 4 <= row["completion_tokens"] < 400
    assert row["baseline_cost_usd"] > 0  # priced like any answer, as the generated tokens are billed all the same


def test_a_responses_stream_the_client_cuts_is_recorded_too(tiergate: Gateway) -> None:
    with _client(tiergate).responses.with_streaming_response.create(
        model="smollm2-local",
        input="Tell a very long story about a dragon who learns to cook.",
        max_output_tokens=400,
        temperature=0.8,
        stream=True,
    ) as r:
        rid = r.headers["x-request-id"]
        events = r.parse()
        got = [next(events).type for _ in range(8)]  # then the client goes away
    assert got[:2] == ["response.created", "response.in_progress"] and "response.output_text.delta" in got
    row = _ledger(tiergate, rid)
    assert (row["endpoint"], row["status"], row["error_type"]) == ("responses", 499, "client_closed")
    assert 4 <= row["completion_tokens"] < 400


@pytest.mark.parametrize(("policy", "outcome"), [("cascade-keep", "kept"), ("cascade-escalate", "escalated")])
def test_cascade_judges_llama_cpp_drafts_by_their_token_logprobs(tiergate: Gateway, policy: str, outcome: str) -> None:
    r = _client(tiergate).chat.completions.with_raw_response.create(
        model=policy, messages=[{"role": "user", "content": EASY}], max_tokens=16, temperature=0
    )
    conf = float(r.headers["x-tiergate-draft-confidence"])
    assert 0.001 < conf < 0.999  # a real geometric-mean probability from llama.cpp's logprobs
    assert r.headers["x-tiergate-cascade"] == outcome
    row = _ledger(tiergate, r.headers["x-request-id"])
    assert row["draft_model"] == "smollm2-local" and row["draft_confidence"] == pytest.approx(conf, abs=1e-4)
    if outcome == "kept":
        assert r.headers["x-tiergate-model"] == "smollm2-local" and r.parse().choices[0].logprobs is None
    else:
        assert r.headers["x-tiergate-model"] == "gpt-4o-mini"  # the thresholds said tier 0: next tier up answers
        assert r.parse().choices[0].message.content == f"echo: {EASY}"


def test_hard_prompt_goes_to_the_hosted_model(tiergate: Gateway) -> None:
    r = _client(tiergate).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": HARD}]
    )
    score = float(r.headers["x-tiergate-score"])
    assert score >= DEFAULT.thresholds[0]
    assert r.headers["x-tiergate-tier"] == str(DEFAULT.min_tier(score))
    assert r.headers["x-tiergate-model"] in ("gpt-4o-mini", "gpt-4o")
    assert r.parse().choices[0].message.content == f"echo: {HARD}"
    row = _ledger(tiergate, r.headers["x-request-id"])
    assert row["cost_usd"] > 0 and row["tier"] >= 1


def test_an_app_written_for_another_model_name_is_routed_by_the_shipped_aliases(tiergate: Gateway) -> None:
    r = _client(tiergate).chat.completions.with_raw_response.create(
        model="gpt-4-turbo", messages=[{"role": "user", "content": EASY}], max_tokens=8
    )
    assert r.headers["x-tiergate-model"] == "smollm2-local" and r.headers["x-tiergate-policy"] == "default"
    assert _ledger(tiergate, r.headers["x-request-id"])["requested_model"] == "gpt-4-turbo"


IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZF", "format": "wav"}}


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "user", "content": "hi", "name": 5}], "messages.0.name"),
        ([{"role": "user", "content": [{"type": "text"}]}], "messages.0.content.0.text"),
        ([{"role": "system", "content": [IMAGE]}, {"role": "user", "content": "x"}], "messages.0.content.0.type"),
        (
            [{"role": "assistant", "content": "x", "tool_calls": [[1]]}, {"role": "user", "content": "x"}],
            "messages.0.tool_calls.0",
        ),
        ([{"role": "user", "content": [{"type": "text", "text": "what is this?"}, IMAGE]}], "messages"),  # no vision
        ([{"role": "user", "content": [{"type": "text", "text": "what is said?"}, AUDIO]}], "messages"),  # no audio
    ],
    ids=["name", "text-part", "system-image", "tool-call", "image", "audio"],
)
def test_what_llama_server_fails_with_a_500_is_a_400_and_leaves_the_local_model_healthy(
    tiergate: Gateway, messages: list[dict[str, object]], param: str
) -> None:
    """llama-server answers each of these with a 500 ("Failed to parse messages: ...", "image input is not
    supported", "audio input is not supported"). Passed on, each was a 502, and three in a minute put the local model
    in cooldown for every client."""
    client = _client(tiergate)
    for _ in range(4):  # one more than the shipped cooldown's `failures`
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model="smollm2-local", messages=messages, max_tokens=2)  # type: ignore[arg-type]
        assert e.value.param == param
    assert httpx.get(f"{tiergate.url}/readyz").json()["checks"]["cooling_models"] == []


def test_content_the_gateway_passes_on_unchecked_does_not_cool_the_local_model(tiergate: Gateway) -> None:
    """OpenAI content the gateway does not know (a `video_url` part) or the local model cannot take (a `custom` tool
    call) is passed on, and llama-server answers it with a 500: the client gets a 502, but the failure is the
    request's, so however often it comes the model stays in routing."""
    client = _client(tiergate)
    video: Any = [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "https://x/v.mp4"}}]}]
    custom: Any = [
        {"role": "user", "content": EASY},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "f"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "done"},
    ]
    for messages in (video, custom) * 2:  # four in a row: one more than the shipped cooldown's `failures`
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(model="smollm2-local", messages=messages, max_tokens=2)
        assert e.value.status_code == 502
    # A llama.cpp parameter of its own with a value it does not know: the same, and its words reach the client.
    for _ in range(4):
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(
                model="smollm2-local",
                messages=[{"role": "user", "content": EASY}],
                max_tokens=2,
                extra_body={"reasoning_format": "x"},
            )
        assert e.value.status_code == 502
        assert "Unknown reasoning format: x" in e.value.response.json()["error"]["message"]
    assert httpx.get(f"{tiergate.url}/readyz").json()["checks"]["cooling_models"] == []


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "string", "pattern": "^[a-z]+$"}}},
    ],
    ids=["json-object", "json-schema"],
)
def test_a_last_assistant_turn_with_an_end_of_turn_token_leaves_llama_server_up(
    tiergate: Gateway, llama_server: str, response_format: dict[str, object]
) -> None:
    """Found by fuzzing `make serve`: llama-server prefills a last assistant message (its text is the start of the
    answer), so in JSON mode the text goes through the grammar, and "<|im_end|>" in it aborted the whole server
    (llama-grammar.cpp: "fatal error"), one request taking the local model away from every client. Started with
    --no-prefill-assistant (tests/local_model.py, scripts/serve.sh, docker-compose.yml), it reads the message as a
    whole earlier turn, as OpenAI does."""
    client = _client(tiergate)
    for end in ("<|im_end|>", "<|endoftext|>", "{<|im_end|>"):
        r = client.chat.completions.with_raw_response.create(
            model="smollm2-local",
            messages=[{"role": "user", "content": "Say a word."}, {"role": "assistant", "content": end}],
            response_format=response_format,  # type: ignore[arg-type]
            max_tokens=3,
        )
        assert r.headers["x-tiergate-model"] == "smollm2-local" and r.parse().choices
    assert httpx.get(f"{llama_server.removesuffix('/v1')}/health").json() == {"status": "ok"}
    assert httpx.get(f"{tiergate.url}/readyz").json()["checks"]["cooling_models"] == []


def test_a_schema_llama_cpp_would_expand_without_end_never_reaches_it(tiergate: Gateway, llama_server: str) -> None:
    """Found probing `make serve`: such a schema took llama-server past 23 GB until the OOM killer ended it
    (gateway/schema_rules.py). The gateway refuses it, whether routed or named, and the server never sees it."""
    client = _client(tiergate)
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "w", "schema": {"type": "string", "minLength": 10, "maxLength": 5}},
    }
    for model in ("auto", "smollm2-local"):
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": EASY}],
                response_format=fmt,
                max_tokens=3,  # type: ignore[arg-type]
            )
        assert e.value.param == "response_format.json_schema.schema.minLength"
    assert httpx.get(f"{llama_server.removesuffix('/v1')}/health").json() == {"status": "ok"}


def test_an_empty_integer_range_is_refused_before_llama_cpp_fails_on_it(tiergate: Gateway, llama_server: str) -> None:
    """Found fuzzing `make serve`: llama-server answers an integer range with no integer in it with a 500 while
    decoding, and six such requests put the local model in cooldown for every client. The gateway refuses it (no
    value meets the schema), whether routed or named; the model stays available."""
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 9, "maximum": 3}}, "required": ["n"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
    direct = httpx.post(
        f"{llama_server}/chat/completions",
        json={"messages": [{"role": "user", "content": EASY}], "max_tokens": 40, "response_format": fmt},
        timeout=120,
    )
    assert direct.status_code == 500, direct.text  # what the gateway keeps its clients from
    client = _client(tiergate)
    for model in ("auto", "smollm2-local") * 4:
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": EASY}],
                response_format=fmt,  # type: ignore[arg-type]
                max_tokens=40,
            )
        assert e.value.param == "response_format.json_schema.schema.properties.n.minimum"
    assert httpx.get(f"{tiergate.url}/readyz").json()["checks"]["cooling_models"] == []


def test_grammar_with_json_schema_is_refused_before_llama_server_fails_on_it(
    tiergate: Gateway, llama_server: str
) -> None:
    """Found fuzzing `make serve`: llama.cpp's two answer constraints at once are a 500 from llama-server. The
    gateway knows both parameters, so it says so itself: a 400 naming them, and the model is not touched."""
    constraints = {"grammar": 'root ::= "a"', "json_schema": {"type": "string"}}
    body = {"messages": [{"role": "user", "content": EASY}], "max_tokens": 2, **constraints}
    direct = httpx.post(f"{llama_server}/chat/completions", json=body, timeout=120)
    assert direct.status_code == 500 and "json_schema and grammar" in direct.text
    with pytest.raises(openai.BadRequestError) as e:
        _client(tiergate).chat.completions.create(
            model="smollm2-local", messages=[{"role": "user", "content": EASY}], max_tokens=2, extra_body=constraints
        )
    assert e.value.param == "grammar" and "send one" in e.value.message


def test_llama_server_survives_memory_bombs_sent_to_it_directly(llama_server: str) -> None:
    """What reaches llama-server around the gateway, or in a shape the gateway does not know, is bounded by the address
    space every launch gives it (tests/local_model.py, scripts/serve.sh): the allocation fails and the server answers
    a 400. Uncapped, measured on fresh servers: `dry_penalty_last_n: 10**9` (a llama.cpp parameter the gateway passes
    on) held 7.9 GB for 6-9 s per request, then answered 200; the grammar grew past 9 GB in 20 s and was OOM-killed at
    23.6 GB. The first comes first here: without the cap this test fails on it before sending the second."""

    def chat(**extra: object) -> httpx.Response:
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, **extra}
        return httpx.post(f"{llama_server}/chat/completions", json=body, timeout=120)

    dry = chat(dry_multiplier=1.0, dry_penalty_last_n=10**9)
    assert dry.status_code == 400 and "bad_alloc" in dry.json()["error"]["message"]
    grammar = chat(grammar='root ::= "a"{5,2}')
    assert grammar.status_code == 400 and "grammar" in grammar.json()["error"]["message"]
    assert httpx.get(f"{llama_server.removesuffix('/v1')}/health").json() == {"status": "ok"}
    ok = chat()
    assert ok.status_code == 200 and ok.json()["choices"]


def test_a_tool_history_with_tool_choice_none_is_answered_by_llama_cpp(tiergate: Gateway) -> None:
    """The local model has no tool calling; with tool calls forbidden it need not have: it gets the history (its chat
    template renders the tool turns) and no tools. Before, this needed a hosted model (a 503 without keys)."""
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}]
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    r = _client(tiergate).chat.completions.with_raw_response.create(
        model="auto",
        messages=[
            {"role": "user", "content": EASY},
            {"role": "assistant", "content": None, "tool_calls": [call]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": "c1", "content": "Sunny, 21 C."},
        ],
        tools=tools,  # type: ignore[arg-type]
        tool_choice="none",
        max_tokens=8,
    )
    assert r.headers["x-tiergate-model"] == "smollm2-local"
    assert r.parse().choices[0].message.content and not r.parse().choices[0].message.tool_calls


def test_concrete_model_and_embeddings(tiergate: Gateway) -> None:
    client = _client(tiergate)
    r = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert r.headers["x-tiergate-model"] == "gpt-4o" and "x-tiergate-score" not in r.headers
    emb = client.embeddings.create(
        model="all-minilm-l6-v2",
        input=["How do I reset my password?", "I forgot my password, how can I change it?", "Best pizza in Naples"],
    )
    v = np.array([d.embedding for d in emb.data])
    assert v.shape == (3, 384)
    assert v[0] @ v[1] > 0.6 > v[0] @ v[2]
    assert emb.usage.prompt_tokens > 10


def test_bad_policy_file_is_rejected_with_its_yaml_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (PACKAGE_ROOT / "config" / "tiergate.yaml").read_text().replace("tier: 1", "tier: one", 1)
    bad.write_text(text)
    v = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "validate-config", str(bad)], capture_output=True, text=True
    )
    assert v.returncode == 1
    assert "models[1].tier (line " in v.stderr and "valid integer" in v.stderr
    s = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(bad), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert s.returncode == 1 and "models[1].tier" in s.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "validate-config", str(PACKAGE_ROOT / "config" / "tiergate.yaml")],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and ok.stdout.strip() == "ok"


@pytest.mark.parametrize("n", [2000])
def test_classify_cli_takes_thousands_of_lines(tmp_path: Path, n: int) -> None:
    import json

    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    with inp.open("w") as f:
        for i in range(n):
            if i % 2:
                f.write(json.dumps({"id": i, "prompt": f"What is {i} plus {i}?"}) + "\n")
            else:
                f.write(
                    json.dumps({"id": f"m{i}", "messages": [{"role": "user", "content": f"Write a haiku about {i}"}]})
                    + "\n"
                )
    p = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "classify", "--input", str(inp), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == n and rows[0]["id"] == "m0" and rows[1]["id"] == 1
    policy = load(PACKAGE_ROOT / "config" / "tiergate.yaml").policies["default"]
    for r in rows:
        assert 0.0 <= r["score"] <= 1.0 and r["tier"] == policy.min_tier(r["score"])
    assert len({r["score"] for r in rows}) > n // 2  # scores depend on the text, not a constant
