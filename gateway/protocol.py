"""OpenAI wire types for the endpoints Tiergate serves, and what a chat request needs of a model.

Request bodies allow unknown keys (clients send newer parameters than we know); they are forwarded to the
upstream untouched (`extras`) rather than dropped or rejected.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from classifiers.features import content_text
from router.select import Needs

_Open = ConfigDict(extra="allow")


class ChatMessage(BaseModel):
    model_config = _Open
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = Field(default=None, validate_default=True)

    @field_validator("content")
    @classmethod
    def _content_unless_assistant(cls, v: Any, info: ValidationInfo) -> Any:
        # As OpenAI: only an assistant turn may go without content (it may carry tool calls instead). Checked here,
        # so the client gets a 400 naming the field, not an upstream's rejection after classification.
        if v is None and info.data.get("role", "assistant") != "assistant":
            raise ValueError(f"a {info.data['role']} message needs content (a string or a list of parts)")
        return v


class StreamOptions(BaseModel):
    model_config = _Open
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = _Open
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=128)  # OpenAI's own bounds
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    user: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None

    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def sampling_params(self) -> dict[str, Any]:
        """Known OpenAI parameters that were set, as the upstream call takes them."""
        skip = {"model", "messages", "stream", "stream_options"}
        return {
            k: v for k, v in self.model_dump(exclude_none=True, exclude=skip).items() if k in type(self).model_fields
        }

    def wants_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def needs(self) -> Needs:
        chars = sum(len(content_text(m.content)) for m in self.messages)
        vision = any(
            isinstance(m.content, list) and any(p.get("type") == "image_url" for p in m.content) for m in self.messages
        )
        fmt = (self.response_format or {}).get("type")
        return Needs(
            tools=bool(self.tools),
            vision=vision,
            json_mode=fmt in ("json_object", "json_schema"),
            # ~4 characters a token: a routing estimate only; billing uses the upstream's real counts.
            context_tokens=chars // 4 + 4 * len(self.messages),
            expected_output_tokens=self.max_completion_tokens or self.max_tokens or 256,
        )


class EmbeddingRequest(BaseModel):
    model_config = _Open
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


class FeedbackRequest(BaseModel):
    """A judgement of one answer: `request_id` is the answer's `x-request-id`; `score` 1 = good enough, 0 = not."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=200)
    # Strict: a number, not `true` or "1" (lax mode read `false` as a judgement of 0, a label for retraining).
    score: float = Field(ge=0.0, le=1.0, strict=True)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
