"""The only place exceptions become HTTP responses, always in OpenAI's envelope.

Exception tree (all carry status, OpenAI `type`, `param`, `code`):

    GatewayError
    ├── InvalidRequest      400 invalid_request_error   malformed JSON, schema violation (param = first bad field),
    │                                                   a request no allowed model could serve (from_unsatisfiable)
    ├── Unauthorized        401 invalid_request_error   no API key, or an unknown one (code invalid_api_key)
    ├── PermissionDenied    403 permission_error        the policy forbids this model; a key that is not an admin's
    ├── NotFound            404 invalid_request_error   unknown model or policy (code model_not_found)
    ├── RateLimited         429 requests                a key over its requests per minute (rate_limit_exceeded)
    ├── QuotaExceeded       429 insufficient_quota      a key over its budget (insufficient_quota)
    ├── Unavailable         503 server_error            no model may serve the request now
    └── UpstreamFailed      502/504 server_error        every candidate failed upstream

Anything else is a bug: 500 server_error with a request id and no traceback or upstream detail.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from gateway.protocol import ErrorDetail, ErrorResponse
from router.select import Unsatisfiable

log = logging.getLogger("tiergate.errors")


class GatewayError(Exception):
    status = 500
    type = "server_error"

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers: dict[str, str] = {}  # sent with the error, e.g. a 429's retry-after

    def body(self) -> ErrorResponse:
        return ErrorResponse(error=ErrorDetail(message=self.message, type=self.type, param=self.param, code=self.code))


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(GatewayError):
    """No API key, or one the gateway does not know (OpenAI answers both so: 401, code invalid_api_key)."""

    status = 401
    type = "invalid_request_error"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"


class RateLimited(GatewayError):
    """OpenAI's answer to too many requests: clients (the openai SDK among them) wait `retry-after` and retry."""

    status = 429
    type = "requests"


class QuotaExceeded(GatewayError):
    """OpenAI's answer to a spent quota. `x-should-retry: false` tells the openai SDK not to retry: waiting a few
    seconds does not bring the budget back."""

    status = 429
    type = "insufficient_quota"

    def __init__(self, message: str) -> None:
        super().__init__(message, None, "insufficient_quota")
        self.headers = {"x-should-retry": "false"}


class Unavailable(GatewayError):
    status = 503


def server_stopping() -> Unavailable:
    """What a request still in progress when the server stops gets (its answer not begun): retry it elsewhere."""
    return Unavailable("The gateway is shutting down; retry the request.", None, "server_stopping")


class UpstreamFailed(GatewayError):
    status = 502

    def __init__(self, message: str, status: int = 502, code: str | None = "upstream_error") -> None:
        super().__init__(message, None, code)
        self.status = status


def internal_error(request_id: str | None) -> GatewayError:
    """What a client sees of a bug: a 500 with the request id to find it in the log, nothing more."""
    return GatewayError(f"Internal error in the gateway (request {request_id}); see its log.")


