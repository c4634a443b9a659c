"""The outermost ASGI layer: an id for every HTTP request, the API-key check (gateway/auth.py), and the chat
endpoint (with the Responses and Completions APIs, its translations) served without FastAPI.

/v1/chat/completions is the one hot path. Served here, in front of FastAPI, a request pays for its own parsing,
routing, pipeline and one response object, not for FastAPI's middleware stack and routing, which on a cache hit
cost more than all of Tiergate's own work (docs/benchmarks.md). Errors get the same OpenAI envelope as everywhere
else (gateway/errors.py). Every other path, and the lifespan, is FastAPI's.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from gateway.auth import STATE_KEY, Refused, header
from gateway.completions_api import COMPLETIONS_PATH
from gateway.deps import AppServices
from gateway.errors import GatewayError, InvalidRequest, error_response, internal_error, server_stopping
from gateway.request_ids import RequestIds
from gateway.responses_api import RESPONSES_PATH
from gateway.routes.chat import CHAT, CHAT_PATH, handle_chat
from gateway.routes.completions import COMPLETIONS
from gateway.routes.responses import RESPONSES

log = logging.getLogger("tiergate")
SURFACES = {CHAT_PATH: CHAT, RESPONSES_PATH: RESPONSES, COMPLETIONS_PATH: COMPLETIONS}  # served here, ahead of FastAPI


class Front:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.state = app.state
        self._ids = RequestIds()

    def new_request_id(self) -> str:
        return self._ids.new()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services: AppServices = self.state.services  # once per request: a Starlette State lookup costs ~1 us
        activity = services.activity
        activity.active += 1
        try:
            await self._http(services, scope, receive, send)
        except asyncio.CancelledError:
            # Only the server cancels a request's task: uvicorn at shutdown, once TIERGATE_SHUTDOWN_GRACE_S has run
            # out (a client that leaves is a message, not a cancellation). Its record is queued by now (a 503
            # server_stopping); ending the task here spares the log a traceback per request.
            log.warning("request %s cancelled: the server is stopping", scope.get("state", {}).get("request_id"))
        finally:
            activity.active -= 1

    async def _http(self, services: AppServices, scope: Scope, receive: Receive, send: Send) -> None:
        rid = self.new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        gate = services.gate  # read per request: a reloaded policy file may bring other keys
        if gate.enabled:
            try:
                # The chat route reads it: a key may be held to its own policies (router/policy.py: ApiKey).
                scope["state"][STATE_KEY] = gate.admit(scope["path"], header(scope["headers"], b"authorization"))
            except Refused as r:
                # Refused before anything is read or routed: no ledger record, so callers without a key cannot fill it.
                await error_response(r.error, rid, r.headers)(scope, receive, send)
                return
        surface = SURFACES.get(scope["path"])
        if surface is not None:
            if scope["method"] != "POST":
                err = InvalidRequest(f"Method {scope['method']} is not allowed on {scope['path']}; use POST.")
                err.status = 405
                await error_response(err, rid, {"allow": "POST"})(scope, receive, send)
                return
            try:
                response = await handle_chat(services, scope, receive, rid, surface)
            except GatewayError as e:
                response = error_response(e, rid)
            except ClientDisconnect:
                return  # gone before its body arrived: nothing was routed, there is no one to answer
            except asyncio.CancelledError:
                # The server is stopping (below) before this answer began: the client may retry elsewhere.
                await error_response(server_stopping(), rid)(scope, receive, send)
                raise
            except Exception:
                log.exception("unhandled error in request %s", rid)
                response = error_response(internal_error(rid), rid)
            await response(scope, receive, send)
            return

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"x-request-id" for k, _ in headers):
                    headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            if not started:  # as on the chat path: the server is stopping before this answer began
                await error_response(server_stopping(), rid)(scope, receive, send)
            raise
