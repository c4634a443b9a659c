"""What OpenAI's API refuses in a chat request but a model's server may accept, checked when the body is parsed.

llama-server takes a tool message without `tool_call_id`, a `logit_bias` of 500, a `tool_choice` naming a function
that is not among the tools, and a tool with no `function`; OpenAI answers each with a 400. Checked here, a client
gets the same 400 wherever the router would have sent its request, before anything is classified or paid for,
instead of an answer from the local model and a rejection from the hosted one for the same body.

Each failure is a pydantic error whose `ctx.param` names the field (gateway/errors.py: from_validation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from gateway.protocol import ChatCompletionRequest

TOOL_CHOICES = ("none", "auto", "required")
LOGIT_BIAS_BOUND = 100.0  # OpenAI's: -100 bans a token, 100 forces it


def _refuse(kind: str, message: str, param: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message, {"param": param})


def check(req: ChatCompletionRequest) -> None:
    """Raises the first rule `req` breaks, naming where; returns when it breaks none."""
    for i, m in enumerate(req.messages):
        if m.role == "tool" and not isinstance((m.__pydantic_extra__ or {}).get("tool_call_id"), str):
            raise _refuse(
                "missing",
                "a tool message needs `tool_call_id`, the id of the tool call it answers",
                f"messages.{i}.tool_call_id",
            )
    if req.logit_bias:
        _check_logit_bias(req.logit_bias)
    names = _tool_names(req.tools) if req.tools is not None else None
    if req.tool_choice is not None:
        _check_tool_choice(req.tool_choice, names)


def _check_logit_bias(bias: dict[str, float]) -> None:
    for token, value in bias.items():
        if not token.isdecimal():  # isdecimal: ASCII digits and other decimal digits; int() takes both
            raise _refuse("invalid_key", f"keys are token ids (integers), not {token!r}", "logit_bias")
        if not -LOGIT_BIAS_BOUND <= value <= LOGIT_BIAS_BOUND:
            raise _refuse("out_of_range", "a bias must lie between -100 and 100", f"logit_bias.{token}")


def _tool_names(tools: list[dict[str, Any]]) -> set[str]:
    """The functions' names; other kinds of tool (`custom`, newer ones) pass as the client sent them."""
    names: set[str] = set()
    for i, tool in enumerate(tools):
        kind = tool.get("type")
        if not isinstance(kind, str):
            raise _refuse("missing", "each tool needs a `type`, such as 'function'", f"tools.{i}.type")
        if kind != "function":
            continue
        fn = tool.get("function")
        if not isinstance(fn, dict):
            raise _refuse(
                "missing", "a function tool needs `function`, an object with its `name`", f"tools.{i}.function"
            )
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise _refuse("missing", "a function needs a `name` (a non-empty string)", f"tools.{i}.function.name")
        names.add(name)
    return names


def _check_tool_choice(choice: str | dict[str, Any], names: set[str] | None) -> None:
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise _refuse("invalid_value", f"expected one of {', '.join(TOOL_CHOICES)}, or an object", "tool_choice")
        if choice == "required" and not names:
            raise _refuse("invalid_value", "'required' needs at least one function in `tools`", "tool_choice")
        return
    if choice.get("type") != "function":
        return  # `allowed_tools`, `custom` and newer forms: the model's server judges them
    fn = choice.get("function")
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(name, str):
        raise _refuse("missing", "a function tool choice needs `function.name`", "tool_choice.function.name")
    if names is None or name not in names:
        raise _refuse("invalid_value", f"the function {name!r} is not among `tools`", "tool_choice.function.name")
