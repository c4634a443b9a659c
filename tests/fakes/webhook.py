"""A fake alert webhook (as Slack's incoming webhooks take JSON) on a loopback port: it keeps what it is sent, and
can be told to fail its next N posts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.fakes.server import serve_in_thread


@dataclass
class Hook:
    received: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    url: str = ""

    async def _post(self, request: Request) -> PlainTextResponse:
        if self.fail_next > 0:
            self.fail_next -= 1
            return PlainTextResponse("unavailable", status_code=503)
        self.received.append(await request.json())
        return PlainTextResponse("ok")

    def texts(self) -> list[str]:
        return [str(x["text"]) for x in self.received]


@contextmanager
def webhook() -> Iterator[Hook]:
    hook = Hook()
    server = serve_in_thread(Starlette(routes=[Route("/hook", hook._post, methods=["POST"])]))
    hook.url = f"{server.url}/hook"
    try:
        yield hook
    finally:
        server.stop()