def error_response(
    err: GatewayError, request_id: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    out = {**err.headers, **(headers or {}), **({"x-request-id": request_id} if request_id else {})}
    return JSONResponse(err.body().model_dump(), status_code=err.status, headers=out or None)


# Where FastAPI says a bad value came from, ahead of its name: not part of the name a client wrote.
_SOURCES = ("body", "query", "path", "header", "cookie")


def _first_bad_field(loc: tuple[object, ...]) -> str | None:
    parts = [str(p) for p in (loc[1:] if loc and loc[0] in _SOURCES else loc)]
    return ".".join(parts) or None


# The request field a client changes to satisfy each kind of need (router/select.py's Unmet.kind).
_NEED_PARAM = {
    "tools": "tools",
    "forced_call": "tool_choice",
    "vision": "messages",
    "audio_input": "messages",
    "files": "messages",
    "audio_output": "modalities",
    "json_mode": "response_format",
    "context": "messages",
    "choices": "n",
}


def from_unsatisfiable(e: Unsatisfiable) -> InvalidRequest:
    """A request no allowed model could ever serve, as OpenAI reports one a model cannot: a 400 (not a 503, which
    clients such as the openai SDK retry), `context_length_exceeded` when it is too long for every model."""
    code = "context_length_exceeded" if e.need == "context" else "unsupported_capability"
    return InvalidRequest(e.reason[0].upper() + e.reason[1:] + ".", _NEED_PARAM.get(e.need or ""), code)


# How pydantic names the members of a union in an error's location (`content.str`, `input.list[dict[str,any]]`), and
# what a client reads for each.
_MEMBER = re.compile(r"(str|int|float|bool|list|dict|tuple)(\[.*\])?|function-\w+\[.*\]")
_KIND = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean", "list": "an array"}


# A value of the wrong JSON type, where a field takes one (strict, as OpenAI: `"max_tokens": true` is not 1).
_TYPE_ERRORS = {"int_type": "an integer", "float_type": "a number", "bool_type": "a boolean", "string_type": "a string"}


def _json_kind(value: object) -> str:
    """What a parsed JSON value is, in OpenAI's words ("but got a boolean instead")."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: a subclass
        return "a boolean"
    if isinstance(value, float):
        return "a decimal number"
    return _KIND.get(type(value).__name__, "an object")


def _union_failure(errors: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first error as a client should read it when it comes from a union whose every member failed: pydantic
    lists one error per member, each located under the member's name. If the value had one member's shape and failed
    inside it (a list whose item is wrong), that deeper error is the one to report; if it had none, the union itself
    is: "expected a string or an array". None when the first error is not a union's."""
    loc = tuple(errors[0].get("loc", ()))
    at = next((i for i, p in enumerate(loc) if isinstance(p, str) and _MEMBER.fullmatch(p)), None)
    if at is None:
        return None
    head = loc[:at]
    members = [e for e in errors if tuple(e.get("loc", ()))[:at] == head and len(e.get("loc", ())) > at]
    if len({e["loc"][at] for e in members}) < 2:  # one member only: a dict key that looks like a type name
        return None
    deepest = max(members, key=lambda e: len(e["loc"]))
    if len(deepest["loc"]) > at + 1:
        return {**deepest, "loc": (*head, *deepest["loc"][at + 1 :])}
    kinds = dict.fromkeys(_KIND.get(str(e["loc"][at]).split("[")[0], "an object") for e in members)
    return {"type": "union", "loc": head, "msg": f"expected {' or '.join(kinds)}"}


def from_validation(
    errors: list[dict[str, Any]], rename: Callable[[str], tuple[str, str]] | None = None
) -> InvalidRequest:
    """A pydantic/FastAPI validation failure as OpenAI reports one: 400, the first bad field as `param`.
    `rename(param)` gives (the param to report, how the message names it), for a body validated in another shape
    than the client wrote (the Responses API's, translated to chat)."""
    first = (_union_failure(errors) or errors[0]) if errors else {}
    loc: tuple[object, ...] = tuple(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        return InvalidRequest(
            f"We could not parse the JSON body of your request: {first.get('msg')}", None, "invalid_json"
        )
    # A model validator's error is about the whole body (no location); one that knows the field says so in `ctx`.
    param = (first.get("ctx") or {}).get("param") or _first_bad_field(loc)
    if param is None:  # the body as a whole: absent, or JSON that is not an object
        if first.get("type") == "missing":
            return InvalidRequest("The request has no body: send a JSON object.", None, "invalid_json")
        return InvalidRequest(f"The request body must be a JSON object: {first.get('msg')}", None, "invalid_value")
    param, shown = rename(param) if rename is not None else (param, f"'{param}'")
    if first.get("type") == "missing":  # as OpenAI: its own code, which clients match on
        why = first.get("msg")
        text = f": {why}." if why and why != "Field required" else "."  # pydantic's own words add nothing
        return InvalidRequest(f"Missing required parameter {shown}{text}", param, "missing_required_parameter")
    if (want := _TYPE_ERRORS.get(first.get("type", ""))) is not None:  # as OpenAI words it, with its code
        # A rule of the gateway's (ctx names its param) raises from the whole body's check: its `input` is the
        # body, not the value, so what the value was is not said.
        got = "" if (first.get("ctx") or {}).get("param") else f", but got {_json_kind(first.get('input'))} instead"
        return InvalidRequest(f"Invalid type for {shown}: expected {want}{got}.", param, "invalid_type")
    code = (first.get("ctx") or {}).get("code") or "invalid_value"  # a rule may name OpenAI's own (empty_array)
    return InvalidRequest(f"Invalid value for {shown}: {first.get('msg', 'invalid')}", param, code)


def install(app: FastAPI) -> None:
    async def gateway_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayError)
        return error_response(exc, getattr(request.state, "request_id", None))

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(from_validation(list(exc.errors())), getattr(request.state, "request_id", None))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        cls = NotFound if exc.status_code == 404 else InvalidRequest
        err = cls(str(exc.detail), None, None)
        err.status = exc.status_code
        return error_response(err, headers=exc.headers)  # e.g. a 405's Allow, which RFC 9110 requires

    async def client_gone(request: Request, exc: Exception) -> Response:
        # The client left while still sending its body: there was no request, and there is no one to answer.
        return Response(status_code=499)  # nginx's "client closed request", should anything log it

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = getattr(request.state, "request_id", None)
        log.exception("unhandled error in request %s", rid)
        return error_response(internal_error(rid), rid)

    app.add_exception_handler(GatewayError, gateway_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(Exception, unexpected)
