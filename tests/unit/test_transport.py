"""gateway/transport.py: what a model is sent of a request's parameters."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.app import warn_cut_timeouts
from gateway.openai_compat import OpenAICompatClient
from gateway.policy_file import load
from gateway.protocol import ChatCompletionRequest
from gateway.settings import Settings
from gateway.transport import for_model
from router.policy import ModelSpec

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def _spec(tools: bool) -> ModelSpec:
    return ModelSpec.model_validate(
        {"name": "m", "litellm_model": "openai/m", "tier": 0, "capabilities": {"tools": tools}}
    )


def test_a_request_that_forbids_tool_calls_needs_no_tool_calling() -> None:
    msgs = [{"role": "user", "content": "sum up"}]
    assert (
        not ChatCompletionRequest.model_validate(
            {"model": "auto", "messages": msgs, "tools": TOOLS, "tool_choice": "none"}
        )
        .needs()
        .tools
    )
    assert ChatCompletionRequest.model_validate({"model": "auto", "messages": msgs, "tools": TOOLS}).needs().tools
    assert (
        ChatCompletionRequest.model_validate({"model": "auto", "messages": msgs, "tools": TOOLS, "tool_choice": "auto"})
        .needs()
        .tools
    )


def test_a_model_without_tool_calling_is_sent_no_tools_and_one_with_it_all_of_them() -> None:
    params = {"tools": TOOLS, "tool_choice": "none", "parallel_tool_calls": False, "temperature": 0.2}
    assert for_model(_spec(tools=False), params) == {"temperature": 0.2}
    assert for_model(_spec(tools=True), params) == params
    asked = {"tools": TOOLS, "tool_choice": "auto"}  # named directly with tools it cannot call: as before, sent as is
    assert for_model(_spec(tools=False), asked) is asked
    legacy = {"functions": [TOOLS[0]["function"]], "function_call": "none", "temperature": 0.2}
    assert for_model(_spec(tools=False), legacy) == {"temperature": 0.2}
    assert for_model(_spec(tools=True), legacy) is legacy


@pytest.mark.parametrize(
    ("legacy", "needs_tools"),
    [
        ({"functions": [TOOLS[0]["function"]]}, True),
        ({"functions": [TOOLS[0]["function"]], "function_call": {"name": "f"}}, True),
        ({"functions": [TOOLS[0]["function"]], "function_call": "none"}, False),
        ({"function_call": "auto"}, False),  # no functions to call
    ],
)
def test_openais_deprecated_functions_ask_for_tool_calling_as_tools_do(
    legacy: dict[str, object], needs_tools: bool
) -> None:
    """Apps written before `tools` send `functions`: routed to a model without tool calling, they got text where a
    call was wanted."""
    body = {"model": "auto", "messages": [{"role": "user", "content": "weather in Paris?"}], **legacy}
    assert ChatCompletionRequest.model_validate(body).needs().tools is needs_tools


def test_each_shipped_model_keeps_its_own_timeout_under_the_default_settings(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The shipped local model's `timeout_s: 120` was cut to the gateway-wide default of 60 s: a long answer became
    a 504 at 60 s, counted towards the model's cooldown."""
    monkeypatch.delenv("TIERGATE_UPSTREAM_TIMEOUT_S", raising=False)
    cfg = load(Path(__file__).parents[2] / "config" / "tiergate.yaml")
    cap = Settings().upstream_timeout_s
    client = OpenAICompatClient({}, cap)
    msgs = [{"role": "user", "content": "hi"}]
    timeouts = {m.name: client._request(m, msgs, {}, stream=False)[2] for m in cfg.models if m.openai_compatible}
    assert timeouts == {m.name: m.timeout_s for m in cfg.models if m.openai_compatible}
    assert timeouts["smollm2-local"] > 60
    assert warn_cut_timeouts(cfg, cap) == [] and "cuts short" not in caplog.text
    # An operator's lower bound still holds, and start-up names what it cuts.
    assert warn_cut_timeouts(cfg, 60.0) == ["smollm2-local"] and "cuts short" in caplog.text
    assert OpenAICompatClient({}, 60.0)._request(cfg.models[0], msgs, {}, stream=False)[2] == 60.0
