"""A web app in a real browser (headless Chromium) calls the gateway from another origin, as a browser chat app
using OpenAI's API would: with TIERGATE_CORS_ORIGINS naming the app's origin, its fetch() passes the preflight, gets
the answer, whole and streamed, and can read the routing headers; without it, the browser refuses the call."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import browser
from tests.conftest import GatewayFactory, api_config
from tests.fakes.upstream import FakeUpstream, free_port

# The page's script: an app's call, with a key and a steering header, so the browser sends a preflight first.
CALL = """async ([url, stream]) => {
  try {
    const r = await fetch(url + "/v1/chat/completions", {
      method: "POST",
      headers: {"content-type": "application/json", "authorization": "Bearer sk-app", "x-tiergate-tags": "web"},
      body: JSON.stringify({model: "mid", messages: [{role: "user", content: "hello from a page"}], stream}),
    });
    return {status: r.status, model: r.headers.get("x-tiergate-model"), id: r.headers.get("x-request-id"),
            text: await r.text()};
  } catch (e) {
    return {error: String(e)};
  }
}"""


class _AppPage(http.server.BaseHTTPRequestHandler):
    """The web app's own origin: one page (with no favicon to fetch, so the console stays the gateway's to judge)."""

    def do_GET(self) -> None:
        page = b'<!doctype html><html><head><link rel="icon" href="data:,"></head><body>app</body></html>'
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def app_origin() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _AppPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _call_from_page(app_origin: str, gateway: str, stream: bool) -> tuple[dict[str, Any], list[str]]:
    # No page.route() here: with playwright's request interception on, Chromium sends no CORS preflight at all.
    problems: list[str] = []
    with browser(problems) as page:
        page.goto(app_origin)
        result: dict[str, Any] = page.evaluate(CALL, [gateway, stream])
    return result, problems


def test_a_page_on_an_allowed_origin_calls_the_gateway(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, app_origin: str
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url), cors_origins=app_origin)
    whole, problems = _call_from_page(app_origin, server.url, stream=False)
    assert problems == [] and whole["status"] == 200, (whole, problems)
    assert whole["model"] == "mid" and whole["id"].startswith("tg-")
    assert "echo: hello from a page" in whole["text"]
    streamed, problems = _call_from_page(app_origin, server.url, stream=True)
    assert problems == [] and streamed["status"] == 200 and streamed["model"] == "mid", (streamed, problems)
    assert streamed["text"].rstrip().endswith("data: [DONE]")
    assert [(r["status"], r["tags"]) for r in svc.ledger.rows()] == [(200, ",web,"), (200, ",web,")]


def test_without_cors_origins_the_browser_refuses_the_call(
    gateway_factory: GatewayFactory, fresh_upstream: FakeUpstream, app_origin: str
) -> None:
    server, svc = gateway_factory(api_config(fresh_upstream.base_url))
    result, problems = _call_from_page(app_origin, server.url, stream=False)
    assert "Failed to fetch" in result.get("error", ""), result
    assert any("CORS policy" in p for p in problems), problems
    assert svc.ledger.rows() == []  # the preflight failed (405), so the call itself was never sent
