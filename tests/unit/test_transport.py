"""gateway/transport.py: what a model is sent of a request's parameters."""

from __future__ import annotations

from gateway.protocol import ChatCompletionRequest
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
